package bolt_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/bolt"
)

// racingBackend runs hook once, just before its first Update: another
// replica's store.Open that sets the store up between this Open's check
// (which found no store) and its own setting-up transaction.
type racingBackend struct {
	store.Backend
	hook func()
}

func (r *racingBackend) Update(ctx context.Context, fn func(store.Tx) error) error {
	if h := r.hook; h != nil {
		r.hook = nil
		h()
	}
	return r.Backend.Update(ctx, fn)
}

// TestOpenThatLosesTheSetUpRaceChecksItsKey: two replicas start at once on
// a new store (etcd HA) with different key-encryption keys. The one that
// loses the race to set the store up must still check its key against the
// winner's: before, it opened without a check and sealed CA keys that no
// other replica, nor itself after a restart, could open. The same key
// passes.
func TestOpenThatLosesTheSetUpRaceChecksItsKey(t *testing.T) {
	ctx := context.Background()
	for _, sameKey := range []bool{false, true} {
		b, err := bolt.Open(filepath.Join(t.TempDir(), "flinkpki.db"), bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		kekA := newKEK(t)
		kekB := newKEK(t)
		if sameKey {
			kekB = kekA
		}
		sealA, _ := store.NewSealer(kekA, nil)
		sealB, _ := store.NewSealer(kekB, nil)
		rb := &racingBackend{Backend: b, hook: func() {
			if _, err := store.Open(ctx, b, sealA); err != nil {
				t.Fatalf("the winner's open: %v", err)
			}
		}}
		_, err = store.Open(ctx, rb, sealB)
		switch {
		case sameKey && err != nil:
			t.Errorf("the loser with the same key: %v", err)
		case !sameKey && !errors.Is(err, store.ErrWrongKEK):
			t.Errorf("the loser with another key: %v, want ErrWrongKEK", err)
		}
		b.Close()
	}
}
