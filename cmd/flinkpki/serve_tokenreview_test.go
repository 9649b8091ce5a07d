package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	authnv1 "k8s.io/api/authentication/v1"

	"github.com/flinkpki/flinkpki/api"
	"github.com/flinkpki/flinkpki/enroll"
	"github.com/flinkpki/flinkpki/k8sauth"
	"github.com/flinkpki/flinkpki/k8sauth/k8stest"
	pb "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// apiServer stands in for the Kubernetes API server's TokenReview endpoint
// (no cluster runs on these machines). It decodes requests strictly into
// the real k8s.io/api types, checks the caller's own token, and vouches for
// tokens its issuer signed whose pod has not been deleted.
type apiServer struct {
	verifier  *k8sauth.Verifier
	callerTok string
	mu        sync.Mutex
	deleted   map[string]bool
	calls     int
	// audienceUnaware answers as an API server that ignores the requested
	// audiences: authenticated, with an empty audience list.
	audienceUnaware bool
	// delay is how long each review takes (a busy API server).
	delay time.Duration
	// unavailable is how many reviews to come it answers HTTP 503.
	unavailable int
	// inFlight and maxInFlight count the reviews it is answering.
	inFlight, maxInFlight int
	// podFor, when set, names the pod it vouches for whatever the token
	// says (an API server that disagrees with the JWKS).
	podFor string
}

// set changes the apiServer's behaviour between requests.
func (a *apiServer) set(change func(*apiServer)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	change(a)
}

// reviews is how many reviews it has been asked for.
func (a *apiServer) reviews() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

func (a *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/apis/authentication.k8s.io/v1/tokenreviews" {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+a.callerTok {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	var tr authnv1.TokenReview
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tr); err != nil || tr.Kind != "TokenReview" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.calls++
	a.inFlight++
	a.maxInFlight = max(a.maxInFlight, a.inFlight)
	defer func() {
		a.mu.Lock()
		a.inFlight--
		a.mu.Unlock()
	}()
	delay := a.delay
	down := a.unavailable > 0
	if down {
		a.unavailable--
	}
	a.mu.Unlock()
	if down {
		http.Error(w, "etcdserver: leader changed", http.StatusServiceUnavailable)
		return
	}
	select {
	case <-time.After(delay):
	case <-r.Context().Done():
		return
	}
	id, err := a.verifier.Verify(r.Context(), tr.Spec.Token)
	a.mu.Lock()
	gone := err == nil && a.deleted[id.Pod]
	a.mu.Unlock()
	switch {
	case err != nil:
		tr.Status = authnv1.TokenReviewStatus{Error: "invalid bearer token"}
	case gone:
		tr.Status = authnv1.TokenReviewStatus{Error: "pod " + id.Pod + " does not exist"}
	default:
		tr.Status = authnv1.TokenReviewStatus{Authenticated: true, Audiences: tr.Spec.Audiences, User: authnv1.UserInfo{
			Username: id.Subject, UID: id.ServiceAccountUID,
			Extra: map[string]authnv1.ExtraValue{"authentication.kubernetes.io/pod-name": {id.Pod}},
		}}
		a.mu.Lock()
		if a.audienceUnaware {
			tr.Status.Audiences = nil
		}
		if a.podFor != "" {
			tr.Status.User.Extra["authentication.kubernetes.io/pod-name"] = authnv1.ExtraValue{a.podFor}
		}
		a.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(&tr)
}

const k8sIssuerURL = "https://kubernetes.default.svc.cluster.local"

// startAPIServer starts an apiServer for the issuers' tokens and returns it with
// the serve flags that make flinkpki ask it.
func startAPIServer(t *testing.T, issuers ...*k8stest.Issuer) (*apiServer, []string) {
	t.Helper()
	v, err := k8sauth.New(k8sauth.Config{Issuer: k8sIssuerURL, JWKS: k8stest.JWKS(t, issuers...)})
	if err != nil {
		t.Fatal(err)
	}
	api := &apiServer{verifier: v, callerTok: "server-own-token", deleted: map[string]bool{}}
	ts := httptest.NewTLSServer(api)
	t.Cleanup(ts.Close)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "api-ca.crt")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644)
	tokFile := filepath.Join(dir, "own-token")
	os.WriteFile(tokFile, []byte(api.callerTok+"\n"), 0o600)
	return api, []string{"--k8s-tokenreview", "--k8s-api-server", ts.URL, "--k8s-api-ca-file", caFile, "--k8s-api-token-file", tokFile}
}

