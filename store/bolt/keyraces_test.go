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

// retryingBackend has a write limit, as etcd has, so a key-encryption key
// rotation runs in steps; and its Update runs the function twice at call
// retryCall, the first run rolled back, as etcd's Update does after a
// conflict (a compacted snapshot, a concurrent write).
type retryingBackend struct {
	store.Backend
	calls, retryCall int
}

func (r *retryingBackend) MaxWritesPerTxn() int { return 3 }

var errSimulatedConflict = errors.New("simulated conflict")

func (r *retryingBackend) Update(ctx context.Context, fn func(store.Tx) error) error {
	r.calls++
	if r.calls == r.retryCall {
		_ = r.Backend.Update(ctx, func(tx store.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return errSimulatedConflict // rolled back
		})
	}
	return r.Backend.Update(ctx, fn)
}

// TestARotationStepRunTwiceSkipsNoKey: a rotation step whose transaction
// runs again after a conflict must start where the committed state is.
// Its resume point was set from inside the first, rolled-back run, so the
// second run started after those keys, found none, and the rotation
// reported success with them still under the old key.
func TestARotationStepRunTwiceSkipsNoKey(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "flinkpki.db")
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	oldK, newK := newKEK(t), newKEK(t)
	oldSeal, _ := store.NewSealer(oldK, nil)
	next, _ := store.NewSealer(newK, nil)
	rb := &retryingBackend{Backend: b, retryCall: 2} // call 1 writes the rotation marker
	st, err := store.Open(ctx, rb, oldSeal)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(ctx, func(tx *store.Txn) error {
		if err := tx.PutCA(&store.CA{Cluster: "a", ID: "internal-1", Key: []byte("ka")}); err != nil {
			return err
		}
		return tx.PutCA(&store.CA{Cluster: "b", ID: "internal-1", Key: []byte("kb")})
	}); err != nil {
		t.Fatal(err)
	}
	rb.calls = 0
	if _, err := st.RotateKEK(ctx, next, store.RotateKEKOptions{}); err != nil {
		t.Fatalf("RotateKEK: %v", err)
	}
	st.Close()
	s2, err := openStore(t, path, newK)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.View(ctx, func(tx *store.Txn) error {
		for _, c := range []string{"a", "b"} {
			cas, err := tx.CAs(c)
			if err != nil {
				return err
			}
			if _, err := s2.OpenCAKey(cas[0]); err != nil {
				t.Errorf("CA %s/internal-1 does not open under the new key after the rotation: %v", c, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
