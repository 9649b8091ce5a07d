package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestCARefusalsSayWhatToDoNext: a CA step refused for live holders names
// them and, on the same line, the ways on: restart, release, --force, and
// where to read every blocker when the line names only some.
func TestCARefusalsSayWhatToDoNext(t *testing.T) {
	s := startServer(t, "")
	bake := func(cluster, holder string) {
		t.Helper()
		s.cli(t, s.admin, "bake", "--cluster", cluster, "--role", "taskmanager", "--holder", holder, "--out", filepath.Join(t.TempDir(), "tls")).ok(t)
	}

	s.cli(t, s.admin, "cluster", "create", "one", "--no-auto-rotate").ok(t)
	bake("one", "jm-0")
	s.cli(t, s.admin, "ca", "prepare", "--cluster", "one").ok(t)
	oneLineError(t, s.cli(t, s.admin, "ca", "activate", "--cluster", "one"), 1,
		"CA activation refused: 1 live holder does not trust the prepared CA yet: jm-0; restart it so it enrolls again (for a baked image, bake a new one under a new --holder, roll it out, then release this one), release it if it is gone (flinkpki holder release --cluster one jm-0), or use --force")

	s.cli(t, s.admin, "cluster", "create", "orders", "--no-auto-rotate").ok(t)
	for i := range 12 {
		bake("orders", fmt.Sprintf("tm-%02d", i))
	}
	s.cli(t, s.admin, "ca", "prepare", "--cluster", "orders").ok(t)
	r := s.cli(t, s.admin, "ca", "activate", "--cluster", "orders")
	oneLineError(t, r, 1, "CA activation refused: 12 live holders do not trust the prepared CA yet: tm-00, tm-01, tm-02, tm-03, tm-04, tm-05, tm-06, tm-07, tm-08, tm-09 and 2 more; "+
		"restart them so they enroll again (for a baked image, bake a new one under a new --holder, roll it out, then release the old holder), release departed ones (flinkpki holder release --cluster orders NAME), or use --force; all 12: flinkpki holder list --cluster orders --blocking")

	// The pointer holds: holder list --blocking lists every blocker, and
	// ca status points there too.
	blocking := func(want int) {
		t.Helper()
		var hl struct {
			Holders []struct{ Name string }
		}
		if err := json.Unmarshal([]byte(s.cli(t, s.admin, "holder", "list", "--cluster", "orders", "--blocking", "-o", "json").ok(t).stdout), &hl); err != nil {
			t.Fatal(err)
		}
		if len(hl.Holders) != want {
			t.Errorf("holder list --blocking: %d holders, want %d: %+v", len(hl.Holders), want, hl.Holders)
		}
	}
	blocking(12)
	if table := s.cli(t, s.admin, "ca", "status", "--cluster", "orders").ok(t).stdout; !strings.Contains(table, "and 2 more; all of them: flinkpki holder list --cluster orders --blocking") {
		t.Errorf("ca status does not point at holder list --blocking:\n%s", table)
	}
	// One pod restarted since: it trusts the prepared CA, and blocks no more.
	bake("orders", "tm-03")
	blocking(11)
	oneLineError(t, s.cli(t, s.admin, "holder", "list", "--cluster", "orders", "--blocking", "--all"), 2, "--all and --blocking go apart")

	s.cli(t, s.admin, "ca", "activate", "--cluster", "orders", "--force").ok(t)
	blocking(12) // all but tm-03 cut off, and all twelve signed by the retiring CA
	oneLineError(t, s.cli(t, s.admin, "ca", "retire", "--cluster", "orders"), 1,
		"CA retirement refused: 12 live holders still hold leaves signed by the retiring CA: tm-00, tm-01, tm-02, tm-03, tm-04, tm-05, tm-06, tm-07, tm-08, tm-09 and 2 more; "+
			"restart them so they enroll again (for a baked image, bake a new one under a new --holder, roll it out, then release the old holder), release departed ones (flinkpki holder release --cluster orders NAME), or use --force; all 12: flinkpki holder list --cluster orders --blocking")
}

// TestCAStatusSaysANextStepIsManualWhenAutoRotateIsOff: with automatic
// rotation off the next step is due, not scheduled, and ca status names
// the command that takes it; -o json says whether the server takes it.
func TestCAStatusSaysANextStepIsManualWhenAutoRotateIsOff(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "pay").ok(t)
	type status struct {
		Lineages []struct {
			Purpose  string `json:"purpose"`
			NextStep struct {
				Kind      string `json:"kind"`
				Time      string `json:"time"`
				Automatic *bool  `json:"automatic"`
			} `json:"next_step"`
		} `json:"lineages"`
	}
	check := func(wantAutomatic bool) {
		t.Helper()
		var st status
		if err := json.Unmarshal([]byte(s.cli(t, s.admin, "ca", "status", "--cluster", "pay", "-o", "json").ok(t).stdout), &st); err != nil {
			t.Fatal(err)
		}
		table := s.cli(t, s.admin, "ca", "status", "--cluster", "pay").ok(t).stdout
		for _, l := range st.Lineages {
			n := l.NextStep
			if n.Kind != "prepare" || n.Time == "" {
				t.Fatalf("%s lineage of a new cluster: next step %q at %q, want prepare at a time", l.Purpose, n.Kind, n.Time)
			}
			if n.Automatic == nil || *n.Automatic != wantAutomatic {
				t.Errorf("%s lineage: next_step.automatic = %v, want %t", l.Purpose, n.Automatic, wantAutomatic)
			}
			id := l.Purpose + "-2"
			purpose := ""
			if l.Purpose != "internal" {
				purpose = " --purpose " + l.Purpose
			}
			want := "next step: prepare " + id + " at " + n.Time + "\n"
			if !wantAutomatic {
				want = "next step: prepare " + id + " due " + n.Time + " (automatic rotation is off: run flinkpki ca prepare --cluster pay" + purpose + ")\n"
			}
			if !strings.Contains(table, want) {
				t.Errorf("ca status does not say %q:\n%s", want, table)
			}
		}
	}
	check(true)
	s.cli(t, s.admin, "cluster", "update", "pay", "--auto-rotate", "false").ok(t)
	check(false)

	// --purpose shows one lineage, as the steps take it.
	var st status
	if err := json.Unmarshal([]byte(s.cli(t, s.admin, "ca", "status", "--cluster", "pay", "--purpose", "rest", "-o", "json").ok(t).stdout), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Lineages) != 1 || st.Lineages[0].Purpose != "rest" {
		t.Errorf("ca status --purpose rest: %+v, want the rest lineage alone", st.Lineages)
	}
	oneLineError(t, s.cli(t, s.admin, "ca", "status", "--cluster", "pay", "--purpose", "tls"), 2, `unknown purpose "tls"`)
}
