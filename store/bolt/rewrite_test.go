package bolt_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/bolt"
)

// TestRewriteLeavesNoReplacedValueInTheFile: what the change replaced is
// in neither the file nor a backup, a failed change leaves the file as it
// was, no copy is left beside it, and the backend goes on with the new
// file.
func TestRewriteLeavesNoReplacedValueInTheFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "flinkpki.db")
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { b.Close() }()
	bucket := store.Buckets[2]
	old := bytes.Repeat([]byte("old-secret-"), 50)
	if err := b.Update(ctx, func(tx store.Tx) error { return tx.Put(bucket, []byte("k"), old) }); err != nil {
		t.Fatal(err)
	}
	put := func(v []byte) func(store.Backend) error {
		return func(nb store.Backend) error {
			return nb.Update(ctx, func(tx store.Tx) error { return tx.Put(bucket, []byte("k"), v) })
		}
	}

	before, _ := os.ReadFile(path)
	if err := b.Rewrite(ctx, func(nb store.Backend) error {
		if err := put([]byte("half-done"))(nb); err != nil {
			return err
		}
		return errors.New("refused")
	}); err == nil || err.Error() != "refused" {
		t.Fatalf("Rewrite with a failing change: %v, want its error", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Fatal("a failed Rewrite changed the database file")
	}
	assertNoCopies(t, path)

	// The server runs as the database's owner: the new file keeps the
	// old one's owner (root can give it away, as rotate-kek run as root
	// must) and mode.
	owner := os.Geteuid()
	if owner == 0 {
		owner = 65532
		if err := os.Chown(path, owner, owner); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := b.Rewrite(ctx, put([]byte("new-value"))); err != nil {
		t.Fatal(err)
	}
	assertNoCopies(t, path)
	if fi, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o640 || int(st.Uid) != owner || int(st.Gid) != owner && os.Geteuid() == 0 {
		t.Errorf("the rewritten database has mode %v and owner %d:%d, want 0640 and %d", fi.Mode().Perm(), st.Uid, st.Gid, owner)
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, old) {
		t.Error("the replaced value is still in the database file")
	}
	var backup bytes.Buffer
	if _, err := b.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(backup.Bytes(), old) || bytes.Contains(backup.Bytes(), []byte("half-done")) {
		t.Error("a backup after the rewrite holds a replaced value")
	}
	// The backend goes on with the new file: a write now is there after a
	// reopen.
	if err := b.Update(ctx, func(tx store.Tx) error { return tx.Put(bucket, []byte("k2"), []byte("after")) }); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if b, err = bolt.Open(path, bolt.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := b.View(ctx, func(tx store.Tx) error {
		if v, v2 := tx.Get(bucket, []byte("k")), tx.Get(bucket, []byte("k2")); string(v) != "new-value" || string(v2) != "after" {
			t.Errorf("after the rewrite and a reopen: k = %q, k2 = %q; want new-value and after", v, v2)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func assertNoCopies(t *testing.T, path string) {
	t.Helper()
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".flinkpki-rewrite-*")); len(left) > 0 {
		t.Errorf("copies left beside the database: %v", left)
	}
}

// TestOpenRemovesAKilledMigrationsFileButNotARunningOnes: a migration
// killed before it linked its new bbolt target into place leaves the file
// (sealed CA keys and all) beside the target's path; the next Open of an
// existing store in that folder removes it, but not the file of a
// migration still running there. Open of a new store keeps it: it may be
// the copy meant for that very path, which the same migration, run again,
// finishes (serve refuses to start a new store beside it).
func TestOpenRemovesAKilledMigrationsFileButNotARunningOnes(t *testing.T) {
	dir := t.TempDir()
	killed := filepath.Join(dir, ".flinkpki-migrating-1.db")
	running := filepath.Join(dir, ".flinkpki-migrating-2.db")
	held, err := bolt.Open(running, bolt.Options{}) // locks it, as the running migration's bbolt does
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	os.WriteFile(killed, []byte("a killed migration's copy"), 0o600)
	b, err := bolt.Open(filepath.Join(dir, "flinkpki.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := os.Stat(killed); err != nil {
		t.Fatalf("the open that created a new store removed a killed migration's file: %v", err)
	}
	b, err = bolt.Open(filepath.Join(dir, "flinkpki.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := os.Stat(killed); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a killed migration's file is still there: %v", err)
	}
	if _, err := os.Stat(running); err != nil {
		t.Errorf("a running migration's file was removed: %v", err)
	}
}
