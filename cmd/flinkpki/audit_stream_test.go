package main

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	flinkpkiv1 "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// TestAuditListStreamsTheSameJSON: audit list -o json writes each page of
// the trail as it arrives (a trail of millions never sits in memory), and
// what it writes is byte for byte what the whole list encoded at once
// would be, for no entries, one, and several over pages, an empty page
// among them.
func TestAuditListStreamsTheSameJSON(t *testing.T) {
	entry := func(seq uint64, details map[string]string) *flinkpkiv1.AuditEntry {
		return &flinkpkiv1.AuditEntry{
			Seq: seq, Time: timestamppb.New(time.Date(2026, 11, 26, 20, 0, int(seq), 0, time.UTC)),
			Actor: "admin", Cluster: "orders<&>", Action: "enroll", Outcome: "denied", Reason: "denied",
			Details: details, PrevHash: "ab", Hash: "cd",
		}
	}
	for _, tc := range []struct {
		name  string
		pages [][]*flinkpkiv1.AuditEntry
		more  uint64
	}{
		{"no entries", [][]*flinkpkiv1.AuditEntry{{}}, 0},
		{"no page at all", nil, 0},
		{"one entry", [][]*flinkpkiv1.AuditEntry{{entry(1, nil)}}, 0},
		{"pages", [][]*flinkpkiv1.AuditEntry{{entry(1, map[string]string{"holder": "tm-0", "why": "a \"quoted\" <tag>"}), entry(2, nil)}, {}, {entry(3, nil)}}, 1250},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got bytes.Buffer
			s := &auditStream{w: &got}
			want := auditList{Entries: []auditJSON{}, NextAfter: tc.more}
			for _, p := range tc.pages {
				if err := s.page(p); err != nil {
					t.Fatal(err)
				}
				for _, e := range p {
					want.Entries = append(want.Entries, toAuditJSON(e))
				}
			}
			if err := s.end(tc.more); err != nil {
				t.Fatal(err)
			}
			var whole bytes.Buffer
			if err := writeJSON(&whole, want); err != nil {
				t.Fatal(err)
			}
			if got.String() != whole.String() {
				t.Errorf("streamed:\n%s\nwhole list:\n%s", got.String(), whole.String())
			}
		})
	}
}
