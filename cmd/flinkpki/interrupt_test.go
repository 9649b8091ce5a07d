package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runCLIInterrupted runs the CLI with a context that is already canceled,
// as Ctrl-C or SIGTERM leave it.
func runCLIInterrupted(t testing.TB, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb, getenv: func(k string) string { return env[k] }, now: time.Now}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return result{code: a.run(ctx, args), stdout: out.String(), stderr: errb.String()}
}

// TestAnInterruptedCommandSaysSo: a command that Ctrl-C ended says it was
// interrupted and what it left, never that its good input was bad, nor a
// bare "context canceled".
func TestAnInterruptedCommandSaysSo(t *testing.T) {
	dir := t.TempDir()
	kek := writeKEK(t, dir, "kek")
	backup := filepath.Join(dir, "backup.db")
	newStoreAt(t, backup, kek)

	into := filepath.Join(dir, "restored")
	r := runCLIInterrupted(t, nil, "admin", "restore", backup, "--data-dir", into)
	oneLineError(t, r, 1, "flinkpki: interrupted: nothing was restored, and --data-dir "+into+" was not touched")
	if strings.Contains(r.stderr, "not a usable") || strings.Contains(r.stderr, "context canceled") {
		t.Errorf("an interrupted restore blames the backup or says only context canceled: %q", r.stderr)
	}
	if _, err := os.Stat(into); !os.IsNotExist(err) {
		t.Errorf("an interrupted restore left %s: %v", into, err)
	}
	runCLI(t, nil, "admin", "restore", backup, "--data-dir", into).ok(t)

	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	newStoreAt(t, filepath.Join(data, dbFileName), kek)
	oneLineError(t, runCLIInterrupted(t, nil, "bench", "populate", "--data-dir", data, "--kek-file", kek, "--clusters", "3", "--holders", "10", "--yes"), 1, "flinkpki: interrupted")
	// Interrupted once the store is open: the error says what it holds.
	st, _, err := openStoreAt(context.Background(), data, nil, kek, false)
	if err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = populate(canceled, newBenchPopulateCmd(), st, 3, 10, 5)
	st.Close()
	if want := "the store holds a partial population (0 clusters, 0 holders); populate a new --data-dir: create scale-00000"; err == nil || !strings.HasPrefix(interruptedText(err.Error()), "interrupted: "+want) {
		t.Errorf("populate interrupted: %v, want %q", err, want)
	}
	runCLI(t, nil, "bench", "populate", "--data-dir", data, "--kek-file", kek, "--clusters", "1", "--holders", "0", "--yes").ok(t)
	r = runCLI(t, nil, "bench", "populate", "--data-dir", data, "--kek-file", kek, "--clusters", "1", "--holders", "0", "--yes")
	oneLineError(t, r, 1, "already exists: bench populate fills a store that holds none of its clusters; populate a new --data-dir")
}

// TestACallCutOffByCtrlCSaysInterrupted: Ctrl-C while a client command
// waits for a server that accepts connections but never answers (here,
// mid-handshake) says the command was interrupted and that no answer came,
// not gRPC's "context canceled while waiting for connections to become
// ready".
func TestACallCutOffByCtrlCSaysInterrupted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, unanswered, until the test ends
		}
	}()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	caFile, tok := filepath.Join(dir, "server-ca.crt"), filepath.Join(dir, "token")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(tok, []byte("fpa_x"), 0o600)
	for _, args := range [][]string{
		{"cluster", "list"},
		{"bake", "--cluster", "orders", "--role", "jobmanager", "--holder", "ci", "--out", filepath.Join(dir, "out")},
	} {
		var out, errb bytes.Buffer
		a := &app{stdout: &out, stderr: &errb, getenv: func(string) string { return "" }, now: time.Now}
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel) // Ctrl-C, once the call is on its way
		args = append(args, "--server", ln.Addr().String(), "--ca-file", caFile, "--token-file", tok)
		r := result{code: a.run(ctx, args), stdout: out.String(), stderr: errb.String()}
		cancel()
		oneLineError(t, r, 1, "flinkpki: interrupted: no answer came from flinkpki at "+ln.Addr().String())
		if strings.Contains(r.stderr, "context canceled") {
			t.Errorf("%s: %q says context canceled", args[0], r.stderr)
		}
	}
}

func TestInterruptedText(t *testing.T) {
	for in, want := range map[string]string{
		"context canceled":                          "interrupted",
		"create scale-00001: context canceled":      "interrupted: create scale-00001",
		"interrupted: the target was cleared again": "interrupted: the target was cleared again",
		"cannot reach flinkpki at h:1: canceled":    "interrupted: cannot reach flinkpki at h:1: canceled",
	} {
		if got := interruptedText(in); got != want {
			t.Errorf("interruptedText(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAnInterruptedBenchCountsNoFailures: requests a Ctrl-C cut off or never
// sent are not failed enrollments of the server's.
func TestAnInterruptedBenchCountsNoFailures(t *testing.T) {
	s := startServer(t, t.TempDir(), "--enroll-rate", "0")
	s.cli(t, s.admin, "cluster", "create", "bench").ok(t)
	tok := s.tokenFor(t, "bench", "taskmanager", "--uses", "9")
	env := map[string]string{"FLINKPKI_SERVER": s.addr, "FLINKPKI_CA_FILE": s.caFile}
	r := runCLIInterrupted(t, env, "bench", "enroll", "--cluster", "bench", "--role", "taskmanager", "--token-file", tok, "--requests", "3", "--warmup", "2", "-o", "json")
	if want := "flinkpki: interrupted: 0 of 3 enrollments done, 5 not sent or cut off"; r.code != 1 || lastLine(r.stderr) != want {
		t.Errorf("exit %d, last line %q; want 1 and %q", r.code, lastLine(r.stderr), want)
	}
	var res struct{ Errors, WarmupErrors, Interrupted int }
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Errors != 0 || res.WarmupErrors != 0 || res.Interrupted != 5 {
		t.Errorf("bench enroll -o json interrupted = %+v (%v), want no errors and 5 interrupted:\n%s", res, err, r.stdout)
	}
}

// TestByteProgressSpeaksOnlyForALongTransfer: a backup says how much has
// arrived every two seconds, and nothing when it ends within two.
func TestByteProgressSpeaksOnlyForALongTransfer(t *testing.T) {
	var out bytes.Buffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := byteProgress(&out, "backup", func() time.Time { return now })
	for i := range 10 { // 1.5 s in steps of 150 ms
		now = now.Add(150 * time.Millisecond)
		p(int64(i) << 20)
	}
	if out.Len() != 0 {
		t.Fatalf("progress within the first two seconds: %q", out.String())
	}
	for i := range 20 { // 3 s more
		now = now.Add(150 * time.Millisecond)
		p(int64(10+i) * 1e6)
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 2 || lines[0] != "backup: 13.0 MB received (2s)" {
		t.Errorf("progress over 4.5 s: %q, want two lines, the first at 2 s", out.String())
	}
}
