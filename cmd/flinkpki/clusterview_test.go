package main

import (
	"encoding/json"
	"strings"
	"testing"

	flinkpkiv1 "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// TestClusterViewsCountLiveHoldersOrSaySoInstead: cluster get, create and
// update show each CA's live holders; cluster list does not count them
// (a page of clusters would read all their holders), and says so
// (live_holders_counted false, a dash in the table) instead of a bare 0
// that reads as "no pod depends on this CA".
func TestClusterViewsCountLiveHoldersOrSaySoInstead(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	tok := s.tokenFor(t, "orders", "taskmanager", "--uses", "2")
	s.cli(t, s.admin, "bench", "enroll", "--cluster", "orders", "--role", "taskmanager", "--token-file", tok,
		"--requests", "2", "--concurrency", "1").ok(t)

	internal := func(t *testing.T, raw string) (c clusterJSON, signed, trusting int32) {
		t.Helper()
		if err := json.Unmarshal([]byte(raw), &c); err != nil {
			t.Fatalf("%v\n%s", err, raw)
		}
		for _, ca := range c.CAs {
			if ca.Purpose == "internal" && ca.State == "active" {
				return c, ca.LiveHoldersSigned, ca.LiveHoldersTrusting
			}
		}
		t.Fatalf("no active internal CA in %s", raw)
		return c, 0, 0
	}
	for _, args := range [][]string{
		{"cluster", "get", "orders", "-o", "json"},
		{"cluster", "update", "orders", "--auto-rotate", "false", "-o", "json"},
	} {
		c, signed, trusting := internal(t, s.cli(t, s.admin, args...).ok(t).stdout)
		if !c.LiveHoldersCounted || signed != 2 || trusting != 2 {
			t.Errorf("%v: counted %v, the active internal CA has signed %d and is trusted by %d live holders; want counted, 2 and 2", args, c.LiveHoldersCounted, signed, trusting)
		}
	}
	if c, signed, _ := internal(t, s.cli(t, s.admin, "cluster", "create", "fresh", "-o", "json").ok(t).stdout); !c.LiveHoldersCounted || signed != 0 {
		t.Errorf("a new cluster: counted %v, signed %d; want a counted 0", c.LiveHoldersCounted, signed)
	}

	var list struct {
		Clusters []json.RawMessage `json:"clusters"`
	}
	if err := json.Unmarshal([]byte(s.cli(t, s.admin, "cluster", "list", "-o", "json").ok(t).stdout), &list); err != nil {
		t.Fatal(err)
	}
	if c, _, _ := internal(t, string(list.Clusters[0])); c.LiveHoldersCounted {
		t.Errorf("cluster list says its live holders are counted; they are not")
	}
}

// TestClusterListWithALimitSaysWhereToGoOn: --limit stops the list, and
// when more clusters follow it says so, with the token that goes on after
// the last one shown (as audit list --limit does), and says nothing when
// none follow.
func TestClusterListWithALimitSaysWhereToGoOn(t *testing.T) {
	s := startServer(t, "")
	for _, name := range []string{"c1", "c2", "c3"} {
		s.cli(t, s.admin, "cluster", "create", name).ok(t)
	}
	type page struct {
		Clusters []struct {
			Name string `json:"name"`
		} `json:"clusters"`
		Next string `json:"next_page_token"`
	}
	list := func(args ...string) page {
		t.Helper()
		var p page
		if err := json.Unmarshal([]byte(s.cli(t, s.admin, append([]string{"cluster", "list", "-o", "json"}, args...)...).ok(t).stdout), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if p := list("--limit", "2"); len(p.Clusters) != 2 || p.Next != "c2" {
		t.Fatalf("--limit 2 of 3: %+v; want c1, c2 and the token to go on after c2", p)
	}
	if p := list("--page-token", "c2"); len(p.Clusters) != 1 || p.Clusters[0].Name != "c3" || p.Next != "" {
		t.Fatalf("going on after c2: %+v; want c3 and no token", p)
	}
	if p := list("--limit", "2", "--page-size", "1"); len(p.Clusters) != 2 || p.Next != "c2" {
		t.Fatalf("--limit 2 over pages of 1: %+v; want the token after c2", p)
	}
	if p := list("--limit", "3"); len(p.Clusters) != 3 || p.Next != "" {
		t.Fatalf("--limit 3 of 3: %+v; want all and no token", p)
	}
	if r := s.cli(t, s.admin, "cluster", "list", "--limit", "1").ok(t); !strings.Contains(r.stderr, "more clusters: --page-token c1") {
		t.Fatalf("the table cut by --limit says %q on stderr; want where to go on", r.stderr)
	}
}

// TestAnUpdateToAServerThatDropsBindingRolesFails: a server older than
// binding roles drops the field and binds the account for every role; the
// CLI compares the answer with what it asked for and fails, saying so,
// rather than report a restriction that is not there.
func TestAnUpdateToAServerThatDropsBindingRolesFails(t *testing.T) {
	t.Parallel()
	asked := []*flinkpkiv1.K8SBinding{
		{Namespace: "flink", ServiceAccount: "orders-tm", Roles: []string{"taskmanager", "taskmanager"}},
		{Namespace: "flink", ServiceAccount: "orders-jm"},
	}
	kept := []*flinkpkiv1.K8SBinding{
		{Namespace: "flink", ServiceAccount: "orders-tm", Roles: []string{"taskmanager"}},
		{Namespace: "flink", ServiceAccount: "orders-jm"},
	}
	if err := rolesKept(asked, kept); err != nil {
		t.Fatalf("a server that kept the roles: %v", err)
	}
	dropped := []*flinkpkiv1.K8SBinding{{Namespace: "flink", ServiceAccount: "orders-tm"}, {Namespace: "flink", ServiceAccount: "orders-jm"}}
	if err := rolesKept(asked, dropped); err == nil || !strings.Contains(err.Error(), "the server bound flink/orders-tm for every pod role, not as taskmanager only: it is older than binding roles") {
		t.Fatalf("a server that dropped the roles: %v; want the update failed, saying so", err)
	}
}
