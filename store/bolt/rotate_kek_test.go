package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/bolt"
)

// TestRotateKEKReencryptsTheServingCA: the serving CA's key is sealed like
// a cluster CA's but lives apart from them; a rotation that missed it left
// a store whose server could no longer start.
// newStoreWithCA opens a new bbolt store under kek that holds one CA,
// internal-1 of cluster c, and returns it with its path.
func newStoreWithCA(t *testing.T, kek []byte) (*store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "flinkpki.db")
	s, err := openStore(t, path, kek)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(context.Background(), func(tx *store.Txn) error {
		return tx.PutCA(&store.CA{Cluster: "c", ID: "internal-1", Key: []byte("key-internal-1")})
	}); err != nil {
		t.Fatal(err)
	}
	return s, path
}

func TestRotateKEKReencryptsTheServingCA(t *testing.T) {
	ctx := context.Background()
	oldKEK, newK := newKEK(t), newKEK(t)
	s, path := newStoreWithCA(t, oldKEK)
	err := s.Update(ctx, func(tx *store.Txn) error {
		return tx.PutServerCA(&store.CA{ID: "server", Purpose: "serving", Key: []byte("serving-key")})
	})
	if err != nil {
		t.Fatal(err)
	}
	next, _ := store.NewSealer(newK, nil)
	if n, err := s.RotateKEK(ctx, next, store.RotateKEKOptions{}); err != nil || n != 2 {
		t.Fatalf("RotateKEK = %d, %v; want 2 keys (one cluster CA, the serving CA)", n, err)
	}
	s.Close()
	s, err = openStore(t, path, newK)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.View(ctx, func(tx *store.Txn) error {
		rec, err := tx.ServerCA()
		if err != nil {
			return err
		}
		if string(rec.Key) != "serving-key" {
			t.Errorf("serving CA key after rotation = %q", rec.Key)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the serving CA does not open under the new key: %v", err)
	}
}

// TestCheckWritesNothingAndTellsAnEmptyStoreFromAWrongKey: offline tools
// (admin migrate, restore) refuse a wrong source with it before copying.
func TestCheckWritesNothingAndTellsAnEmptyStoreFromAWrongKey(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "flinkpki.db")
	kek := newKEK(t)
	seal, _ := store.NewSealer(kek, nil)
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Check(ctx, b, seal); !errors.Is(err, store.ErrNoStore) {
		t.Fatalf("Check(never opened) = %v, want ErrNoStore", err)
	}
	if err := store.Check(ctx, b, seal); !errors.Is(err, store.ErrNoStore) {
		t.Fatalf("a second Check = %v: the first one initialised the store", err)
	}
	b.Close()
	s, err := openStore(t, path, kek)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	b, err = bolt.Open(path, bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	other, _ := store.NewSealer(newKEK(t), nil)
	for _, c := range []struct {
		name string
		seal *store.Sealer
		want error
	}{{"its key", seal, nil}, {"no key", nil, nil}, {"another key", other, store.ErrWrongKEK}} {
		if err := store.Check(ctx, b, c.seal); !errors.Is(err, c.want) {
			t.Errorf("Check(opened store, %s) = %v, want %v", c.name, err, c.want)
		}
	}
}

// TestRotateKEKRefusesTheKeyTheStoreIsUnder: a "rotation" to the same key
// would re-encrypt nothing and audit a rotation that did not happen.
func TestRotateKEKRefusesTheKeyTheStoreIsUnder(t *testing.T) {
	kek := newKEK(t)
	s, err := openStore(t, filepath.Join(t.TempDir(), "flinkpki.db"), kek)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	same, _ := store.NewSealer(kek, nil)
	if n, err := s.RotateKEK(context.Background(), same, store.RotateKEKOptions{}); err == nil || !strings.Contains(err.Error(), "is the one the store is under") {
		t.Fatalf("RotateKEK to the same key = %d, %v; want a refusal", n, err)
	}
}

// TestABoltStoreCopiedMidRotationIsFinishedInOneTransaction: a store copied
// from etcd while its rotation was interrupted (admin migrate copies every
// key, the marker too) is refused by servers, and rotate-kek with the same
// two keys finishes it on bbolt in one transaction, marker included. The
// marker is written here as the etcd path writes it (meta/kek_rotation).
func TestABoltStoreCopiedMidRotationIsFinishedInOneTransaction(t *testing.T) {
	ctx := context.Background()
	oldKEK, newK := newKEK(t), newKEK(t)
	s, path := newStoreWithCA(t, oldKEK)
	s.Close()
	oldSeal, _ := store.NewSealer(oldKEK, nil)
	next, _ := store.NewSealer(newK, nil)
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	marker := fmt.Sprintf(`{"from":%q,"to":%q}`, oldSeal.ID(), next.ID())
	if err := b.Update(ctx, func(tx store.Tx) error { return tx.Put([]byte("meta"), []byte("kek_rotation"), []byte(marker)) }); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(ctx, b, oldSeal); !errors.Is(err, store.ErrKEKRotation) {
		t.Fatalf("Open of a store between two keys = %v, want ErrKEKRotation", err)
	}
	s, err = store.OpenForKEKRotation(ctx, b, oldSeal)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.RotateKEK(ctx, next, store.RotateKEKOptions{}); err != nil || n != 1 {
		t.Fatalf("RotateKEK = %d, %v", n, err)
	}
	s.Close()
	s, err = openStore(t, path, newK)
	if err != nil {
		t.Fatalf("the finished store does not open for a server: %v", err)
	}
	s.Close()
}