// TestTokenReviewRefusesTokensOfDeletedPods: init's two requests (its key
// type, then its enrollment) cost the API server one review, and so does a
// second init within the cache's second; a pod deleted meanwhile is
// refused once that answer has expired.
func TestTokenReviewRefusesTokensOfDeletedPods(t *testing.T) {
	iss := k8stest.NewECIssuer(t, k8sIssuerURL)
	api, review := startAPIServer(t, iss)
	s := startServer(t, "", append([]string{"--k8s-issuer", k8sIssuerURL, "--k8s-jwks-file", k8stest.JWKSFile(t, iss), "--k8s-tokenreview-cache", "2s"}, review...)...)
	s.cli(t, s.admin, "cluster", "create", "orders", "--k8s-namespace", "flink", "--k8s-service-account", "orders-flink").ok(t)
	claims := k8stest.Claims{Namespace: "flink", ServiceAccount: "orders-flink", Pod: "orders-tm-1"}
	tok := iss.MintFile(claims)
	initArgs := func(out string) []string {
		return []string{"init", "--cluster", "orders", "--role", "taskmanager", "--out", out, "--token-file", tok, "--timeout", "5s"}
	}
	reviewed := time.Now()
	s.cli(t, "", initArgs(filepath.Join(t.TempDir(), "ok"))...).ok(t)
	answered := time.Now() // the review came between reviewed and answered
	if calls := api.reviews(); calls != 1 && answered.Sub(reviewed) < 2*time.Second {
		t.Fatalf("the API server reviewed init's token %d times, want once for both its requests", calls)
	}
	first := api.reviews()

	api.set(func(a *apiServer) { a.deleted["orders-tm-1"] = true })
	again := s.cli(t, "", initArgs(filepath.Join(t.TempDir(), "cached"))...)
	if time.Since(reviewed) < 2*time.Second { // else the answer may have expired under a slow machine
		again.ok(t)
		if calls := api.reviews(); calls != first {
			t.Errorf("a second init within the cache's time was reviewed again (%d reviews, %d before)", calls, first)
		}
	}
	time.Sleep(time.Until(answered.Add(2*time.Second + 50*time.Millisecond)))
	out := filepath.Join(t.TempDir(), "gone")
	r := s.cli(t, "", initArgs(out)...)
	r.refused(t, "does not exist")
	if strings.Contains(r.stderr, "eyJ") {
		t.Error("the error echoes the token")
	}
	if got := entries(t, out); len(got) != 0 {
		t.Errorf("a refused init wrote %v", got)
	}
}

// TestAPodWhoseTokenIsUnderReviewKeepsItsSlot: every request slot is held
// by stalled streams when a pod's init container comes; its request takes
// a slot of one of them, and while the API server takes 3 s to review its
// token, a flood of new stalled streams from nine more addresses takes
// every other slot in turn. The pod's requests are never cut short (once,
// one under review was, and refused as unauthenticated, for good); at
// most they wait for a slot (RESOURCE_EXHAUSTED, retried).
func TestAPodWhoseTokenIsUnderReviewKeepsItsSlot(t *testing.T) {
	api, s, tok := reviewedOnly(t)
	api.set(func(a *apiServer) { a.delay = 3 * time.Second })

	ended := make(chan streamEnd, 3*maxStreamsInFlight)
	stallStreams(t, s.addr, 10, maxStreamsInFlight, ended)
	out := filepath.Join(t.TempDir(), "tls")
	done := make(chan result, 1)
	go func() {
		done <- s.cli(t, "", "init", "--cluster", "orders", "--role", "taskmanager", "--out", out, "--token-file", tok, "--timeout", "30s")
	}()
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		calls := api.reviews()
		if calls > 0 {
			break
		}
		if time.Since(start) > 20*time.Second {
			t.Fatal("init's request never reached the API server's review")
		}
	}
	stallStreams(t, s.addr, 30, maxStreamsInFlight+maxStreamsPerConn, ended)
	select {
	case r := <-done:
		r.ok(t)
		// init may have waited for a slot (RESOURCE_EXHAUSTED, retried),
		// but no request of its was ended under way.
		if strings.Contains(r.stderr, "ended the request") {
			t.Errorf("an init request was ended while its token was reviewed:\n%s", r.stderr)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("init did not finish")
	}
	if got := entries(t, out); len(got) == 0 {
		t.Fatal("init wrote nothing")
	}
	calls := api.reviews()
	if calls != 1 {
		t.Errorf("the API server reviewed %d tokens, want 1 (init's key-type question; its enrollment reuses the answer)", calls)
	}
}

