package enroll

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flinkpki/flinkpki/ca"
)

func TestEnroll(t *testing.T) {
	tests := []struct {
		name        string
		clusterKey  ca.KeyType
		requestKey  ca.KeyType
		wantCalls   int
		wantKeyType ca.KeyType
	}{
		{"without a key type the client asks the server first, then sends a CSR", ca.KeyTypeECDSAP384, "", 2, ca.KeyTypeECDSAP384},
		{"with a key type the client sends its CSR at once", ca.KeyTypeECDSAP256, ca.KeyTypeECDSAP256, 1, ca.KeyTypeECDSAP256},
		{"an RSA cluster gets an RSA key made on the client", ca.KeyTypeRSA2048, "", 2, ca.KeyTypeRSA2048},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := &enrollServer{t: t, signer: newTestCA(t, "cluster CA"), keyType: tt.clusterKey}
			addr, caFile := startServer(t, srv)
			c := NewClient(dialTest(t, addr, caFile, "fpe_secret"), addr)
			res, err := c.Enroll(context.Background(), Request{
				Cluster: "orders", Role: "taskmanager", Holder: "tm-0", KeyType: tt.requestKey, IPs: []string{"10.0.0.7"},
			})
			if err != nil {
				t.Fatalf("Enroll() = %v", err)
			}
			if res.KeyType != tt.wantKeyType {
				t.Errorf("key type = %s, want %s", res.KeyType, tt.wantKeyType)
			}
			if !publicKeysEqual(res.Chain[0].PublicKey, res.Key.Public()) {
				t.Error("the leaf does not carry the client's key")
			}
			if res.Holder != "tm-0" || len(res.Trusted) != 1 || len(res.Chain) != 2 {
				t.Errorf("result = holder %q, %d trusted, chain %d; want tm-0, 1, 2", res.Holder, len(res.Trusted), len(res.Chain))
			}
			if len(srv.requests) != tt.wantCalls {
				t.Fatalf("server saw %d Enroll calls, want %d", len(srv.requests), tt.wantCalls)
			}
			if tt.wantCalls == 2 && len(srv.requests[0].GetCsr()) != 0 {
				t.Error("the discovery call carried a CSR")
			}
			last := srv.requests[len(srv.requests)-1]
			if last.GetCluster() != "orders" || last.GetRole() != "taskmanager" || len(last.GetIpAddresses()) != 1 {
				t.Errorf("request = %v, want cluster orders, role taskmanager, one IP", last)
			}
			for _, tok := range srv.tokens {
				if tok != "Bearer fpe_secret" {
					t.Errorf("authorization = %q, want %q", tok, "Bearer fpe_secret")
				}
			}
		})
	}
}

func TestEnrollRefusesALeafForAnotherKey(t *testing.T) {
	t.Parallel()
	srv := &enrollServer{t: t, signer: newTestCA(t, "cluster CA"), keyType: ca.KeyTypeECDSAP256, wrongLeaf: true}
	addr, caFile := startServer(t, srv)
	_, err := NewClient(dialTest(t, addr, caFile, "tok"), addr).Enroll(context.Background(), Request{Cluster: "a", Role: "jobmanager"})
	if !errors.Is(err, ErrBadResponse) {
		t.Errorf("Enroll() = %v, want ErrBadResponse", err)
	}
}

func TestEnrollRefusesABadIPBeforeCallingTheServer(t *testing.T) {
	t.Parallel()
	srv := &enrollServer{t: t, signer: newTestCA(t, "cluster CA"), keyType: ca.KeyTypeECDSAP256}
	addr, caFile := startServer(t, srv)
	_, err := NewClient(dialTest(t, addr, caFile, "tok"), addr).Enroll(context.Background(), Request{Cluster: "a", Role: "rest-server", IPs: []string{"not-an-ip"}})
	if err == nil || len(srv.requests) != 0 {
		t.Errorf("Enroll() = %v with %d server calls, want an error and none", err, len(srv.requests))
	}
}

func TestBakeReturnsTheServerMadeKeyWithItsChain(t *testing.T) {
	t.Parallel()
	srv := &enrollServer{t: t, signer: newTestCA(t, "cluster CA"), keyType: ca.KeyTypeECDSAP384}
	addr, caFile := startServer(t, srv)
	res, err := NewClient(dialTest(t, addr, caFile, "tok"), addr).Bake(context.Background(), Request{Cluster: "a", Role: "jobmanager", Holder: "jm"})
	if err != nil {
		t.Fatalf("Bake() = %v", err)
	}
	if res.KeyType != ca.KeyTypeECDSAP384 || res.Holder != "jm" {
		t.Errorf("Bake() = key type %s holder %q, want ecdsa-p384 jm", res.KeyType, res.Holder)
	}
}

