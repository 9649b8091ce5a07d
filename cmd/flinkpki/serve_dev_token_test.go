package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDevServeRefusesAnAdminTokenPathItCannotWriteAndMintsNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(filepath.Join(dir, "admin.token"), 0o700); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		r := runCLI(t, nil, "serve", "--dev", "--data-dir", dir, "--listen", freeAddr(t))
		if r.code != 1 || !strings.Contains(lastLine(r.stderr), filepath.Join(dir, "admin.token")+" is a directory: remove it") {
			t.Fatalf("exit %d, want 1 and a refusal naming the directory; stderr:\n%s", r.code, r.stderr)
		}
	}
	list := runCLI(t, nil, "admin", "list-tokens", "--data-dir", dir, "--kek-file", filepath.Join(dir, "kek"), "-o", "json").ok(t)
	if strings.TrimSpace(list.stdout) != "[]" {
		t.Errorf("the refused starts left administrator tokens nobody holds:\n%s", list.stdout)
	}
}

// TestDevServeMakesNoTokenInAProductionStore: serve --dev on a store whose
// first administrator came from admin bootstrap (a production store, or a
// copy of one) refuses, naming that token, and makes no administrator
// token that never expires; a dev store whose token file is gone gets a
// new one, also beside tokens made through its own.
func TestDevServeMakesNoTokenInAProductionStore(t *testing.T) {
	prod := filepath.Join(t.TempDir(), "prod")
	kek := writeKEK(t, t.TempDir(), "kek")
	if err := os.Mkdir(prod, 0o700); err != nil {
		t.Fatal(err)
	}
	newStoreAt(t, filepath.Join(prod, dbFileName), kek)
	runCLI(t, nil, "admin", "bootstrap", "--data-dir", prod, "--kek-file", kek, "--name", "ops").ok(t)
	r := runCLI(t, nil, "serve", "--dev", "--data-dir", prod, "--kek-file", kek, "--listen", freeAddr(t))
	if r.code != 1 || !strings.Contains(lastLine(r.stderr), "made by system:bootstrap): serve --dev would add one that never expires") {
		t.Fatalf("exit %d, want 1 and a refusal naming the bootstrap token; stderr:\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(prod, "admin.token")); !os.IsNotExist(err) {
		t.Errorf("the refused start wrote %s: %v", filepath.Join(prod, "admin.token"), err)
	}
	list := runCLI(t, nil, "admin", "list-tokens", "--data-dir", prod, "--kek-file", kek, "-o", "json").ok(t)
	if strings.Count(list.stdout, `"id"`) != 1 {
		t.Errorf("the refused start left more than the bootstrap token:\n%s", list.stdout)
	}

	dev := filepath.Join(t.TempDir(), "dev")
	s := startServer(t, dev)
	s.cli(t, s.admin, "admin", "token", "create", "--name", "alice").ok(t)
	s.stop(t)
	if err := os.Remove(filepath.Join(dev, "admin.token")); err != nil {
		t.Fatal(err)
	}
	startServer(t, dev)
	if _, err := os.Stat(filepath.Join(dev, "admin.token")); err != nil {
		t.Errorf("a dev store without its token file got no new one: %v", err)
	}
}
