package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flinkpki/flinkpki/enroll"
	pb "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// TestAFloodOfRefusalsIsAuditedInSummaries sends a burst of requests with
// a token the server never issued, as a scanner would. Every one is
// refused and counted in the metrics; the audit trail accounts for every
// one, but after a burst per source in summary entries with a count, so a
// flood cannot grow the trail (and the commit queue) an entry per request.
func TestAFloodOfRefusalsIsAuditedInSummaries(t *testing.T) {
	const flood = 300
	metricsAddr := freeAddr(t)
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir, "--metrics-listen", metricsAddr)
	c := enrollClientWithToken(t, s.addr, s.caFile, "fpe_0000000000000000_notissuedbythisserver")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range flood {
		_, err := c.Enroll(ctx, &pb.EnrollRequest{Cluster: "orders", Role: "taskmanager", Holder: "tm-0", Csr: []byte{0x30}})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("request %d: %v, want Unauthenticated", i+1, err)
		}
	}
	if n := deniedMetric(t, metricsAddr, "unauthenticated"); n != flood {
		t.Errorf("flinkpki_requests_denied_total{reason=\"unauthenticated\"} = %d, want %d", n, flood)
	}
	s.cli(t, s.admin, "cluster", "create", "after-the-flood").ok(t)

	s.stop(t) // writes the last summary
	s = startServer(t, dir)
	entries := auditEntries(t, s, "")
	created := false
	for _, e := range entries {
		if e.Action == "cluster.create" && e.Cluster == "after-the-flood" && e.Outcome == "ok" {
			created = true
		}
	}
	tallyRefusals(t, entries, func(e auditJSON) bool {
		if e.Details["reason"] != "unauthenticated" {
			return false
		}
		if e.Actor != "anonymous:127.0.0.1" {
			t.Errorf("refusal audited with actor %q, want the address it came from", e.Actor)
		}
		return true
	}).wantSummarised(t, flood)
	if !created {
		t.Error("the administrator's change during the flood is not in the audit trail")
	}
	s.cli(t, s.admin, "audit", "verify").ok(t)
}

// scrapeMetrics returns what the server's /metrics at addr serves.
func scrapeMetrics(t testing.TB, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// deniedMetric reads flinkpki_requests_denied_total for reason.
func deniedMetric(t testing.TB, addr, reason string) int {
	t.Helper()
	body := scrapeMetrics(t, addr)
	n, ok := metricValue(body, fmt.Sprintf("flinkpki_requests_denied_total{reason=%q}", reason))
	if !ok {
		t.Fatalf("/metrics has no denied count for %s:\n%s", reason, firstLines(body, 20))
	}
	return n
}

// metricValue is the whole-number value of series (NAME{LABELS}) in a
// /metrics body, and whether the body has it.
func metricValue(body, series string) (int, bool) {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			n, err := strconv.Atoi(v)
			return n, err == nil
		}
	}
	return 0, false
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// TestANonAdministratorPollingAdminCallsIsAuditedInSummaries: an
// enrollment token (or any pod's projected token) that calls an
// administrator's service in a loop is refused every time, in words that
// say what it may do, and audited through the same gate as unauthenticated
// floods: a burst of entries, then summaries that account for every call.
func TestANonAdministratorPollingAdminCallsIsAuditedInSummaries(t *testing.T) {
	const flood = 200
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	tok := s.tokenFor(t, "orders", "taskmanager")
	secret, err := enroll.ReadToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := enroll.Dial(s.addr, s.caFile, secret)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := pb.NewClusterServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range flood {
		_, err := c.ListClusters(ctx, &pb.ListClustersRequest{})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "an enrollment token may only enroll or bake for its cluster and role") {
			t.Fatalf("request %d: %v, want PermissionDenied saying what the token may do", i+1, err)
		}
	}
	s.stop(t)
	s = startServer(t, dir)
	tallyRefusals(t, auditEntries(t, s, ""), func(e auditJSON) bool {
		if e.Details["reason"] != "permission_denied" {
			return false
		}
		if !strings.HasPrefix(e.Actor, "enrollment-token:") {
			t.Errorf("refusal audited with actor %q, want the enrollment token", e.Actor)
		}
		return true
	}).wantSummarised(t, flood)
}

