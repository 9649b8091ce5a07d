package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flinkpki/flinkpki/store/bolt"
)

func TestBackupRefusesToReplaceTheDatabaseOfARunningServer(t *testing.T) {
	s := startServer(t, "")
	db := filepath.Join(s.dir, dbFileName)
	before, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	r := s.cli(t, s.admin, "admin", "backup", "--out", db, "--force")
	oneLineError(t, r, 1, "another process holds open")
	if !strings.Contains(r.stderr, "write the backup elsewhere") {
		t.Errorf("the refusal does not say what to do: %q", r.stderr)
	}
	after, err := os.Stat(db)
	if err != nil || !os.SameFile(before, after) {
		t.Fatalf("the running server's database was replaced (%v): what it writes from now on would be lost", err)
	}
	// What the server writes after the refusal is in the file it opens at
	// its next start.
	s.cli(t, s.admin, "cluster", "create", "after-backup").ok(t)
	s.stop(t)
	s = startServer(t, s.dir)
	s.cli(t, s.admin, "cluster", "get", "after-backup").ok(t)
}

func TestBackupReplacesAStoppedStoreOnlyWithForce(t *testing.T) {
	s := startServer(t, "")
	other := filepath.Join(t.TempDir(), "old.db")
	newUnopenedBolt(t, other) // a bbolt file nobody holds open
	oneLineError(t, s.cli(t, s.admin, "admin", "backup", "--out", other), 1, "pass --force to replace it")
	s.cli(t, s.admin, "admin", "backup", "--out", other, "--force").ok(t)
	if err := bolt.Verify(other); err != nil {
		t.Fatal(err)
	}
}
