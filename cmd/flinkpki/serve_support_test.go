package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flinkpki/flinkpki/api"
	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/ca"
)

// TestTheKeyPoolPrewarmsKeyTypesOfEveryCluster: the RSA key types the bake
// key pool fills at start come from every cluster, not only the first page.
func TestTheKeyPoolPrewarmsKeyTypesOfEveryCluster(t *testing.T) {
	e := authoritytest.New(t)
	for _, c := range []authority.CreateClusterRequest{{Name: "a"}, {Name: "b"}, {Name: "c", KeyType: "rsa-2048"}, {Name: "d", KeyType: "rsa-2048"}} {
		e.CreateCluster(c)
	}
	for _, page := range []int{1, 2, 1000} {
		if got, want := rsaKeyTypesInUse(e.Ctx, e.Store, page), []ca.KeyType{"rsa-2048"}; !slices.Equal(got, want) {
			t.Errorf("in pages of %d: %v, want %v", page, got, want)
		}
	}
}

// TestAnInternalFaultIsLoggedWithTheIDTheCallerIsGiven: the caller of a
// request that fails with an internal fault (a full disk) learns only that
// it failed and the request's id; the server's log holds the fault under
// that id, at error level. Before, the caller was sent to a log that did
// not hold the cause.
func TestAnInternalFaultIsLoggedWithTheIDTheCallerIsGiven(t *testing.T) {
	logs := newSyncBuffer()
	rl := &requestLog{log: slog.New(slog.NewJSONHandler(logs, nil))}
	fault := errors.New("write /var/lib/flinkpki/.flinkpki-backup-1.db: no space left on device")
	_, err := rl.unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/flinkpki.v1.AdminService/Probe"},
		func(context.Context, any) (any, error) { return nil, &api.InternalError{Cause: fault} })
	st := status.Convert(err)
	if st.Code() != codes.Internal || strings.Contains(st.Message(), "no space") {
		t.Fatalf("the caller got %s %q, want Internal without the fault's detail", st.Code(), st.Message())
	}
	_, rest, named := strings.Cut(st.Message(), "(request ")
	id, _, closed := strings.Cut(rest, ")")
	if !named || !closed || id == "" {
		t.Fatalf("the caller's message names no request id: %q", st.Message())
	}
	var line struct {
		Level     string `json:"level"`
		RequestID string `json:"request_id"`
		Cause     string `json:"cause"`
	}
	for l := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		if err := json.Unmarshal([]byte(l), &line); err == nil && line.RequestID == id {
			break
		}
		line.RequestID = ""
	}
	if line.RequestID == "" || line.Level != "ERROR" || line.Cause != fault.Error() {
		t.Errorf("no error-level log line holds the fault under request %s:\n%s", id, logs.String())
	}
}

// TestAFloodOfFailedRequestsDoesNotFloodTheLog: anyone who reaches the port
// can fail requests (a bad token) as fast as the network allows. The log
// gets the first of them at info level, then at most failureLogRate a
// second; the rest go to debug level, and each info line says how many
// were left out since the one before.
func TestAFloodOfFailedRequestsDoesNotFloodTheLog(t *testing.T) {
	logs := newSyncBuffer()
	rl := newRequestLog(slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	refuse := func() {
		_, _ = rl.unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/flinkpki.v1.EnrollmentService/Enroll"},
			func(context.Context, any) (any, error) {
				return nil, status.Error(codes.Unauthenticated, "unknown token")
			})
	}
	const n = 2000
	start := time.Now()
	for range n {
		refuse()
	}
	elapsed := time.Since(start)
	time.Sleep(100 * time.Millisecond) // room for one more info line
	refuse()

	levels := map[string]int{}
	var notLogged float64
	for l := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		levels[e["level"].(string)]++
		if v, ok := e["failed_requests_not_logged"].(float64); ok {
			notLogged += v // each info line counts those since the one before
		}
	}
	most := failureLogBurst + int(failureLogRate*elapsed.Seconds()) + 2
	if levels["INFO"] > most || levels["INFO"]+levels["DEBUG"] != n+1 {
		t.Fatalf("%d failed requests in %s: %d info lines (at most %d), %d debug lines", n+1, elapsed, levels["INFO"], most, levels["DEBUG"])
	}
	if int(notLogged) != levels["DEBUG"] {
		t.Errorf("the info lines count %v requests not logged, want the %d logged at debug level", notLogged, levels["DEBUG"])
	}
}

// TestServeWarnsOfAServingCANearItsEnd: the serving CA is every client's
// trust anchor and is not renewed; inside a year of its expiry serve warns
// at start, and once it has expired it says that no client can verify it.
func TestServeWarnsOfAServingCANearItsEnd(t *testing.T) {
	now := time.Now()
	for _, tt := range []struct {
		left time.Duration
		want string
	}{
		{5 * 365 * 24 * time.Hour, ""},
		{100 * 24 * time.Hour, "level=WARN msg=\"the serving CA expires within a year"},
		{-time.Hour, "level=ERROR msg=\"the serving CA has expired"},
	} {
		logs := newSyncBuffer()
		warnServingCAExpiry(slog.New(slog.NewTextHandler(logs, nil)), &x509.Certificate{NotAfter: now.Add(tt.left)}, now)
		if got := logs.String(); tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("%s left: logged %q, want %q", tt.left, got, tt.want)
		}
	}
}

// TestBackgroundWorkEndsBeforeWaitReturns: serve closes its store after
// background.Wait, so Wait must return only once every piece of work,
// started with Go or running in Do, has returned; work offered after Wait
// began is refused; and Wait gives up at its context's end.
func TestBackgroundWorkEndsBeforeWaitReturns(t *testing.T) {
	var bg background
	stop := make(chan struct{})
	var ended atomic.Int32
	for range 3 {
		bg.Go(func() {
			<-stop
			time.Sleep(20 * time.Millisecond) // still running after the stop
			ended.Add(1)
		})
	}
	inDo := make(chan struct{})
	go bg.Do(func() error {
		close(inDo)
		<-stop
		time.Sleep(20 * time.Millisecond)
		ended.Add(1)
		return nil
	})
	<-inDo
	close(stop)
	if !bg.Wait(context.Background()) {
		t.Fatal("Wait gave up without a deadline")
	}
	if n := ended.Load(); n != 4 {
		t.Fatalf("Wait returned with %d of 4 pieces of work ended", n)
	}
	ran := false
	bg.Go(func() { ran = true })
	if err := bg.Do(func() error { ran = true; return nil }); err == nil || !strings.Contains(err.Error(), "stopping") {
		t.Errorf("Do after Wait = %v, want refused", err)
	}
	time.Sleep(10 * time.Millisecond)
	if ran {
		t.Error("work offered after Wait ran")
	}

	var stuck background
	hold := make(chan struct{})
	defer close(hold)
	stuck.Go(func() { <-hold })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if stuck.Wait(ctx) {
		t.Error("Wait reported work that never ended as ended")
	}
}
