package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCAStatusNamesHoldersAForcedStepCutOff: after a forced activation, a
// live holder whose truststore lacks the new active CA is shown, in the
// table and in JSON, so the operator knows what to restart.
func TestCAStatusNamesHoldersAForcedStepCutOff(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "f1", "--no-auto-rotate").ok(t)
	s.cli(t, s.admin, "bake", "--cluster", "f1", "--role", "jobmanager", "--holder", "jm-0", "--out", filepath.Join(t.TempDir(), "tls")).ok(t)
	s.cli(t, s.admin, "ca", "prepare", "--cluster", "f1").ok(t)
	if out := s.cli(t, s.admin, "ca", "status", "--cluster", "f1").ok(t).stdout; strings.Contains(out, "cut off") {
		t.Fatalf("before any forced step ca status reports holders cut off:\n%s", out)
	}
	s.cli(t, s.admin, "ca", "activate", "--cluster", "f1", "--force").ok(t)
	out := s.cli(t, s.admin, "ca", "status", "--cluster", "f1").ok(t).stdout
	if !strings.Contains(out, "cut off after a forced step: 1 live holder(s)") || !strings.Contains(out, "jm-0") {
		t.Errorf("ca status does not name the holder the forced activation cut off:\n%s", out)
	}
	var st struct {
		Lineages []struct {
			Purpose  string   `json:"purpose"`
			Stranded []string `json:"stranded"`
		} `json:"lineages"`
	}
	if err := json.Unmarshal([]byte(s.cli(t, s.admin, "ca", "status", "--cluster", "f1", "-o", "json").ok(t).stdout), &st); err != nil {
		t.Fatal(err)
	}
	for _, l := range st.Lineages {
		if want := l.Purpose == "internal"; want != slices.Equal(l.Stranded, []string{"jm-0"}) {
			t.Errorf("%s lineage: stranded %q", l.Purpose, l.Stranded)
		}
	}
}
