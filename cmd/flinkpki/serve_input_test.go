package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// TestTheServerRefusesWhatCanNeverBeUsed runs a real server and checks the
// refusals that live on the server: a leaf validity of a nanosecond, a
// token that would expire on creation, Kubernetes bindings no token can
// carry, a cluster page token the server never gave out. Each is
// InvalidArgument, changes nothing, and (create) is audited as denied.
// Errors say "already exists" and "not found" once.
func TestTheServerRefusesWhatCanNeverBeUsed(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)

	cli := []struct {
		name string
		args []string
		want string
	}{
		{"a leaf validity of a nanosecond", []string{"cluster", "create", "v8", "--leaf-validity", "1ns"}, "leaf validity 1ns is too short: use at least 1s"},
		{"a page token never given out", []string{"cluster", "list", "--page-token", "garbage!!"}, `page token "garbage!!" is not one this server gave out`},
	}
	for _, c := range cli {
		t.Run(c.name, func(t *testing.T) {
			s.cli(t, s.admin, c.args...).refused(t, c.want)
		})
	}
	// The CLI refuses bindings no token can carry itself, as usage errors
	// (below, the server's own refusal of them, for any other client).
	oneLineError(t, s.cli(t, s.admin, "cluster", "create", "k1", "--k8s-namespace", "../x", "--k8s-service-account", "orders-flink"), 2, `Kubernetes namespace "../x" is not a valid namespace name`)
	oneLineError(t, s.cli(t, s.admin, "cluster", "create", "k2", "--k8s-namespace", "flink", "--k8s-service-account", "a b"), 2, `Kubernetes service account "a b" is not a valid service account name`)
	if r := s.cli(t, s.admin, "cluster", "create", "orders"); r.code != 1 || strings.TrimSpace(r.stderr) != `flinkpki: cluster "orders" already exists` {
		t.Errorf("a duplicate: exit %d, %q; want exit 1 and `cluster \"orders\" already exists` said once", r.code, r.stderr)
	}
	if r := s.cli(t, s.admin, "cluster", "get", "nope"); r.code != 1 || strings.TrimSpace(r.stderr) != `flinkpki: cluster "nope" not found` {
		t.Errorf("a missing cluster: exit %d, %q; want exit 1 and `cluster \"nope\" not found` said once", r.code, r.stderr)
	}

	conn := s.adminConn(t)
	client := pb.NewClusterServiceClient(conn)
	ctx := context.Background()
	raw := []struct {
		name string
		call func() error
	}{
		{"a token TTL of a nanosecond", func() error {
			_, err := client.CreateToken(ctx, &pb.CreateTokenRequest{Cluster: "orders", Role: "taskmanager", Ttl: durationpb.New(time.Nanosecond), Uses: 1})
			return err
		}},
		{"a token TTL just under a second", func() error {
			_, err := client.CreateToken(ctx, &pb.CreateTokenRequest{Cluster: "orders", Role: "taskmanager", Ttl: durationpb.New(time.Second - 1), Uses: 1})
			return err
		}},
		{"a namespace that is a path", func() error {
			_, err := client.CreateCluster(ctx, &pb.CreateClusterRequest{Name: "k1", K8SBindings: []*pb.K8SBinding{{Namespace: "../x", ServiceAccount: "orders-flink"}}})
			return err
		}},
		{"a service account with a space", func() error {
			_, err := client.CreateCluster(ctx, &pb.CreateClusterRequest{Name: "k2", K8SBindings: []*pb.K8SBinding{{Namespace: "flink", ServiceAccount: "a b"}}})
			return err
		}},
		{"a binding with a dotted namespace", func() error {
			_, err := client.CreateCluster(ctx, &pb.CreateClusterRequest{Name: "k3", K8SBindings: []*pb.K8SBinding{{Namespace: "a.b", ServiceAccount: "orders-flink"}}})
			return err
		}},
		{"a leaf validity of a millisecond", func() error {
			_, err := client.CreateCluster(ctx, &pb.CreateClusterRequest{Name: "k4", LeafValidity: durationpb.New(time.Millisecond)})
			return err
		}},
	}
	for _, c := range raw {
		if err := c.call(); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", c.name, err)
		}
	}

	var list struct {
		Clusters []clusterJSON `json:"clusters"`
	}
	if err := json.Unmarshal([]byte(s.cli(t, s.admin, "cluster", "list", "-o", "json").ok(t).stdout), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Clusters) != 1 || list.Clusters[0].Name != "orders" {
		t.Errorf("clusters after the refusals: %+v, want only orders", list.Clusters)
	}
	var audit struct {
		Entries []auditJSON `json:"entries"`
	}
	if err := json.Unmarshal([]byte(s.cli(t, s.admin, "audit", "list", "-o", "json").ok(t).stdout), &audit); err != nil {
		t.Fatal(err)
	}
	denied := map[string]string{}
	for _, e := range audit.Entries {
		if e.Outcome == "denied" {
			denied[e.Cluster+" "+e.Action] = e.Reason
		}
	}
	for _, k := range []string{"v8 cluster.create", "k1 cluster.create", "k2 cluster.create", "k3 cluster.create", "k4 cluster.create", "orders token.create"} {
		if _, ok := denied[k]; !ok {
			t.Errorf("no denied audit entry for %s; denied entries: %v", k, denied)
		}
	}
	if r := denied["k1 cluster.create"]; !strings.Contains(r, "namespace") {
		t.Errorf("the refused binding is audited as %q, which does not name the namespace", r)
	}
}
