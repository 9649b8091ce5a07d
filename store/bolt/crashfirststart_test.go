package bolt_test

import (
	"os"
	"path/filepath"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/flinkpki/flinkpki/store/bolt"
)

// TestAFirstOpenKilledBeforeItsBucketsStillOpens: earlier versions created
// a new file with bbolt.Open (meta pages written and synced) and only then,
// in a second transaction, the buckets. A server killed between the two
// left exactly the file this test makes: bbolt's empty database. The next
// start must finish the set-up, not refuse the store for ever as "not a
// flinkpki store". (From the crash-consistency review.)
func TestAFirstOpenKilledBeforeItsBucketsStillOpens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flinkpki.db")
	db, err := bbolt.Open(path, 0o600, nil) // what the killed first start left
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("a store whose first start was killed before its buckets cannot be opened again: %v", err)
	}
	b.Close()
}

// TestANewStoreAppearsWholeAndLeavesNothingElse: a new store is built under
// a temporary name and linked into place, so the data directory holds the
// complete store and nothing else; a temporary file that a killed set-up
// left behind is removed by the next open.
func TestANewStoreAppearsWholeAndLeavesNothingElse(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, ".flinkpki-new-123.db")
	if err := os.WriteFile(stale, []byte("half a store"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "flinkpki.db")
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "flinkpki.db" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("the data directory holds %v, want only flinkpki.db", names)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("flinkpki.db has mode %v, want 0600", fi.Mode())
	}
	// Opened again, read-only: every bucket is there.
	ro, err := bolt.Open(path, bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("the new store does not open read-only (missing buckets?): %v", err)
	}
	ro.Close()
}
