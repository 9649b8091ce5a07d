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