// TestARequestThatEndsDuringItsReviewIsNoRefusal: a request whose deadline
// passes while the API server reviews its token ends as DEADLINE_EXCEEDED
// (which init retries), and is neither refused as unauthenticated nor
// audited as a refusal: nothing was wrong with the token.
func TestARequestThatEndsDuringItsReviewIsNoRefusal(t *testing.T) {
	api, s, tok := reviewedOnly(t)
	api.set(func(a *apiServer) { a.delay = 4 * time.Second }) // under the review's own timeout of 5 s
	raw, err := os.ReadFile(tok)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := enroll.Dial(s.addr, s.caFile, strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	// Connected first (a health check needs no token), so that the
	// deadline runs out in the review, not in the handshake.
	if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, err = pb.NewEnrollmentServiceClient(conn).Enroll(ctx, &pb.EnrollRequest{Cluster: "orders", Role: "taskmanager", Holder: "orders-tm-1", Csr: []byte{0x30}})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("an enrollment whose deadline passed during its review: %v, want DeadlineExceeded", err)
	}
	// The review must have started, or nothing was tested; and the
	// server's handler has ended (whatever it audits is written) once the
	// request's own log line is there.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		calls := api.reviews()
		ended := strings.Contains(s.stderr.String(), pb.EnrollmentService_Enroll_FullMethodName)
		if calls > 0 && ended {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API server was asked for %d reviews, the request's log line is there: %v; want the review asked for and the request ended:\n%s", calls, ended, s.stderr.String())
		}
	}
	if audit := s.cli(t, s.admin, "audit", "list", "-o", "json").ok(t).stdout; strings.Contains(audit, "unauthenticated") {
		t.Errorf("a request that ended during its review was audited as a refusal:\n%s", audit)
	}
	if strings.Contains(s.stderr.String(), "unauthenticated") {
		t.Errorf("a request that ended during its review was logged as refused:\n%s", s.stderr.String())
	}
}

// TestAnAPIServerThatCannotReviewIsRetried: an API server that answers a
// TokenReview with HTTP 503 (or not at all, in time) said nothing about the
// token: the request fails as UNAVAILABLE, which init retries, and is no
// refusal. init enrolls once the API server answers (it failed for good).
func TestAnAPIServerThatCannotReviewIsRetried(t *testing.T) {
	api, s, tok := reviewedOnly(t)
	api.set(func(a *apiServer) { a.unavailable = 2 })
	r := s.cli(t, "", "init", "--cluster", "orders", "--role", "taskmanager", "--out", filepath.Join(t.TempDir(), "tls"), "--token-file", tok, "--timeout", "30s").ok(t)
	if !strings.Contains(r.stderr, "could not review the service-account token") || strings.Contains(r.stderr, "HTTP 503") {
		t.Errorf("init's retries do not say why, or say what the API server answered (the server log's to know):\n%s", r.stderr)
	}
	if !strings.Contains(s.stderr.String(), "it answered HTTP 503") {
		t.Errorf("the server log does not say why the review could not be had:\n%s", s.stderr.String())
	}
	if audit := s.cli(t, s.admin, "audit", "list", "-o", "json").ok(t).stdout; strings.Contains(audit, "unauthenticated") {
		t.Errorf("an unanswered review was audited as a refusal:\n%s", audit)
	}
}

