package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// TestARequestOverTheMessageLimitIsRefusedAsResourceExhausted sends an
// Enroll carrying a 100 KiB CSR: gRPC refuses it before any handler runs.
func TestARequestOverTheMessageLimitIsRefusedAsResourceExhausted(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "big").ok(t)
	client := enrollClient(t, s.addr, s.caFile, s.tokenFor(t, "big", "taskmanager"))
	_, err := client.Enroll(context.Background(), &pb.EnrollRequest{Cluster: "big", Role: "taskmanager", Holder: "tm-0", Csr: make([]byte, 100<<10)})
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "larger than max") {
		t.Fatalf("a 100 KiB request got %s %q, want ResourceExhausted", st.Code(), st.Message())
	}
	t.Logf("refused: %s: %s", st.Code(), st.Message())
}

// TestThePerIdentityRateLimitRefusesABurstWithAClearMessage fires five
// quick enrollments with one token at a server allowing 1/s, burst 2: two
// pass, three are refused with ResourceExhausted and no holder record.
func TestThePerIdentityRateLimitRefusesABurstWithAClearMessage(t *testing.T) {
	s := startServer(t, "", "--enroll-rate", "1", "--enroll-burst", "2")
	s.cli(t, s.admin, "cluster", "create", "rl").ok(t)
	tokFile := s.tokenFor(t, "rl", "taskmanager", "--uses", "10")
	client := enrollClient(t, s.addr, s.caFile, tokFile)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr := csrFor(t, key, nil)
	// Concurrent, so all five land well within the one second that would
	// refill a token, however slow the machine.
	results := make(chan *status.Status, 5)
	for i := range 5 {
		go func() {
			_, err := client.Enroll(context.Background(), &pb.EnrollRequest{Cluster: "rl", Role: "taskmanager", Holder: fmt.Sprintf("tm-%d", i), Csr: csr})
			results <- status.Convert(err)
		}()
	}
	n := map[codes.Code]int{}
	var msg string
	for range 5 {
		st := <-results
		n[st.Code()]++
		if st.Code() == codes.ResourceExhausted {
			msg = st.Message()
		}
	}
	if n[codes.OK] != 2 || n[codes.ResourceExhausted] != 3 {
		t.Fatalf("five quick enrollments got %v, want 2 OK and 3 ResourceExhausted", n)
	}
	if !strings.Contains(msg, "enrollment rate limit of 1/s (burst 2) reached") || !strings.Contains(msg, "retry in") {
		t.Errorf("the refusal %q does not say which limit was hit and when to retry", msg)
	}
	if strings.Contains(msg, tokenSecret(t, tokFile)) {
		t.Errorf("the refusal echoes the token secret: %q", msg)
	}
	t.Logf("refused: %s", msg)
	if n := len(holderSerials(t, s.cli(t, s.admin, "holder", "list", "--cluster", "rl", "-o", "json"))); n != 2 {
		t.Errorf("%d holders recorded, want the 2 that passed the limit", n)
	}
}

// TestDevModeRefusesANonLoopbackListenAddress: --dev writes an
// administrator token to disk, so it must never listen beyond loopback.
func TestDevModeRefusesANonLoopbackListenAddress(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:7443", "10.1.2.3:7443", "[::]:7443", "example.com:7443"} {
		dir := filepath.Join(t.TempDir(), "data")
		r := runCLI(t, nil, "serve", "--dev", "--data-dir", dir, "--listen", addr)
		if r.code != 2 || !strings.Contains(r.stderr, "--dev refuses --listen "+addr+": development mode listens on loopback only") {
			t.Errorf("serve --dev --listen %s: exit %d, %q; want exit 2 naming the loopback rule", addr, r.code, r.stderr)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("serve --dev --listen %s created the data directory before refusing", addr)
		}
	}
	// Its other listeners too: pprof and metrics answer without a token.
	for _, flag := range []string{"--metrics-listen", "--pprof-listen", "--health-listen"} {
		dir := filepath.Join(t.TempDir(), "data")
		r := runCLI(t, nil, "serve", "--dev", "--data-dir", dir, flag, "0.0.0.0:7591")
		if r.code != 2 || !strings.Contains(r.stderr, "--dev refuses "+flag+" 0.0.0.0:7591: development mode listens on loopback only") {
			t.Errorf("serve --dev %s 0.0.0.0:7591: exit %d, %q; want exit 2 naming the loopback rule", flag, r.code, r.stderr)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("serve --dev %s 0.0.0.0:7591 created the data directory before refusing", flag)
		}
	}
}

func serverRoots(t testing.TB, caFile string) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	raw, err := os.ReadFile(caFile)
	if err != nil || !pool.AppendCertsFromPEM(raw) {
		t.Fatalf("read %s: %v", caFile, err)
	}
	return pool
}

