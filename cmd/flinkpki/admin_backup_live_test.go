package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// TestABackupRemovesWhatKilledBackupsLeftUnderOtherNames: a backup killed
// mid-write leaves its hidden copy (.NAME.tmp-*, sealed CA keys and token
// hashes in it); with a date-stamped --out no later backup writes that name
// again. The next backup into the directory removes such copies, and only
// them: not a file that is no store, not one a running backup holds, not
// what an interrupted restore left of the store itself.
func TestABackupRemovesWhatKilledBackupsLeftUnderOtherNames(t *testing.T) {
	s := startServer(t, "")
	dir := t.TempDir()
	killed := filepath.Join(dir, ".flinkpki-2026-11-27.db.tmp-123")
	newUnopenedBolt(t, killed)
	notStore := filepath.Join(dir, ".notes.txt.tmp-5")
	if err := os.WriteFile(notStore, []byte("not a store\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	restoreLeft := filepath.Join(dir, ".flinkpki.db.tmp-9")
	newUnopenedBolt(t, restoreLeft)
	running := filepath.Join(dir, ".flinkpki-2026-11-28.db.tmp-7")
	newUnopenedBolt(t, running)
	f, err := os.Open(running)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil { // as a running backup holds it
		t.Fatal(err)
	}

	r := s.cli(t, s.admin, "admin", "backup", "--out", filepath.Join(dir, "flinkpki-2026-11-29.db")).ok(t)
	if !strings.Contains(r.stderr, "removed what 1 killed backup(s) left in "+dir+": .flinkpki-2026-11-27.db.tmp-123") {
		t.Errorf("the backup did not say what it removed:\n%s", r.stderr)
	}
	if _, err := os.Lstat(killed); !os.IsNotExist(err) {
		t.Errorf("a killed backup's copy outlived the next backup (err %v)", err)
	}
	for _, kept := range []string{notStore, restoreLeft, running} {
		if _, err := os.Lstat(kept); err != nil {
			t.Errorf("the backup removed %s, which it must leave: %v", filepath.Base(kept), err)
		}
	}
}
