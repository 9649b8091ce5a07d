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