// TestTokenReviewsInFlightAreBounded: each TokenReview holds a request
// slot until the API server answers, so a slow API server, or made-up
// tokens from many addresses (here eight, within each one's review
// budget), could hold every slot. At most maxReviewsInFlight wait at once;
// the rest are refused as RESOURCE_EXHAUSTED (init retries) without asking,
// and an administrator is served meanwhile.
func TestTokenReviewsInFlightAreBounded(t *testing.T) {
	fake, s, _ := reviewedOnly(t)
	fake.set(func(a *apiServer) { a.delay = 4 * time.Second }) // under the review's own timeout of 5 s
	forged := k8stest.NewECIssuer(t, k8sIssuerURL).Mint(k8stest.Claims{Namespace: "flink", ServiceAccount: "orders-flink", Pod: "orders-tm-1"})
	const addrs, each = 8, 40 // 320 reviews asked for; 40 is within an address's burst of 50
	clients := make([]pb.EnrollmentServiceClient, addrs)
	for a := range addrs {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(40+a))}}
		conn, err := enroll.Dial(s.addr, s.caFile, forged, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		// Connected before the requests start (a health check needs no
		// token), so that they come within the reviews' 4 s.
		if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
		clients[a] = pb.NewEnrollmentServiceClient(conn)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	codesSeen := map[codes.Code]int{}
	start := time.Now()
	for _, c := range clients {
		for range each {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				_, err := c.Enroll(ctx, &pb.EnrollRequest{Cluster: "orders", Role: "taskmanager", Holder: "orders-tm-1", Csr: []byte{0x30}})
				mu.Lock()
				codesSeen[status.Code(err)]++
				if status.Code(err) == codes.ResourceExhausted && !strings.Contains(err.Error(), "TokenReviews of this server to answer") {
					t.Errorf("refused for another reason: %v", err)
				}
				mu.Unlock()
			}()
		}
	}
	time.Sleep(500 * time.Millisecond) // the reviews are under way
	s.cli(t, s.admin, "cluster", "list").ok(t)
	wg.Wait()
	fake.mu.Lock()
	calls, most := fake.calls, fake.maxInFlight
	fake.mu.Unlock()
	// A review that the API server did not answer within the server's own
	// timeout (5 s; on a loaded machine, 256 new TLS connections to the
	// fake take a while) fails as UNAVAILABLE, and may never have reached
	// the fake: so the refused and the reviewed add up to at most all of
	// them, never more (no refused request was reviewed too).
	refused := codesSeen[codes.ResourceExhausted]
	if most > api.MaxReviewsInFlight || calls+refused > addrs*each {
		t.Fatalf("%d made-up tokens: the API server answered %d reviews at once at most (at most %d), %d in all, %d refused, %v", addrs*each, most, api.MaxReviewsInFlight, calls, refused, codesSeen)
	}
	for c, n := range codesSeen {
		if c != codes.Unauthenticated && c != codes.Unavailable && c != codes.ResourceExhausted {
			t.Errorf("%d requests ended %s; want each refused (made-up token, or the bound) or unanswered in time: %v", n, c, codesSeen)
		}
	}
	if codesSeen[codes.ResourceExhausted] == 0 {
		t.Fatalf("no request was refused for the bound: the %d requests did not come within the reviews' 4 s (%v after the first), %v", addrs*each, time.Since(start), codesSeen)
	}
}

// TestAServerThatCannotReadItsOwnTokenRetries: while the server cannot read
// its own token to ask the API server (the kubelet is rotating it, a mount
// is late), a pod's request fails as UNAVAILABLE, which init retries, not
// as a refused token; it enrolls once the file is back. The pod is told
// the review could not be had; the server log says why.
func TestAServerThatCannotReadItsOwnTokenRetries(t *testing.T) {
	iss := k8stest.NewECIssuer(t, k8sIssuerURL)
	_, review := startAPIServer(t, iss)
	s := startServer(t, "", review...)
	s.cli(t, s.admin, "cluster", "create", "orders", "--k8s-namespace", "flink", "--k8s-service-account", "orders-flink").ok(t)
	tok := iss.MintFile(k8stest.Claims{Namespace: "flink", ServiceAccount: "orders-flink", Pod: "orders-tm-1"})
	own := review[slices.Index(review, "--k8s-api-token-file")+1]
	if err := os.Rename(own, own+".away"); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(1500*time.Millisecond, func() { os.Rename(own+".away", own) })
	r := s.cli(t, "", "init", "--cluster", "orders", "--role", "taskmanager", "--out", filepath.Join(t.TempDir(), "tls"), "--token-file", tok, "--timeout", "30s").ok(t)
	if !strings.Contains(r.stderr, "could not review the service-account token") || strings.Contains(r.stderr, own) {
		t.Errorf("init's retries do not say why, or name the server's own token file (the server log's to know):\n%s", r.stderr)
	}
	if !strings.Contains(s.stderr.String(), "read the server's own token") {
		t.Errorf("the server log does not say why the review could not be had:\n%s", s.stderr.String())
	}
}

// reviewedOnly starts a server that judges Kubernetes tokens by TokenReview
// alone, against an apiServer, with the cluster orders bound to
// flink/orders-flink, and returns a token file of its pod orders-tm-1.
func reviewedOnly(t *testing.T) (*apiServer, *testServer, string) {
	t.Helper()
	iss := k8stest.NewECIssuer(t, k8sIssuerURL)
	api, review := startAPIServer(t, iss)
	s := startServer(t, "", review...)
	s.cli(t, s.admin, "cluster", "create", "orders", "--k8s-namespace", "flink", "--k8s-service-account", "orders-flink").ok(t)
	return api, s, iss.MintFile(k8stest.Claims{Namespace: "flink", ServiceAccount: "orders-flink", Pod: "orders-tm-1"})
}