func TestClientRetriesUntilTheServerIsUp(t *testing.T) {
	t.Parallel()
	// Nothing listens at first; the server starts during the second wait,
	// as a server coming up while a pod starts.
	srv := &enrollServer{t: t, signer: newTestCA(t, "cluster CA"), keyType: ca.KeyTypeECDSAP256}
	g, caFile := newTLSServer(t, srv)
	addr := freeAddr(t)
	c := NewClient(dialTest(t, addr, caFile, "tok"), addr)
	c.Timeout = time.Minute
	b, clock := newFakeBackoff()
	b.Sleep = func(ctx context.Context, d time.Duration) error {
		if len(clock.sleeps) == 1 {
			lis, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			go func() { _ = g.Serve(lis) }()
		}
		// Give gRPC's own reconnect (250ms base) a real moment; the
		// deadline runs on the fake clock.
		time.Sleep(100 * time.Millisecond)
		return clock.Sleep(ctx, d)
	}
	c.Backoff = b
	var logs []string
	c.Logf = func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }
	res, err := c.Enroll(context.Background(), Request{Cluster: "a", Role: "jobmanager", Holder: "jm-0"})
	if err != nil {
		t.Fatalf("Enroll() = %v after %d attempts, want success once the server is up", err, len(logs)+1)
	}
	if res.Holder != "jm-0" {
		t.Errorf("holder = %q, want jm-0", res.Holder)
	}
	if len(logs) < 2 || !strings.Contains(logs[0], "attempt 1: flinkpki at "+addr+" not reachable yet (connection refused); retrying in ") {
		t.Errorf("logs = %q, want at least two lines, the first naming the address and the refused connection", logs)
	}
}

func TestClientGivesUpAtTheTimeout(t *testing.T) {
	t.Parallel()
	srv := &enrollServer{t: t, signer: newTestCA(t, "cluster CA"), keyType: ca.KeyTypeECDSAP256}
	_, caFile := newTLSServer(t, srv)
	addr := freeAddr(t)
	c := NewClient(dialTest(t, addr, caFile, "tok"), addr)
	c.Timeout = 5 * time.Second
	b, clock := newFakeBackoff()
	c.Backoff = b
	_, err := c.Enroll(context.Background(), Request{Cluster: "a", Role: "jobmanager"})
	if !errors.Is(err, ErrTimeout) || status.Code(err) != codes.Unavailable {
		t.Fatalf("Enroll() to a closed port = %v, want ErrTimeout wrapping Unavailable", err)
	}
	if elapsed := clock.now.Sub(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)); elapsed > c.Timeout {
		t.Errorf("waited %s on the clock, more than the %s timeout", elapsed, c.Timeout)
	}
	if len(clock.sleeps) < 3 {
		t.Errorf("slept %d times, want several retries within 5s", len(clock.sleeps))
	}
}

func TestRefusalsAreNotRetried(t *testing.T) {
	t.Parallel()
	srv := &enrollServer{t: t, signer: newTestCA(t, "cluster CA"), keyType: ca.KeyTypeECDSAP256}
	addr, caFile := startServer(t, srv)
	c := NewClient(dialTest(t, addr, caFile, "tok"), addr)
	c.Timeout = 30 * time.Second
	b, clock := newFakeBackoff()
	c.Backoff = b
	// The server refuses a CSR of another key type with InvalidArgument.
	_, err := c.Enroll(context.Background(), Request{Cluster: "a", Role: "jobmanager", KeyType: ca.KeyTypeECDSAP384})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Enroll() = %v, want InvalidArgument", err)
	}
	if len(clock.sleeps) != 0 || len(srv.requests) != 1 {
		t.Errorf("slept %d times over %d calls, want no retry", len(clock.sleeps), len(srv.requests))
	}
}

func TestDial(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		caFile  string
		token   string
		wantErr error
	}{
		{"an empty token is refused before connecting", "", "  ", ErrNoToken},
		{"a CA file without certificates is refused", notPEM, "tok", nil},
		{"a missing CA file is refused", filepath.Join(dir, "missing"), "tok", os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn, err := Dial("127.0.0.1:1", tt.caFile, tt.token)
			if err == nil {
				conn.Close()
				t.Fatal("Dial() succeeded, want an error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Dial() = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestReadTokenTrimsWhitespace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	if err := os.WriteFile(path, []byte("  fpe_abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadToken(path); err != nil || got != "fpe_abc" {
		t.Errorf("ReadToken() = %q, %v; want fpe_abc", got, err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadToken(empty); !errors.Is(err, ErrNoToken) {
		t.Errorf("ReadToken(empty) = %v, want ErrNoToken", err)
	}
}

// TestDescribeTellsAServerThatAnsweredFromOneNotReached: a server whose
// store cannot take the request (the data volume full, etcd lost) answered:
// the retry line says so, not that it was not reached.
func TestDescribeTellsAServerThatAnsweredFromOneNotReached(t *testing.T) {
	c := &Client{target: "pki:7443"}
	full := status.Error(codes.Unavailable, "store unavailable: the volume of /data is full: free space on it or grow it")
	if got := c.describe(full); got != "flinkpki at pki:7443 cannot serve the request now (store unavailable: the volume of /data is full: free space on it or grow it)" {
		t.Errorf("describe(a full store) = %q", got)
	}
	if got := c.describe(status.Error(codes.Unavailable, "connection error: desc = \"transport: Error while dialing: dial tcp: connect: connection refused\"")); !strings.Contains(got, "not reachable yet") {
		t.Errorf("describe(a refused connection) = %q, want not reachable yet", got)
	}
}
