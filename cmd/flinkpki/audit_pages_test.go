package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	pb "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// TestAuditListPagesThroughALongTrail: the server answers at most 1000
// entries at a time, so no answer outgrows gRPC's 4 MiB message limit
// (a busy trail holds millions); audit list fetches page after page and
// shows each entry once, in order; --limit stops there and says where to
// go on.
func TestAuditListPagesThroughALongTrail(t *testing.T) {
	s := startServer(t, "", "--enroll-rate", "0")
	s.cli(t, s.admin, "cluster", "create", "busy").ok(t)
	tok := s.tokenFor(t, "busy", "taskmanager", "--uses", "1200")
	s.cli(t, s.admin, "bench", "enroll", "--cluster", "busy", "--role", "taskmanager", "--token-file", tok,
		"--requests", "1200", "--concurrency", "16", "--format", "jks").ok(t)

	type entries struct {
		Entries []struct {
			Seq    uint64 `json:"seq"`
			Action string `json:"action"`
		} `json:"entries"`
	}
	list := func(args ...string) (entries, string) {
		t.Helper()
		r := s.cli(t, s.admin, append([]string{"audit", "list", "-o", "json"}, args...)...).ok(t)
		var es entries
		if err := json.Unmarshal([]byte(r.stdout), &es); err != nil {
			t.Fatalf("audit list -o json: %v", err)
		}
		for i := 1; i < len(es.Entries); i++ {
			if es.Entries[i-1].Seq >= es.Entries[i].Seq {
				t.Fatalf("audit list repeats or reorders entries: seq %d then %d", es.Entries[i-1].Seq, es.Entries[i].Seq)
			}
		}
		return es, r.stderr
	}

	all, _ := list("--cluster", "busy")
	enrolls := 0
	for _, e := range all.Entries {
		if strings.HasPrefix(e.Action, "enroll") {
			enrolls++
		}
	}
	if enrolls != 1200 {
		t.Fatalf("audit list --cluster busy shows %d enrollments in %d entries; want all 1200", enrolls, len(all.Entries))
	}

	some, stderr := list("--limit", "1100")
	if len(some.Entries) != 1100 {
		t.Fatalf("audit list --limit 1100 shows %d entries", len(some.Entries))
	}
	if want := fmt.Sprintf("more entries may follow: --after %d", some.Entries[1099].Seq); !strings.Contains(stderr, want) {
		t.Fatalf("audit list --limit 1100 said %q on stderr, want %q", stderr, want)
	}
	rest, _ := list("--after", fmt.Sprint(some.Entries[1099].Seq))
	if len(rest.Entries) == 0 || rest.Entries[0].Seq <= some.Entries[1099].Seq {
		t.Fatalf("audit list --after %d does not go on after it", some.Entries[1099].Seq)
	}

	conn := s.adminConn(t)
	for _, limit := range []int32{0, 5000} {
		resp, err := pb.NewAuditServiceClient(conn).ListAudit(context.Background(), &pb.ListAuditRequest{Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(resp.GetEntries()); n != 1000 {
			t.Fatalf("ListAudit with limit %d answered %d entries; want the server's page of 1000", limit, n)
		}
	}
}

// TestAuditListJSONCarriesTheCursor: audit list -o json says where the next
// page starts in next_after, so a script pages with stdout alone, and says
// 0 there once the trail ends.
func TestAuditListJSONCarriesTheCursor(t *testing.T) {
	s := startServer(t, "")
	for _, name := range []string{"a1", "a2", "a3", "a4"} {
		s.cli(t, s.admin, "cluster", "create", name).ok(t)
	}
	type page struct {
		Entries []struct {
			Seq uint64 `json:"seq"`
		} `json:"entries"`
		NextAfter *uint64 `json:"next_after"`
	}
	list := func(args ...string) page {
		t.Helper()
		var p page
		r := s.cli(t, s.admin, append([]string{"audit", "list", "-o", "json"}, args...)...).ok(t)
		if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
			t.Fatalf("audit list -o json %v: %v", args, err)
		}
		if p.NextAfter == nil {
			t.Fatalf("audit list -o json %v has no next_after:\n%s", args, r.stdout)
		}
		return p
	}
	all := list()
	if *all.NextAfter != 0 || len(all.Entries) < 4 {
		t.Fatalf("the whole trail: %d entries, next_after %d; want at least 4 and 0", len(all.Entries), *all.NextAfter)
	}
	var seen []uint64
	after := "0"
	for i := 0; ; i++ {
		p := list("--limit", "2", "--after", after)
		for _, e := range p.Entries {
			seen = append(seen, e.Seq)
		}
		if *p.NextAfter == 0 {
			break
		}
		if last := p.Entries[len(p.Entries)-1].Seq; *p.NextAfter != last {
			t.Fatalf("page %d ends at seq %d but says next_after %d", i, last, *p.NextAfter)
		}
		if i > len(all.Entries) {
			t.Fatalf("paging by next_after does not end: %v", seen)
		}
		after = fmt.Sprint(*p.NextAfter)
	}
	if len(seen) != len(all.Entries) {
		t.Errorf("paging by next_after read %d entries (%v); the trail holds %d", len(seen), seen, len(all.Entries))
	}
}
