package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"

	pb "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// TestARefusedNameCannotForgeAuditRows sends what the CLI itself would
// refuse to: a cluster name with a newline, a made-up audit row and a
// terminal escape, once as an administrator's CreateCluster and once as
// an enrollment token's Enroll. Both are refused and audited under no
// cluster (the name is none a cluster can have), their reason quoting it;
// audit list must still print one line per entry, with no escape byte.
func TestARefusedNameCannotForgeAuditRows(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	tok := s.tokenFor(t, "orders", "taskmanager")
	forged := "x\n9999  2026-01-01T00:00:00Z  admin:root  orders  ca.retire  ok\x1b[2K\x1b[1A"

	conn := s.adminConn(t)
	ctx := context.Background()
	if _, err := pb.NewClusterServiceClient(conn).CreateCluster(ctx, &pb.CreateClusterRequest{Name: forged}); err == nil {
		t.Fatal("a cluster named with a newline was created")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enrollClient(t, s.addr, s.caFile, tok).Enroll(ctx, &pb.EnrollRequest{
		Cluster: forged, Role: "taskmanager", Holder: "tm-0", Csr: csrFor(t, key, nil)}); err == nil {
		t.Fatal("an enrollment for a cluster named with a newline succeeded")
	}

	var list struct {
		Entries []auditJSON `json:"entries"`
	}
	if err := json.Unmarshal([]byte(s.cli(t, s.admin, "audit", "list", "-o", "json").ok(t).stdout), &list); err != nil {
		t.Fatal(err)
	}
	quoted := 0
	for _, e := range list.Entries {
		if e.Cluster == forged {
			t.Errorf("an audit entry names the forged cluster: %+v", e)
		}
		if e.Outcome == "denied" && e.Cluster == "" && strings.Contains(e.Reason, `"x\n9999`) {
			quoted++
		}
	}
	if quoted != 2 {
		t.Fatalf("%d refusals quote the forged name in their reason, want 2 (the refused create and enroll)", quoted)
	}

	table := s.cli(t, s.admin, "audit", "list").ok(t).stdout
	if got, want := strings.Count(table, "\n"), 1+len(list.Entries); got != want {
		t.Errorf("audit list printed %d lines for %d entries, want %d:\n%s", got, len(list.Entries), want, table)
	}
	if strings.Contains(table, "\x1b") {
		t.Errorf("audit list printed a raw ESC byte:\n%q", table)
	}
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "9999") {
			t.Errorf("a forged row starts a line of its own: %q", line)
		}
	}
	if !strings.Contains(table, `"x\n9999`) {
		t.Errorf("audit list does not show the forged name quoted:\n%s", table)
	}
}
