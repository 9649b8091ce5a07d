package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestBackupToStandardOutputPairsWithRestoreFromStandardInput(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	r := s.cli(t, s.admin, "admin", "backup", "--out", "-").ok(t)
	if !strings.Contains(r.stderr, "backup written to standard output") {
		t.Errorf("stderr = %q", r.stderr)
	}
	dir := filepath.Join(t.TempDir(), "data")
	runCLIStdin(t, nil, strings.NewReader(r.stdout), "admin", "restore", "-", "--data-dir", dir).ok(t)
	restored := startServer(t, dir, "--kek-file", filepath.Join(s.dir, "kek"))
	restored.cli(t, s.admin, "cluster", "get", "orders").ok(t)

	oneLineError(t, s.cli(t, s.admin, "admin", "backup", "--out", "-", "-o", "json"), 2, "--out - writes the backup to standard output")
}