// TestTokenReviewAloneNeedsTheAudienceConfirmed: with TokenReview as the
// only check, an answer that lists no audience vouches for a token of the
// API server's audience, not flinkpki's, and is refused.
func TestTokenReviewAloneNeedsTheAudienceConfirmed(t *testing.T) {
	iss := k8stest.NewECIssuer(t, k8sIssuerURL)
	api, review := startAPIServer(t, iss)
	api.audienceUnaware = true
	s := startServer(t, "", review...)
	s.cli(t, s.admin, "cluster", "create", "orders", "--k8s-namespace", "flink", "--k8s-service-account", "orders-flink").ok(t)
	tok := iss.MintFile(k8stest.Claims{Namespace: "flink", ServiceAccount: "orders-flink", Pod: "orders-tm-1"})
	initArgs := func(out string) []string {
		return []string{"init", "--cluster", "orders", "--role", "taskmanager", "--out", out, "--token-file", tok, "--timeout", "5s"}
	}
	out := filepath.Join(t.TempDir(), "unconfirmed")
	s.cli(t, "", initArgs(out)...).refused(t, "did not confirm the audience")
	if got := entries(t, out); len(got) != 0 {
		t.Errorf("a refused init wrote %v", got)
	}
	api.set(func(a *apiServer) { a.audienceUnaware = false })
	s.cli(t, "", initArgs(filepath.Join(t.TempDir(), "ok"))...).ok(t)
}

// TestTokenReviewAloneIsBoundedPerSource: with the API server as the only
// judge of Kubernetes tokens, each JWT-shaped bearer costs it a request, so
// a caller with no valid credential could make flinkpki flood it. One
// address gets reviewBurst reviews and then reviewsPerSecond: the rest are
// refused as rate-limited, which init retries, without asking.
func TestTokenReviewAloneIsBoundedPerSource(t *testing.T) {
	iss := k8stest.NewECIssuer(t, k8sIssuerURL)
	api, review := startAPIServer(t, iss)
	s := startServer(t, "", review...)
	s.cli(t, s.admin, "cluster", "create", "orders", "--k8s-namespace", "flink", "--k8s-service-account", "orders-flink").ok(t)
	forged := k8stest.NewECIssuer(t, k8sIssuerURL).Mint(k8stest.Claims{Namespace: "flink", ServiceAccount: "orders-flink", Pod: "orders-tm-1"})
	c := enrollClientWithToken(t, s.addr, s.caFile, forged)
	sent, limited, elapsed := floodUntilLimited(t, func() error {
		_, err := c.Enroll(context.Background(), &pb.EnrollRequest{Cluster: "orders", Role: "taskmanager", Holder: "orders-tm-1", Csr: []byte{0x30}})
		return err
	}, codes.Unauthenticated)
	calls := api.reviews()
	if most := 50 + int(10*elapsed.Seconds()) + 1; calls > most || limited == 0 {
		t.Fatalf("%d forged tokens in %s: the API server was asked %d times (at most %d), %d refused as rate-limited", sent, elapsed, calls, most, limited)
	}
	if calls+limited != sent {
		t.Errorf("%d reviews and %d rate-limited refusals for %d requests", calls, limited, sent)
	}
}

