package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flinkpki/flinkpki/enroll"
	"github.com/flinkpki/flinkpki/k8sauth/k8stest"
	pb "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

func TestServiceAccountTokensEnrollOnlyTheBoundPods(t *testing.T) {
	const issuerURL = "https://kubernetes.default.svc.cluster.local"
	iss := k8stest.NewECIssuer(t, issuerURL)
	stranger := k8stest.NewECIssuer(t, issuerURL)
	s := startServer(t, "", "--k8s-issuer", issuerURL, "--k8s-jwks-file", k8stest.JWKSFile(t, iss))
	s.cli(t, s.admin, "cluster", "create", "orders", "--k8s-namespace", "flink", "--k8s-service-account", "orders-flink").ok(t)

	good := k8stest.Claims{Namespace: "flink", ServiceAccount: "orders-flink", Pod: "orders-taskmanager-1-1", PodUID: "3f1c2b7e-5d1a-4c2e-9a61-0d6a7e2b9c11"}
	out := filepath.Join(t.TempDir(), "tls")
	r := s.cli(t, "", "init", "--cluster", "orders", "--role", "taskmanager", "--out", out, "--token-file", iss.MintFile(good), "--timeout", "5s").ok(t)
	holders := s.cli(t, s.admin, "holder", "list", "--cluster", "orders", "-o", "json").ok(t).stdout
	if !strings.Contains(holders, `"orders-taskmanager-1-1"`) {
		t.Fatalf("the holder is not the pod name:\n%s\n%s", holders, r.stderr)
	}
	// The record says which pod of which namespace obtained it.
	if !strings.Contains(holders, `"actor": "k8s:flink/orders-flink/pod=orders-taskmanager-1-1"`) {
		t.Errorf("holder list does not name the pod's namespace and service account:\n%s", holders)
	}
	// The audit entry names the pod's instance too: two pods of one name
	// (a StatefulSet's) differ in their UID.
	if audit := s.cli(t, s.admin, "audit", "list", "--cluster", "orders", "-o", "json").ok(t).stdout; !strings.Contains(audit, `"pod_uid": "`+good.PodUID+`"`) {
		t.Errorf("the enrollment's audit entry does not name the pod's UID %s:\n%s", good.PodUID, audit)
	}
	if table := s.cli(t, s.admin, "holder", "list", "--cluster", "orders").ok(t).stdout; !strings.Contains(table, "OBTAINED BY") || !strings.Contains(table, "k8s:flink/orders-flink/pod=orders-taskmanager-1-1") {
		t.Errorf("holder list's table does not say who obtained the leaf:\n%s", table)
	}
	if _, err := os.Stat(filepath.Join(out, "keystore.p12")); err != nil {
		t.Fatalf("no keystore written: %v", err)
	}

	with := func(mod func(*k8stest.Claims)) k8stest.Claims {
		c := good
		mod(&c)
		return c
	}
	cases := []struct {
		name  string
		token string
		want  string
	}{
		{"another namespace", iss.MintFile(with(func(c *k8stest.Claims) { c.Namespace = "other" })), "not bound"},
		{"another service account", iss.MintFile(with(func(c *k8stest.Claims) { c.ServiceAccount = "default" })), "not bound"},
		{"the wrong audience", iss.MintFile(with(func(c *k8stest.Claims) { c.Audience = []string{"vault"} })), "audience"},
		{"the wrong issuer", iss.MintFile(with(func(c *k8stest.Claims) { c.Issuer = "https://evil.example" })), "issuer"},
		{"an expired token", iss.MintFile(with(func(c *k8stest.Claims) {
			c.IssuedAt = time.Now().Add(-2 * time.Hour)
			c.Expiry = time.Now().Add(-time.Hour)
		})), "expired"},
		{"a token signed by an unknown key", stranger.MintFile(good), "key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "tls")
			s.cli(t, "", "init", "--cluster", "orders", "--role", "taskmanager", "--out", out, "--token-file", c.token, "--timeout", "5s").refused(t, c.want)
			if got := entries(t, out); len(got) != 0 {
				t.Errorf("a refused init wrote %v", got)
			}
		})
	}
	after := s.cli(t, s.admin, "holder", "list", "--cluster", "orders", "-o", "json").ok(t).stdout
	if after != holders {
		t.Errorf("refused tokens changed the holders:\n%s\n%s", holders, after)
	}
	// An explicit --holder cannot make a pod speak for another: the server
	// records the pod, and init says so instead of staying silent.
	r = s.cli(t, "", "init", "--cluster", "orders", "--role", "taskmanager", "--holder", "other-pod",
		"--out", filepath.Join(t.TempDir(), "tls"), "--token-file", iss.MintFile(good), "--timeout", "5s").ok(t)
	if want := `note: the server recorded the holder as "orders-taskmanager-1-1", not --holder "other-pod"`; !strings.Contains(r.stderr, want) {
		t.Errorf("init with another --holder says %q, want %q", r.stderr, want)
	}
	if hs := s.cli(t, s.admin, "holder", "list", "--cluster", "orders", "-o", "json").ok(t).stdout; strings.Contains(hs, "other-pod") {
		t.Errorf("a pod's token enrolled another holder:\n%s", hs)
	}
	// Nor does a --holder that is no holder name at all (a pod template's
	// FLINKPKI_HOLDER=namespace/pod, say): the pod's token speaks for the
	// pod, as it did before init checked holder names itself.
	r = s.cli(t, "", "init", "--cluster", "orders", "--role", "taskmanager", "--holder", "flink/orders-taskmanager-1-1",
		"--out", filepath.Join(t.TempDir(), "tls"), "--token-file", iss.MintFile(good), "--timeout", "5s").ok(t)
	if want := `note: the server recorded the holder as "orders-taskmanager-1-1"`; !strings.Contains(r.stderr, want) {
		t.Errorf("init with an invalid --holder and a pod's token says %q, want %q", r.stderr, want)
	}
	// A service-account token never opens administrator RPCs.
	s.cli(t, iss.MintFile(good), "cluster", "list").refused(t, "administrator")
}

