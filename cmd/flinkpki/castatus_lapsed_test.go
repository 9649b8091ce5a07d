package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	flinkpkiv1 "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// TestCAStatusSaysWhyAnExpiredHolderStillBlocks: a holder whose leaf has
// just expired blocks a step for the clock-skew grace, while no listing of
// live holders shows it; ca status says so, and until when, in its text
// and in its JSON.
func TestCAStatusSaysWhyAnExpiredHolderStillBlocks(t *testing.T) {
	until := time.Date(2026, 11, 27, 17, 0, 0, 0, time.UTC)
	st := &flinkpkiv1.CAStatus{Cluster: "g", Lineages: []*flinkpkiv1.LineageStatus{{
		Purpose: "internal",
		NextStep: &flinkpkiv1.RotationStep{Kind: "activate", CaId: "internal-2", Time: timestamppb.New(until.Add(-time.Hour)),
			Blockers: []string{"gone-pod", "tm-1"}, BlockersTotal: 2, LapsedBlockers: []string{"gone-pod"}, LapsedUntil: timestamppb.New(until)},
	}}}
	var out bytes.Buffer
	a := &app{stdout: &out, stderr: &out, getenv: func(string) string { return "" }, now: time.Now}
	if err := a.printCAStatus(st, "table"); err != nil {
		t.Fatal(err)
	}
	if want := "blocked by 2 holder(s): gone-pod, tm-1 (gone-pod: its leaf has expired, and counts for the clock-skew grace until 2026-11-27T17:00:00Z)"; !strings.Contains(out.String(), want) {
		t.Errorf("ca status:\n%s\nwant it to say %q", out.String(), want)
	}
	out.Reset()
	if err := a.printCAStatus(st, "json"); err != nil {
		t.Fatal(err)
	}
	var j caStatusJSON
	if err := json.Unmarshal(out.Bytes(), &j); err != nil {
		t.Fatal(err)
	}
	if s := j.Lineages[0].NextStep; len(s.LapsedBlockers) != 1 || s.LapsedBlockers[0] != "gone-pod" || s.LapsedUntil != "2026-11-27T17:00:00Z" {
		t.Errorf("ca status -o json next_step = %+v, want gone-pod lapsed until 17:00", s)
	}
	if !strings.Contains(out.String(), `"lapsed_blockers"`) || !strings.Contains(out.String(), `"lapsed_until"`) {
		t.Errorf("ca status -o json lacks the lapsed keys:\n%s", out.String())
	}
}

// TestCAStatusSaysTheActiveCAHasExpired: a rotation that started too late
// leaves an expired active CA, which signs nothing; ca status says so
// under the lineage, and not while the CA is still valid.
func TestCAStatusSaysTheActiveCAHasExpired(t *testing.T) {
	end := time.Date(2026, 11, 27, 17, 0, 0, 0, time.UTC)
	st := &flinkpkiv1.CAStatus{Cluster: "g", AutoRotate: true, Lineages: []*flinkpkiv1.LineageStatus{{
		Purpose: "internal",
		Cas: []*flinkpkiv1.CertificateAuthority{
			{Id: "internal-1", State: "active", NotAfter: timestamppb.New(end)},
			{Id: "internal-2", State: "prepared", NotAfter: timestamppb.New(end.AddDate(1, 0, 0))},
		},
		NextStep: &flinkpkiv1.RotationStep{Kind: "activate", CaId: "internal-2", Time: timestamppb.New(end.Add(5 * time.Minute))},
	}}}
	const want = "the active CA internal-1 expired at 2026-11-27T17:00:00Z: no internal credentials can be issued until the next CA is active"
	for _, tt := range []struct {
		now     time.Time
		expired bool
	}{{end.Add(time.Second), true}, {end, false}} {
		var out bytes.Buffer
		a := &app{stdout: &out, stderr: &out, getenv: func(string) string { return "" }, now: func() time.Time { return tt.now }}
		if err := a.printCAStatus(st, "table"); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(out.String(), want); got != tt.expired {
			t.Errorf("at %s, ca status says the CA expired: %t, want %t:\n%s", tt.now, got, tt.expired, out.String())
		}
	}
}
