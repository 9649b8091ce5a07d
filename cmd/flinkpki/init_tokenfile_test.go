package main

import (
	"os"
	"path/filepath"
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
	go func() {
		done <- runCLI(t, nil, "init", "--server", addr, "--ca-file", caFile, "--token-file", tokenFile,
			"--cluster", "orders", "--role", "taskmanager", "--holder", "tm-0", "--out", out, "--timeout", "2m")
	}()
	time.Sleep(500 * time.Millisecond) // init is retrying against no server
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