// The cluster's service-account signing key rotates and the JWKS file is
// updated while the server runs: a pod whose token the new key signed is
// refused until then, and enrolls after it, with no restart.
func TestJWKSFileUpdatedWhileServing(t *testing.T) {
	const issuerURL = "https://kubernetes.default.svc.cluster.local"
	old := k8stest.NewECIssuer(t, issuerURL)
	next := k8stest.NewECIssuer(t, issuerURL)
	jwks := k8stest.JWKSFile(t, old)
	metricsAddr := freeAddr(t)
	s := startServer(t, "", "--k8s-issuer", issuerURL, "--k8s-jwks-file", jwks, "--metrics-listen", metricsAddr)
	s.cli(t, s.admin, "cluster", "create", "orders", "--k8s-namespace", "flink", "--k8s-service-account", "orders-flink").ok(t)
	pod := k8stest.Claims{Namespace: "flink", ServiceAccount: "orders-flink", Pod: "orders-taskmanager-1-1"}
	initWith := func(tok string) result {
		return s.cli(t, "", "init", "--cluster", "orders", "--role", "taskmanager", "--out", filepath.Join(t.TempDir(), "tls"), "--token-file", tok, "--timeout", "5s")
	}
	initWith(next.MintFile(pod)).refused(t, "read again whenever it changes")
	// Counted, for an alert: the file is out of date.
	if m := scrapeMetrics(t, metricsAddr); !strings.Contains(m, "\nflinkpki_k8s_jwks_unknown_key_total 1\n") {
		t.Errorf("a token of a key the JWKS lacks is not counted in flinkpki_k8s_jwks_unknown_key_total")
	}
	if err := os.WriteFile(jwks, k8stest.JWKS(t, old, next), 0o644); err != nil {
		t.Fatal(err)
	}
	initWith(next.MintFile(pod)).ok(t)
	initWith(old.MintFile(pod)).ok(t)
	if m := scrapeMetrics(t, metricsAddr); !strings.Contains(m, "\nflinkpki_k8s_jwks_unknown_key_total 1\n") {
		t.Errorf("tokens of keys the JWKS holds were counted as unknown")
	}
}