// TestTokenReviewsOfVerifiedTokensAreBoundedPerServiceAccount: with offline
// verification and TokenReview both on, any pod of the Kubernetes cluster
// can mint a token that verifies offline. An administrator's call made with
// it is refused without asking the API server (no review can make a pod an
// administrator); enrollments are reviewed, but at most as many per
// service account as the enrollment limit admits (here --enroll-rate 5,
// --enroll-burst 20), the rest refused as rate-limited, which init retries.
func TestTokenReviewsOfVerifiedTokensAreBoundedPerServiceAccount(t *testing.T) {
	iss := k8stest.NewECIssuer(t, k8sIssuerURL)
	api, review := startAPIServer(t, iss)
	s := startServer(t, "", append([]string{"--k8s-issuer", k8sIssuerURL, "--k8s-jwks-file", k8stest.JWKSFile(t, iss),
		"--enroll-rate", "5", "--enroll-burst", "20", "--k8s-tokenreview-cache", "0"}, review...)...) // each request asks
	asked := api.reviews
	// A cluster binds the account: the API server is not asked about an
	// account that is bound to nothing (TestAnUnboundServiceAccountCostsNoReview).
	s.cli(t, s.admin, "cluster", "create", "orders", "--k8s-namespace", "random-app", "--k8s-service-account", "web").ok(t)
	tok := iss.Mint(k8stest.Claims{Namespace: "random-app", ServiceAccount: "web", Pod: "web-1"})
	conn, err := enroll.Dial(s.addr, s.caFile, tok)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	admin := pb.NewClusterServiceClient(conn)
	for i := range 100 {
		if _, err := admin.ListClusters(context.Background(), &pb.ListClustersRequest{}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("administrator call %d with a pod's token: %v, want it denied", i+1, err)
		}
	}
	if n := asked(); n != 0 {
		t.Errorf("100 administrator calls with a pod's token made %d TokenReviews, want none", n)
	}

	c := pb.NewEnrollmentServiceClient(conn)
	sent, limited, elapsed := floodUntilLimited(t, func() error {
		_, err := c.Enroll(context.Background(), &pb.EnrollRequest{Cluster: "orders", Role: "taskmanager", Holder: "web-1", Csr: []byte{0x30}})
		return err
	}, codes.InvalidArgument) // its CSR, once reviewed
	if n, most := asked(), 20+int(5*elapsed.Seconds())+1; n > most || limited == 0 {
		t.Fatalf("%d enrollments of one service account in %s: the API server was asked %d times (at most %d), %d refused as rate-limited", sent, elapsed, n, most, limited)
	}
}

// floodUntilLimited sends requests one after another until one is refused
// as rate-limited (ResourceExhausted), then ten more, at most 1000 in 60 s;
// every other answer must be one of refused. A fixed number of requests
// would need the machine fast enough to outrun the limiter's refill (120
// requests against a burst of 50 and 10/s failed when they took 7 s).
func floodUntilLimited(t *testing.T, send func() error, refused ...codes.Code) (sent, limited int, elapsed time.Duration) {
	t.Helper()
	start := time.Now()
	for more := -1; more != 0 && sent < 1000 && time.Since(start) < time.Minute; sent++ {
		err := send()
		switch code := status.Code(err); {
		case code == codes.ResourceExhausted:
			limited++
			if more < 0 {
				more = 11
			}
		case slices.Contains(refused, code):
		default:
			t.Fatalf("request %d: %v, want it refused", sent+1, err)
		}
		if more > 0 {
			more--
		}
	}
	return sent, limited, time.Since(start)
}

// TestAReviewThatDisagreesWithTheTokenIsRefusedEvenFromTheCache: an API
// server that vouches for another pod than the token (verified against the
// JWKS) names is refused, at its review and again when its answer is
// reused from the cache, without asking again.
func TestAReviewThatDisagreesWithTheTokenIsRefusedEvenFromTheCache(t *testing.T) {
	iss := k8stest.NewECIssuer(t, k8sIssuerURL)
	api, review := startAPIServer(t, iss)
	api.set(func(a *apiServer) { a.podFor = "orders-tm-9" })
	s := startServer(t, "", append([]string{"--k8s-issuer", k8sIssuerURL, "--k8s-jwks-file", k8stest.JWKSFile(t, iss), "--k8s-tokenreview-cache", "1m"}, review...)...)
	s.cli(t, s.admin, "cluster", "create", "orders", "--k8s-namespace", "flink", "--k8s-service-account", "orders-flink").ok(t)
	tok := iss.MintFile(k8stest.Claims{Namespace: "flink", ServiceAccount: "orders-flink", Pod: "orders-tm-1"})
	for i := range 2 {
		out := filepath.Join(t.TempDir(), "tls")
		s.cli(t, "", "init", "--cluster", "orders", "--role", "taskmanager", "--out", out, "--token-file", tok, "--timeout", "3s").refused(t, "the API server vouches for")
		if got := entries(t, out); len(got) != 0 {
			t.Errorf("init %d: a refused init wrote %v", i+1, got)
		}
	}
	if n := api.reviews(); n != 1 {
		t.Errorf("the API server reviewed the token %d times, want once (the second answer from the cache)", n)
	}
}

