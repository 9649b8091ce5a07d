package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/enroll"
	"google.golang.org/grpc"
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
	// Debug logging, so the secret scan at cleanup sees every line the
	// server can write.
	args := append([]string{"serve", "--dev", "--data-dir", dir, "--listen", s.addr, "--log-level", "debug"}, extra...)
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
		// serve binds its port before it opens the store, and a restarted
		// server finds DIR/admin.token from before, so neither says it is
		// ready; the line --dev prints once it serves does.
		if strings.Contains(s.stderr.String(), servingLine) {
			if c, err := net.DialTimeout("tcp", s.addr, 100*time.Millisecond); err == nil {
				c.Close()
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start within 20s:\n%s", s.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		s.stop(t)
		assertNoSecretsInLogs(t, s.stderr.String(), s.admin)
	})
	return s
}

// servingLine is what serve --dev prints on stderr once it serves, at any
// --log-level.
const servingLine = "flinkpki dev server on"

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
	return runCLIStdin(t, env, nil, args...)
}

// runCLIStdin is runCLI with stdin as the command's standard input.
func runCLIStdin(t testing.TB, env map[string]string, stdin io.Reader, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdin: stdin, stdout: &out, stderr: &errb, getenv: func(k string) string { return env[k] }, now: time.Now}
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

// adminConn is a gRPC connection to s with its administrator token, for
// requests the CLI would refuse to send; it closes when the test ends.
func (s *testServer) adminConn(t testing.TB) *grpc.ClientConn {
	t.Helper()
	tok, err := enroll.ReadToken(s.admin)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := enroll.Dial(s.addr, s.caFile, tok)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// tokenFor creates an enrollment token and writes it to a file.
func (s *testServer) tokenFor(t testing.TB, cluster, role string, extra ...string) string {
	t.Helper()
	r := s.cli(t, s.admin, append([]string{"token", "create", "--cluster", cluster, "--role", role}, extra...)...).ok(t)
	rememberSecret(strings.TrimSpace(r.stdout))
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

// secrets handed out during the test run; no server log may contain one.
var (
	secretsMu sync.Mutex
	secrets   []string
)

func rememberSecret(s string) {
	if s == "" {
		return
	}
	secretsMu.Lock()
	secrets = append(secrets, s)
	secretsMu.Unlock()
}

// secretShapes match what must never reach a log, whoever made it: full
// flinkpki tokens, JWTs, PEM blocks and PKCS#8 in base64.
var secretShapes = []*regexp.Regexp{
	regexp.MustCompile(`fp[ae]_[a-z2-7]{26}_[A-Za-z0-9_-]{43}`),
	regexp.MustCompile(`eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.`),
	regexp.MustCompile(`-----BEGIN`),
	regexp.MustCompile(`MIG[HT]AgEAMBMGByqGSM49`),                     // base64 of a PKCS#8 EC key
	regexp.MustCompile(`MII[A-Za-z0-9+/]{2}AgEAMA0GCSqGSIb3DQEBAQUA`), // base64 of a PKCS#8 RSA key
}

// assertNoSecretsInLogs scans a server's whole log for tokens, passwords
// and key material.
func assertNoSecretsInLogs(t testing.TB, logs, adminTokenFile string) {
	t.Helper()
	if b, err := os.ReadFile(adminTokenFile); err == nil {
		rememberSecret(strings.TrimSpace(string(b)))
	}
	for _, re := range secretShapes {
		if m := re.FindString(logs); m != "" {
			t.Errorf("the server log holds secret material matching %s", re)
		}
	}
	secretsMu.Lock()
	defer secretsMu.Unlock()
	for _, sec := range secrets {
		if strings.Contains(logs, sec) {
			t.Errorf("the server log holds a secret handed out in this test")
		}
		// The secret half of a flinkpki token alone must not appear either.
		if i := strings.LastIndexByte(sec, '_'); i > 0 && len(sec)-i > 20 && strings.Contains(logs, sec[i+1:]) {
			t.Errorf("the server log holds a token secret")
		}
	}
	if !strings.Contains(logs, "level=") && !strings.Contains(logs, `"level":`) {
		t.Errorf("the server wrote no log at all; the scan proved nothing")
	}
}

type recordTB struct {
	testing.TB
	errors int
}

func (r *recordTB) Errorf(string, ...any) { r.errors++ }
func (r *recordTB) Helper()               {}

func TestTheLogScanCatchesPlantedSecrets(t *testing.T) {
	tok := "fpe_" + strings.Repeat("a", 26) + "_" + strings.Repeat("B", 43)
	for name, logs := range map[string]string{
		"a flinkpki token":   "level=INFO msg=x token=" + tok,
		"a PEM block":        "level=INFO msg=x key=-----BEGIN PRIVATE KEY-----",
		"a JWT":              "level=INFO msg=x jwt=eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJrOHMifQ.sig",
		"a PKCS#8 EC key":    "level=INFO msg=x der=MIGHAgEAMBMGByqGSM49AgEGCCqGSM49",
		"no log line at all": "",
	} {
		r := &recordTB{TB: t}
		assertNoSecretsInLogs(r, logs, filepath.Join(t.TempDir(), "none"))
		if r.errors == 0 {
			t.Errorf("the scan missed %s", name)
		}
	}
	clean := &recordTB{TB: t}
	assertNoSecretsInLogs(clean, "level=INFO msg=\"request refused\" actor=enrollment-token:abc", filepath.Join(t.TempDir(), "none"))
	if clean.errors != 0 {
		t.Errorf("the scan flagged a clean log")
	}
}

// treeOf lists everything under root as path -> mode and content hash, so
// a test can show a refused command changed nothing on disk.
func treeOf(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		entry := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			entry += " " + hex.EncodeToString(sum[:])
		}
		out[p] = entry
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// assertUnchanged fails when root's tree differs from before.
func assertUnchanged(t testing.TB, root string, before map[string]string) {
	t.Helper()
	if after := treeOf(t, root); !maps.Equal(before, after) {
		t.Errorf("the refused command changed %s:\nbefore: %v\nafter:  %v", root, before, after)
	}
}

// oneLineError checks that r failed with code and a single "flinkpki: "
// line containing want.
func oneLineError(t testing.TB, r result, code int, want string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code = %d, want %d (stderr %q)", r.code, code, r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "flinkpki: ") || !strings.Contains(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr = %q, want one flinkpki: line containing %q", r.stderr, want)
	}
}
