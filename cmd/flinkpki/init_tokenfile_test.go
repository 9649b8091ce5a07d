package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInitSendsTheTokenItsFileHoldsWhenTheServerAnswers: the kubelet
// renews a projected token in place, and an init container may wait
// minutes for its server. init must send what the token file holds at each
// attempt, not the token it read at its start, which may have expired (here:
// one the server never made) by the time the server answers.
func TestInitSendsTheTokenItsFileHoldsWhenTheServerAnswers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	addr := freeAddr(t)
	s := startServerAt(t, dir, addr)
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	good, err := os.ReadFile(s.tokenFor(t, "orders", "taskmanager"))
	if err != nil {
		t.Fatal(err)
	}
	caFile := s.caFile
	s.stop(t)

	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("fpe_0000000000000000_neverissuedneverissuedneverissuedneverissued\n"), 0o600)
	out := filepath.Join(t.TempDir(), "tls")
	done := make(chan result, 1)
	var stdout bytes.Buffer
	stderr := newSyncBuffer()
	go func() {
		a := &app{stdout: &stdout, stderr: stderr, getenv: func(string) string { return "" }, now: time.Now}
		code := a.run(context.Background(), []string{"init", "--server", addr, "--ca-file", caFile, "--token-file", tokenFile,
			"--cluster", "orders", "--role", "taskmanager", "--holder", "tm-0", "--out", out, "--timeout", "2m"})
		done <- result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	}()
	// init has read the token the server never made, and its first attempt
	// has failed against no server: only then does the file change.
	for waited := time.Now(); !strings.Contains(stderr.String(), "retrying in"); time.Sleep(10 * time.Millisecond) {
		select {
		case r := <-done:
			t.Fatalf("init ended before it retried: exit %d\n%s", r.code, r.stderr)
		default:
		}
		if time.Since(waited) > time.Minute {
			t.Fatalf("init did not retry within a minute:\n%s", stderr.String())
		}
	}
	if err := os.WriteFile(tokenFile+".new", good, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tokenFile+".new", tokenFile); err != nil { // as the kubelet swaps it
		t.Fatal(err)
	}
	startServerAt(t, dir, addr)
	r := <-done
	r.ok(t)
	if _, err := os.Stat(filepath.Join(out, "tls.crt")); err != nil {
		t.Errorf("init wrote no credentials: %v", err)
	}
}