// TestTheServerSpeaksOnlyTLS12AndLater completes handshakes with TLS 1.2
// and 1.3 clients and refuses TLS 1.0 and 1.1.
func TestTheServerSpeaksOnlyTLS12AndLater(t *testing.T) {
	s := startServer(t, "")
	roots := serverRoots(t, s.caFile)
	cases := []struct {
		name     string
		min, max uint16
		ok       bool
	}{
		{"a TLS 1.0 client", tls.VersionTLS10, tls.VersionTLS10, false},
		{"a TLS 1.1 client", tls.VersionTLS10, tls.VersionTLS11, false},
		{"a TLS 1.2 client", tls.VersionTLS12, tls.VersionTLS12, true},
		{"a TLS 1.3 client", tls.VersionTLS13, tls.VersionTLS13, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: roots, MinVersion: c.min, MaxVersion: c.max, NextProtos: []string{"h2"}})
			if !c.ok {
				if err == nil {
					conn.Close()
					t.Fatal("the handshake succeeded")
				}
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer conn.Close()
			if v := conn.ConnectionState().Version; v != c.max {
				t.Errorf("negotiated %s", tls.VersionName(v))
			}
		})
	}
}

// TestTheServerSendsNoSessionTickets offers resumption with TLS 1.2 and
// 1.3 and reads the server's first HTTP/2 frame, which comes after any
// ticket: no ticket may have reached the client's session cache.
func TestTheServerSendsNoSessionTickets(t *testing.T) {
	s := startServer(t, "")
	roots := serverRoots(t, s.caFile)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			cache := &recordingSessionCache{}
			conn, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: roots, MinVersion: v, MaxVersion: v,
				NextProtos: []string{"h2"}, ClientSessionCache: cache})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var wbuf bytes.Buffer
			wbuf.WriteString(http2.ClientPreface)
			if err := http2.NewFramer(&wbuf, nil).WriteSettings(); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Write(wbuf.Bytes()); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			f, err := http2.NewFramer(nil, conn).ReadFrame()
			if err != nil {
				t.Fatalf("no HTTP/2 frame from the server: %v", err)
			}
			if _, ok := f.(*http2.SettingsFrame); !ok {
				t.Fatalf("first frame %v, want SETTINGS", f.Header())
			}
			if cache.puts != 0 {
				t.Errorf("the server sent %d session ticket(s)", cache.puts)
			}
		})
	}
}

type recordingSessionCache struct{ puts int }

func (c *recordingSessionCache) Get(string) (*tls.ClientSessionState, bool) { return nil, false }
func (c *recordingSessionCache) Put(_ string, cs *tls.ClientSessionState) {
	if cs != nil {
		c.puts++
	}
}

// TestAClientThatPingsTooOftenIsSentAwayWithTooManyPings speaks raw HTTP/2
// to the server and pings every 50 ms, far more often than the 10 s the
// keepalive policy allows: the server must answer with GOAWAY
// ENHANCE_YOUR_CALM "too_many_pings".
func TestAClientThatPingsTooOftenIsSentAwayWithTooManyPings(t *testing.T) {
	s := startServer(t, "")
	conn, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: serverRoots(t, s.caFile), NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	var wbuf bytes.Buffer
	fw := http2.NewFramer(&wbuf, nil)
	fw.WriteSettings()
	for i := range 5 {
		fw.WritePing(false, [8]byte{byte(i)})
		if _, err := conn.Write(wbuf.Bytes()); err != nil {
			break // the server may already have hung up
		}
		wbuf.Reset()
		time.Sleep(50 * time.Millisecond)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	fr := http2.NewFramer(nil, conn)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no GOAWAY before the connection ended: %v", err)
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			if g.ErrCode != http2.ErrCodeEnhanceYourCalm || string(g.DebugData()) != "too_many_pings" {
				t.Errorf("GOAWAY %s %q, want ENHANCE_YOUR_CALM too_many_pings", g.ErrCode, g.DebugData())
			}
			return
		}
	}
}

// TestRequestHeadersAreBounded: the server announces a header-list limit
// (4x the bearer limit) instead of gRPC's 16 MiB, so a client's headers
// beyond it are refused, while a bearer just over its own 8 KiB limit
// still gets flinkpki's message.
func TestRequestHeadersAreBounded(t *testing.T) {
	s := startServer(t, "")
	conn := s.adminConn(t)
	call := func(size int) error {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-padding", strings.Repeat("p", size))
		_, err := pb.NewClusterServiceClient(conn).ListClusters(ctx, &pb.ListClustersRequest{})
		return err
	}
	if err := call(1 << 10); err != nil {
		t.Fatalf("a request with 1 KiB of extra headers: %v", err)
	}
	err := call(64 << 10)
	if err == nil || !strings.Contains(err.Error(), "header list size") {
		t.Fatalf("a request with 64 KiB of headers: %v, want it refused for its header list size", err)
	}
}