// TestARotatedSigningKeyIsLeftToTheAPIServer: the cluster rotated its
// service-account signing key and the JWKS file is out of date. With
// TokenReview on, a token signed by the new key is judged by the API
// server alone: the pod enrolls, a token the API server does not vouch
// for is still refused, and the log says to refresh the file, once.
// Without TokenReview the token is refused, naming the fix.
func TestARotatedSigningKeyIsLeftToTheAPIServer(t *testing.T) {
	t.Parallel()
	old, rotated := k8stest.NewECIssuer(t, k8sIssuerURL), k8stest.NewECIssuer(t, k8sIssuerURL)
	api, review := startAPIServer(t, old, rotated)
	stale := k8stest.JWKSFile(t, old)
	metricsAddr := freeAddr(t)
	s := startServer(t, "", append([]string{"--k8s-issuer", k8sIssuerURL, "--k8s-jwks-file", stale, "--metrics-listen", metricsAddr}, review...)...)
	unknownKeys := func() int {
		t.Helper()
		n, _ := metricValue(scrapeMetrics(t, metricsAddr), "flinkpki_k8s_jwks_unknown_key_total")
		return n
	}
	s.cli(t, s.admin, "cluster", "create", "orders", "--k8s-namespace", "flink", "--k8s-service-account", "orders-flink").ok(t)
	initWith := func(s *testServer, iss *k8stest.Issuer, pod string) result {
		tok := iss.MintFile(k8stest.Claims{Namespace: "flink", ServiceAccount: "orders-flink", Pod: pod})
		return s.cli(t, "", "init", "--cluster", "orders", "--role", "taskmanager", "--out", filepath.Join(t.TempDir(), "tls"), "--token-file", tok, "--timeout", "5s")
	}
	initWith(s, old, "orders-tm-0").ok(t)
	if n := api.reviews(); n != 1 {
		t.Fatalf("%d reviews for a token of the known key; want 1", n)
	}
	// A key neither knows: reviewed (and refused) when it enrolls, not
	// when it calls what needs an administrator, which no service-account
	// token is; and it says nothing about the file.
	stranger := k8stest.NewECIssuer(t, k8sIssuerURL)
	initWith(s, stranger, "orders-tm-4").refused(t, "unauthenticated")
	strangerTok := stranger.MintFile(k8stest.Claims{Namespace: "flink", ServiceAccount: "orders-flink", Pod: "orders-tm-4"})
	s.cli(t, strangerTok, "cluster", "list").refused(t, "not in the JWKS")
	if n := api.reviews(); n != 2 {
		t.Errorf("%d reviews after a stranger's enrollment and administrator call; want 2 (the enrollment's)", n)
	}
	if strings.Contains(s.stderr.String(), "TokenReview judged") {
		t.Errorf("a token the API server refused made the server call the JWKS file stale:\n%s", s.stderr.String())
	}
	// Nor does it count towards the stale-file alert: anyone can make up
	// a key ID.
	if n := unknownKeys(); n != 0 {
		t.Errorf("flinkpki_k8s_jwks_unknown_key_total %d after a stranger's tokens only; want 0", n)
	}
	initWith(s, rotated, "orders-tm-1").ok(t)
	initWith(s, rotated, "orders-tm-2").ok(t)
	if n := api.reviews(); n != 4 {
		t.Errorf("%d reviews after two tokens of the rotated key; want 4", n)
	}
	if n := unknownKeys(); n != 2 {
		t.Errorf("flinkpki_k8s_jwks_unknown_key_total %d after two vouched-for tokens of the rotated key; want 2", n)
	}
	api.set(func(a *apiServer) { a.deleted["orders-tm-3"] = true })
	initWith(s, rotated, "orders-tm-3").refused(t, "does not exist")
	if logs := s.stderr.String(); strings.Count(logs, "TokenReview judged a service-account token alone") != 1 || !strings.Contains(logs, "update --k8s-jwks-file") {
		t.Errorf("the server log does not say once that the JWKS file is stale:\n%s", logs)
	}

	offline := startServer(t, "", "--k8s-issuer", k8sIssuerURL, "--k8s-jwks-file", stale)
	offline.cli(t, offline.admin, "cluster", "create", "orders", "--k8s-namespace", "flink", "--k8s-service-account", "orders-flink").ok(t)
	initWith(offline, rotated, "orders-tm-1").refused(t, "update --k8s-jwks-file")
}

