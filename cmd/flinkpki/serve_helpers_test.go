package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testServer is a real flinkpki server, run in-process on loopback with a
// real bbolt file, so the race detector sees the server code too.
type testServer struct {
	dir    string
	addr   string
	caFile string
	admin  string // path of the administrator token file
	cancel context.CancelFunc
	done   chan int
	stderr *syncBuffer
}

type syncBuffer struct {
	mu chan struct{}
	b  bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.String()
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServer runs "flinkpki serve --dev" in dir (a new temp dir when empty)
// and waits until it accepts connections.
func startServer(t testing.TB, dir string, extra ...string) *testServer {
	t.Helper()
	return startServerAt(t, dir, freeAddr(t), extra...)
}

// startServerAt is startServer on a given address.
func startServerAt(t testing.TB, dir, addr string, extra ...string) *testServer {
	t.Helper()
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "data")
	}
	s := &testServer{dir: dir, addr: addr, done: make(chan int, 1), stderr: newSyncBuffer()}
	s.caFile = filepath.Join(dir, "server-ca.crt")
	s.admin = filepath.Join(dir, "admin.token")
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	args := append([]string{"serve", "--dev", "--data-dir", dir, "--listen", s.addr, "--log-level", "warn"}, extra...)
	go func() {
		a := &app{stdout: s.stderr, stderr: s.stderr, getenv: func(string) string { return "" }, now: time.Now}
		s.done <- a.run(ctx, args)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case code := <-s.done:
			t.Fatalf("server exited with %d before serving:\n%s", code, s.stderr.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", s.addr, 100*time.Millisecond); err == nil {
			c.Close()
			if _, err := os.Stat(s.admin); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start within 20s:\n%s", s.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop shuts the server down like SIGTERM does and checks it exits 0.
func (s *testServer) stop(t testing.TB) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case code := <-s.done:
		if code != 0 {
			t.Errorf("server exited with %d:\n%s", code, s.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("server did not stop within 30s")
	}
}

type result struct {
	code           int
	stdout, stderr string
}

// cli runs the flinkpki CLI in-process against s with the given token file.
func (s *testServer) cli(t testing.TB, tokenFile string, args ...string) result {
	t.Helper()
	env := map[string]string{"FLINKPKI_SERVER": s.addr, "FLINKPKI_CA_FILE": s.caFile, "FLINKPKI_TOKEN_FILE": tokenFile}
	return runCLI(t, env, args...)
}

func runCLI(t testing.TB, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb, getenv: func(k string) string { return env[k] }, now: time.Now}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := a.run(ctx, args)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// ok fails the test unless r succeeded.
func (r result) ok(t testing.TB) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	return r
}

// refused checks exit code 1 and a one-line error containing want.
func (r result) refused(t testing.TB, want string) {
	t.Helper()
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	last := lastLine(r.stderr)
	if !strings.HasPrefix(last, "flinkpki: ") || !strings.Contains(last, want) {
		t.Fatalf("error line %q does not say %q\nstderr: %s", last, want, r.stderr)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// tokenFor creates an enrollment token and writes it to a file.
func (s *testServer) tokenFor(t testing.TB, cluster, role string, extra ...string) string {
	t.Helper()
	r := s.cli(t, s.admin, append([]string{"token", "create", "--cluster", cluster, "--role", role}, extra...)...).ok(t)
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// entries lists a directory, for "nothing was written" checks.
func entries(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}