// The server verifies its audit trail by itself, at start and then every
// --audit-verify-interval, and says so in its metrics.
func TestTheServerSaysItsAuditTrailIsIntact(t *testing.T) {
	metricsAddr := freeAddr(t)
	s := startServer(t, "", "--metrics-listen", metricsAddr, "--audit-verify-interval", "100ms")
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := scrapeMetrics(t, metricsAddr)
		if strings.Contains(m, "\nflinkpki_audit_chain_intact 1\n") && !strings.Contains(m, "\nflinkpki_audit_verified_timestamp_seconds 0\n") &&
			strings.Contains(m, "\nflinkpki_audit_verified_timestamp_seconds ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no verification of the audit trail in the metrics after 10 s:\n%s", grepLines(m, "flinkpki_audit"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// grepLines keeps the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// cluster update moves a Flink deployment to another service account
// without a new CA: the added binding enrolls at once, the removed one no
// more, a binding another cluster holds is refused whole, and every step
// is audited.
func TestClusterUpdateMovesKubernetesBindings(t *testing.T) {
	const issuerURL = "https://kubernetes.default.svc.cluster.local"
	iss := k8stest.NewECIssuer(t, issuerURL)
	s := startServer(t, "", "--k8s-issuer", issuerURL, "--k8s-jwks-file", k8stest.JWKSFile(t, iss))
	s.cli(t, s.admin, "cluster", "create", "orders", "--k8s-namespace", "flink", "--k8s-service-account", "orders-v1").ok(t)
	s.cli(t, s.admin, "cluster", "create", "billing", "--k8s-namespace", "flink", "--k8s-service-account", "billing").ok(t)
	before := s.cli(t, s.admin, "cluster", "get", "orders", "-o", "json").ok(t).stdout
	v2 := iss.MintFile(k8stest.Claims{Namespace: "flink", ServiceAccount: "orders-v2", Pod: "orders-tm-1"})
	v1 := iss.MintFile(k8stest.Claims{Namespace: "flink", ServiceAccount: "orders-v1", Pod: "orders-tm-2"})
	initAs := func(tok string) result {
		return s.cli(t, "", "init", "--cluster", "orders", "--role", "taskmanager", "--out", filepath.Join(t.TempDir(), "tls"), "--token-file", tok, "--timeout", "5s")
	}
	initAs(v2).refused(t, "flinkpki cluster update orders --add-k8s-binding flink/orders-v2")

	// Refused whole: one part takes billing's binding, so orders-v2 is not added either.
	s.cli(t, s.admin, "cluster", "update", "orders", "--add-k8s-binding", "flink/orders-v2", "--add-k8s-binding", "flink/billing").
		refused(t, `flink/billing is already bound to cluster "billing"`)
	s.cli(t, s.admin, "cluster", "update", "orders", "--remove-k8s-binding", "flink/nope").refused(t, `cluster "orders" has no Kubernetes binding flink/nope`)
	s.cli(t, s.admin, "cluster", "update", "orders", "--add-k8s-binding", "flink/default").refused(t, "would let every pod there enroll")
	if after := s.cli(t, s.admin, "cluster", "get", "orders", "-o", "json").ok(t).stdout; after != before {
		t.Fatalf("refused updates changed the cluster:\n%s\n%s", before, after)
	}
	for _, bad := range [][]string{{}, {"--add-k8s-binding", "orders-v2"}, {"--auto-rotate", "maybe"},
		// Names no Kubernetes token carries are refused as typed, like a
		// malformed role, before the server is asked.
		{"--add-k8s-binding", "Flink/orders-v2"}, {"--add-k8s-binding", "flink/Orders_V2:taskmanager"}, {"--remove-k8s-binding", "flink/a b"}} {
		if r := s.cli(t, s.admin, append([]string{"cluster", "update", "orders"}, bad...)...); r.code != 2 {
			t.Errorf("cluster update %v: exit %d, want 2 (usage)\n%s", bad, r.code, r.stderr)
		}
	}
	oneLineError(t, s.cli(t, s.admin, "cluster", "create", "other", "--k8s-namespace", "flink", "--k8s-service-account", "Bad_SA"), 2, `"flink/Bad_SA": Kubernetes service account "Bad_SA" is not a valid service account name`)
	if audit := s.cli(t, s.admin, "audit", "list", "-o", "json").ok(t).stdout; strings.Contains(audit, "Bad_SA") || strings.Contains(audit, "Orders_V2") {
		t.Errorf("a malformed binding reached the server:\n%s", audit)
	}

	r := s.cli(t, s.admin, "cluster", "update", "orders", "--add-k8s-binding", "flink/orders-v2", "-o", "json").ok(t)
	if !strings.Contains(r.stdout, `"service_account": "orders-v2"`) || !strings.Contains(r.stdout, `"service_account": "orders-v1"`) {
		t.Fatalf("after the add: %s", r.stdout)
	}
	if !strings.Contains(r.stderr, "note: pods of flink/orders-v2 may enroll as jobmanager, taskmanager and rest-server") {
		t.Errorf("an added binding without roles is not noted:\n%s", r.stderr)
	}
	initAs(v2).ok(t)
	initAs(v1).ok(t) // both during the rollout
	s.cli(t, s.admin, "cluster", "update", "orders", "--remove-k8s-binding", "flink/orders-v1", "--auto-rotate", "false").ok(t)
	initAs(iss.MintFile(k8stest.Claims{Namespace: "flink", ServiceAccount: "orders-v1", Pod: "orders-tm-3"})).refused(t, "not bound")
	got := s.cli(t, s.admin, "cluster", "get", "orders", "-o", "json").ok(t).stdout
	if strings.Contains(got, "orders-v1") || !strings.Contains(got, `"auto_rotate": false`) {
		t.Errorf("after the remove:\n%s", got)
	}
	holders := s.cli(t, s.admin, "holder", "list", "--cluster", "orders").ok(t).stdout
	if !strings.Contains(holders, "orders-tm-1") || !strings.Contains(holders, "orders-tm-2") {
		t.Errorf("the holders enrolled before the remove are gone:\n%s", holders)
	}
	audit := s.cli(t, s.admin, "audit", "list", "--cluster", "orders", "-o", "json").ok(t).stdout
	for _, want := range []string{`"added": "flink/orders-v2"`, `"removed": "flink/orders-v1"`, `"auto_rotate": "false"`} {
		if !strings.Contains(audit, want) {
			t.Errorf("the audit trail lacks %s", want)
		}
	}
	if n := strings.Count(audit, `"action": "cluster.update"`); n != 5 { // 2 done, 3 refused
		t.Errorf("%d cluster.update entries, want 5 (2 applied, 3 refused)", n)
	}
}

// TestABindingWithRolesKeepsATaskManagersTokenToItsRole: with the JobManager
// and the TaskManagers running as two service accounts, each bound to its
// roles, a TaskManager pod's token (leaked, say) gets no JobManager or REST
// server material; cluster get shows each binding's roles.
func TestABindingWithRolesKeepsATaskManagersTokenToItsRole(t *testing.T) {
	const issuerURL = "https://kubernetes.default.svc.cluster.local"
	iss := k8stest.NewECIssuer(t, issuerURL)
	s := startServer(t, "", "--k8s-issuer", issuerURL, "--k8s-jwks-file", k8stest.JWKSFile(t, iss))
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	r := s.cli(t, s.admin, "cluster", "update", "orders", "--add-k8s-binding", "flink/orders-jm:jobmanager,rest-server",
		"--add-k8s-binding", "flink/orders-tm:taskmanager", "-o", "json").ok(t)
	var c clusterJSON
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
		t.Fatal(err)
	}
	if len(c.K8sBindings) != 2 || strings.Join(c.K8sBindings[0].Roles, ",") != "jobmanager,rest-server" || strings.Join(c.K8sBindings[1].Roles, ",") != "taskmanager" {
		t.Fatalf("cluster update -o json shows bindings %+v; want each with its roles", c.K8sBindings)
	}
	if got := s.cli(t, s.admin, "cluster", "get", "orders").ok(t).stdout; !strings.Contains(got, "flink/orders-tm (taskmanager)") {
		t.Fatalf("cluster get does not show the binding's roles:\n%s", got)
	}
	tm := iss.MintFile(k8stest.Claims{Namespace: "flink", ServiceAccount: "orders-tm", Pod: "orders-taskmanager-1-1"})
	initAs := func(tok, role string, extra ...string) result {
		return s.cli(t, "", append([]string{"init", "--cluster", "orders", "--role", role, "--out", filepath.Join(t.TempDir(), "tls"), "--token-file", tok, "--timeout", "5s"}, extra...)...)
	}
	initAs(tm, "jobmanager").refused(t, `service account flink/orders-tm may enroll for cluster "orders" as taskmanager only, not jobmanager`)
	initAs(tm, "rest-server", "--dns", "orders-rest-tls").refused(t, "as taskmanager only, not rest-server")
	initAs(tm, "taskmanager").ok(t)
	jm := iss.MintFile(k8stest.Claims{Namespace: "flink", ServiceAccount: "orders-jm", Pod: "orders-jobmanager-0"})
	initAs(jm, "rest-server", "--dns", "orders-rest-tls").ok(t)

	for _, bad := range [][]string{
		{"--add-k8s-binding", "flink/orders-tm:rest-client"},
		{"--add-k8s-binding", "flink/orders-tm:taskmanager,"},
		{"--remove-k8s-binding", "flink/orders-tm:taskmanager"},
	} {
		if r := s.cli(t, s.admin, append([]string{"cluster", "update", "orders"}, bad...)...); r.code != 2 {
			t.Errorf("cluster update %v: exit %d, want 2 (usage)\n%s", bad, r.code, r.stderr)
		}
	}
}

// TestACreatedClusterCanLimitItsBindingsFromTheStart: cluster create
// --k8s-binding NS/SA:ROLES binds with roles at once, so no pod of the
// account enrolls as another role between a create and an update; it goes
// with the --k8s-namespace/--k8s-service-account pairs.
func TestACreatedClusterCanLimitItsBindingsFromTheStart(t *testing.T) {
	const issuerURL = "https://kubernetes.default.svc.cluster.local"
	iss := k8stest.NewECIssuer(t, issuerURL)
	s := startServer(t, "", "--k8s-issuer", issuerURL, "--k8s-jwks-file", k8stest.JWKSFile(t, iss))
	r := s.cli(t, s.admin, "cluster", "create", "scoped", "--k8s-binding", "flink/scoped-tm:taskmanager",
		"--k8s-namespace", "flink", "--k8s-service-account", "scoped-jm", "-o", "json").ok(t)
	var c clusterJSON
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, b := range c.K8sBindings {
		roles[b.ServiceAccount] = strings.Join(b.Roles, ",")
	}
	if roles["scoped-tm"] != "taskmanager" || roles["scoped-jm"] != "jobmanager,rest-server,taskmanager" {
		t.Fatalf("cluster create bound %v; want scoped-tm as taskmanager, scoped-jm as every pod role", roles)
	}
	// The binding without roles is named, with what its pods may get.
	if !strings.Contains(r.stderr, "note: pods of flink/scoped-jm may enroll as jobmanager, taskmanager and rest-server") || strings.Contains(r.stderr, "scoped-tm may") {
		t.Errorf("cluster create does not name (only) the binding without roles:\n%s", r.stderr)
	}
	tm := iss.MintFile(k8stest.Claims{Namespace: "flink", ServiceAccount: "scoped-tm", Pod: "scoped-taskmanager-1-1"})
	s.cli(t, "", "init", "--cluster", "scoped", "--role", "jobmanager", "--out", filepath.Join(t.TempDir(), "tls"), "--token-file", tm, "--timeout", "5s").
		refused(t, "as taskmanager only, not jobmanager")
	if r := s.cli(t, s.admin, "cluster", "create", "bad", "--k8s-binding", "flink/bad:rest-client"); r.code != 2 {
		t.Fatalf("cluster create with a rest-client binding: exit %d, want 2\n%s", r.code, r.stderr)
	}
	if r := s.cli(t, s.admin, "cluster", "get", "bad"); r.code != 1 {
		t.Fatalf("a refused create made the cluster: exit %d", r.code)
	}
}

// A refusal's log line (actor, cluster, reason) carries the id the caller
// was given, as the request's own line does: on-call finds one from the
// other under any concurrency.
func TestARefusalIsLoggedWithTheRequestID(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	s.cli(t, s.admin, "cluster", "create", "pay").ok(t)
	tok, err := enroll.ReadToken(s.tokenFor(t, "orders", "taskmanager"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := enroll.Dial(s.addr, s.caFile, tok)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var md metadata.MD
	_, err = pb.NewClusterServiceClient(conn).GetCluster(context.Background(), &pb.GetClusterRequest{Name: "pay"}, grpc.Header(&md))
	if status.Code(err) == codes.OK {
		t.Fatal("an enrollment token read a cluster")
	}
	ids := md.Get("x-request-id")
	if len(ids) != 1 {
		t.Fatalf("no x-request-id in the answer's header: %v", md)
	}
	var refused, request bool
	for l := range strings.SplitSeq(s.stderr.String(), "\n") {
		if !strings.Contains(l, "request_id="+ids[0]) {
			continue
		}
		refused = refused || strings.Contains(l, `msg="request refused"`) && strings.Contains(l, "actor=enrollment-token:")
		request = request || strings.Contains(l, "msg=request ")
	}
	if !refused || !request {
		t.Errorf("the refusal (%t) and the request's own line (%t) do not both name request %s:\n%s", refused, request, ids[0], grepLines(s.stderr.String(), ids[0]))
	}
}