// TestAnUnboundServiceAccountCostsNoReview: any pod of the Kubernetes
// cluster can mint a token for flinkpki's audience. With the JWKS, one
// whose service account the requested cluster does not bind for the
// requested role is refused as that account, and audited, without asking
// the API server (a cluster that does not exist included); only a token
// whose account is bound for its role costs a review. With TokenReview
// alone the claims prove nothing, and answering from them would tell a
// self-signed token which clusters exist and what they bind: such tokens
// are reviewed first, and refused the same way after. A call that needs
// an administrator costs no review in either mode.
func TestAnUnboundServiceAccountCostsNoReview(t *testing.T) {
	iss := k8stest.NewECIssuer(t, k8sIssuerURL)
	api, review := startAPIServer(t, iss)
	verified := startServer(t, "", append([]string{"--k8s-issuer", k8sIssuerURL, "--k8s-jwks-file", k8stest.JWKSFile(t, iss),
		"--k8s-tokenreview-cache", "0"}, review...)...)
	reviewedAlone := startServer(t, "", append([]string{"--k8s-tokenreview-cache", "0"}, review...)...)
	for _, s := range []*testServer{verified, reviewedAlone} {
		s.cli(t, s.admin, "cluster", "create", "orders", "--k8s-binding", "flink/orders-tm:taskmanager").ok(t)
	}
	tm := iss.Mint(k8stest.Claims{Namespace: "flink", ServiceAccount: "orders-tm", Pod: "orders-tm-1"})
	web := iss.Mint(k8stest.Claims{Namespace: "random-app", ServiceAccount: "web", Pod: "web-1"})
	enrollWith := func(s *testServer, tok, cluster, role string) error {
		_, err := enrollClientWithToken(t, s.addr, s.caFile, tok).Enroll(context.Background(),
			&pb.EnrollRequest{Cluster: cluster, Role: role, Holder: "x", Csr: []byte{0x30}})
		return err
	}
	refusals := []struct {
		tok, cluster, role, want string
	}{
		{web, "orders", "taskmanager", `service account random-app/web is not bound to cluster "orders"`},
		{web, "no-such", "taskmanager", `service account random-app/web is not bound to cluster "no-such"`},
		{tm, "orders", "jobmanager", "may enroll for cluster \"orders\" as taskmanager only, not jobmanager"},
		{tm, "orders", "rest-client", "cannot obtain rest-client material"},
	}
	for _, s := range []*testServer{verified, reviewedAlone} {
		before := api.reviews()
		for _, c := range refusals {
			if err := enrollWith(s, c.tok, c.cluster, c.role); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s as %s: %v; want it denied: %s", c.cluster, c.role, err, c.want)
			}
		}
		if _, err := pb.NewClusterServiceClient(dialWithToken(t, s, web)).ListClusters(context.Background(), &pb.ListClustersRequest{}); status.Code(err) != codes.PermissionDenied ||
			!strings.Contains(err.Error(), "needs an administrator token") {
			t.Errorf("an administrator's call with a pod's token: %v; want it denied", err)
		}
		want := 0 // with the JWKS: refused as the verified account, unreviewed
		if s == reviewedAlone {
			want = len(refusals) // each reviewed before it is refused
		}
		if n := api.reviews() - before; n != want {
			t.Fatalf("the API server was asked %d times about %d refused enrollments and an administrator's call, want %d", n, len(refusals), want)
		}
	}

	before := api.reviews()
	for _, s := range []*testServer{verified, reviewedAlone} {
		if err := enrollWith(s, tm, "orders", "taskmanager"); status.Code(err) != codes.InvalidArgument {
			t.Errorf("a bound account's enrollment with a bad CSR: %v; want it reviewed, then refused for its CSR", err)
		}
	}
	if n := api.reviews() - before; n != 2 {
		t.Errorf("two enrollments of a bound account cost %d reviews, want 2", n)
	}

	var list auditList
	if err := json.Unmarshal([]byte(verified.cli(t, verified.admin, "audit", "list", "-o", "json").ok(t).stdout), &list); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range list.Entries {
		if e.Action == "enroll" && e.Cluster == "no-such" {
			found = e.Actor == "k8s:random-app/web/pod=web-1" && e.Outcome == "denied" && e.Details["reason"] == "permission_denied" && strings.Contains(e.Reason, "is not bound")
			if !found {
				t.Errorf("the refusal before review is audited as %+v; want the verified account, denied, permission_denied", e)
			}
		}
	}
	if !found {
		t.Error("no audit entry for the enrollment into no-such refused before review")
	}
}

// dialWithToken is a connection to s that sends tok.
func dialWithToken(t *testing.T, s *testServer, tok string) *grpc.ClientConn {
	t.Helper()
	conn, err := enroll.Dial(s.addr, s.caFile, tok)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