// TestAnEnrollmentRefusedInALoopIsAuditedInSummaries: the authority's own
// refusals (here a token used for another role) go through the same gate:
// a burst of entries, then summaries that name the cluster and account for
// every request.
func TestAnEnrollmentRefusedInALoopIsAuditedInSummaries(t *testing.T) {
	const flood = 200
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	c := enrollClient(t, s.addr, s.caFile, s.tokenFor(t, "orders", "taskmanager", "--uses", "10"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr := csrFor(t, key, nil)
	for i := range flood {
		_, err := c.Enroll(ctx, &pb.EnrollRequest{Cluster: "orders", Role: "jobmanager", Holder: "jm-0", Csr: csr})
		if code := status.Code(err); code != codes.PermissionDenied && code != codes.ResourceExhausted {
			t.Fatalf("request %d: %v, want it refused for its role", i+1, err)
		}
	}
	s.stop(t)
	s = startServer(t, dir)
	tallyRefusals(t, auditEntries(t, s, ""), func(e auditJSON) bool {
		if !strings.HasPrefix(e.Actor, "enrollment-token:") {
			return false
		}
		if e.Cluster != "orders" {
			t.Errorf("a refusal names cluster %q, want orders", e.Cluster)
		}
		return true
	}).wantSummarised(t, flood)
}

// refusalTally counts the refusals in the audit trail that match: those
// with an entry each, and those in summaries (details.count).
type refusalTally struct{ individual, summarised, summaries int }

func tallyRefusals(t *testing.T, entries []auditJSON, match func(auditJSON) bool) refusalTally {
	t.Helper()
	var r refusalTally
	for _, e := range entries {
		if e.Outcome != "denied" || !match(e) {
			continue
		}
		v, ok := e.Details["count"]
		if !ok {
			r.individual++
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("summary count %q", v)
		}
		r.summaries++
		r.summarised += n
	}
	return r
}

// wantSummarised fails unless the tally accounts for all n refusals, most
// of them in summaries.
func (r refusalTally) wantSummarised(t *testing.T, n int) {
	t.Helper()
	t.Logf("%d refusals audited one by one, %d in %d summaries", r.individual, r.summarised, r.summaries)
	if r.individual+r.summarised != n {
		t.Fatalf("audit accounts for %d one by one + %d in %d summaries = %d refusals, want %d",
			r.individual, r.summarised, r.summaries, r.individual+r.summarised, n)
	}
	if r.individual >= n/2 || r.summaries == 0 {
		t.Errorf("%d of %d refusals got an entry each (%d summaries): the flood was not summarised", r.individual, n, r.summaries)
	}
}

// TestRefusalsAreAuditedUnderTheClusterTheyName: a used-up token and a
// rate-limited enrollment for cluster orders are refused before the
// authority sees them (authentication, the rate limit); their audit
// entries still name orders, so `audit list --cluster orders` shows the
// attempts on it, and their text is the refusal's, not Go's rendering of a
// gRPC status.
func TestRefusalsAreAuditedUnderTheClusterTheyName(t *testing.T) {
	s := startServer(t, "", "--enroll-rate", "0.01", "--enroll-burst", "2") // init asks twice: its key type, then its enrollment
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	once := s.tokenFor(t, "orders", "taskmanager", "--uses", "1")
	initArgs := []string{"init", "--cluster", "orders", "--role", "taskmanager", "--token-file", once, "--timeout", "3s"}
	s.cli(t, "", append(initArgs, "--out", filepath.Join(t.TempDir(), "a"))...).ok(t)
	s.cli(t, "", append(initArgs, "--out", filepath.Join(t.TempDir(), "b"))...).refused(t, "used-up")

	tok, err := os.ReadFile(s.tokenFor(t, "orders", "taskmanager", "--uses", "10"))
	if err != nil {
		t.Fatal(err)
	}
	c := enrollClientWithToken(t, s.addr, s.caFile, strings.TrimSpace(string(tok)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var limited error
	for i := range 3 {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		_, err := c.Enroll(ctx, &pb.EnrollRequest{Cluster: "orders", Role: "taskmanager", Holder: fmt.Sprintf("tm-%d", i), Csr: csrFor(t, key, nil)})
		limited = err
	}
	if status.Code(limited) != codes.ResourceExhausted {
		t.Fatalf("the third enrollment past a burst of 2: %v, want ResourceExhausted", limited)
	}

	seen := map[string]bool{}
	for _, e := range auditEntries(t, s, "orders") {
		if e.Outcome != "denied" {
			continue
		}
		seen[e.Details["reason"]] = true
		if strings.Contains(e.Reason, "rpc error") || strings.Contains(e.Reason, "code =") {
			t.Errorf("refusal %s is audited as %q: Go's rendering of a gRPC status", e.Details["reason"], e.Reason)
		}
	}
	for _, reason := range []string{"unauthenticated", "rate_limited"} {
		if !seen[reason] {
			t.Errorf("audit list --cluster orders has no %s refusal (it has %v)", reason, seen)
		}
	}
}
