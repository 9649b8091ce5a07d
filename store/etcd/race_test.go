package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/etcd"
)

// TestAConcurrentChangeToWhatWasReadRerunsTheTransaction interleaves a
// second replica's write between a transaction's reads and its commit.
func TestAConcurrentChangeToWhatWasReadRerunsTheTransaction(t *testing.T) {
	ctx := context.Background()
	holders, tokens := []byte("holders"), []byte("tokens")
	tests := []struct {
		name     string
		read     func(tx store.Tx) error
		other    func(tx store.Tx) error
		wantRuns int
	}{
		{
			name:     "an insert into a scanned range conflicts",
			read:     scanAll(holders, "orders/"),
			other:    func(tx store.Tx) error { return tx.Put(holders, []byte("orders/tm-9"), []byte("new")) },
			wantRuns: 2,
		},
		{
			name:     "a delete from a scanned range conflicts",
			read:     scanAll(holders, "orders/"),
			other:    func(tx store.Tx) error { return tx.Delete(holders, []byte("orders/jm-0")) },
			wantRuns: 2,
		},
		{
			name:     "an overwrite in a scanned range conflicts",
			read:     scanAll(holders, "orders/"),
			other:    func(tx store.Tx) error { return tx.Put(holders, []byte("orders/jm-0"), []byte("v2")) },
			wantRuns: 2,
		},
		{
			name:     "an overwrite of a read key conflicts",
			read:     getKey(tokens, "t1"),
			other:    func(tx store.Tx) error { return tx.Put(tokens, []byte("t1"), []byte("v2")) },
			wantRuns: 2,
		},
		{
			name:     "creating a key read as absent conflicts",
			read:     getKey(tokens, "absent"),
			other:    func(tx store.Tx) error { return tx.Put(tokens, []byte("absent"), []byte("now here")) },
			wantRuns: 2,
		},
		{
			name:     "deleting a read key conflicts",
			read:     getKey(tokens, "t1"),
			other:    func(tx store.Tx) error { return tx.Delete(tokens, []byte("t1")) },
			wantRuns: 2,
		},
		{
			name:     "a write outside the scanned range does not conflict",
			read:     scanAll(holders, "orders/"),
			other:    func(tx store.Tx) error { return tx.Put(holders, []byte("payments/jm-0"), []byte("x")) },
			wantRuns: 1,
		},
		{
			name:     "a write to another key does not conflict",
			read:     getKey(tokens, "t1"),
			other:    func(tx store.Tx) error { return tx.Put(tokens, []byte("t2"), []byte("x")) },
			wantRuns: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prefix := testPrefix(t)
			a, b := newBackend(t, shared.Endpoints(), prefix), newBackend(t, shared.Endpoints(), prefix)
			err := a.Update(ctx, func(tx store.Tx) error {
				tx.Put(holders, []byte("orders/jm-0"), []byte("v1"))
				return tx.Put(tokens, []byte("t1"), []byte("v1"))
			})
			if err != nil {
				t.Fatal(err)
			}
			runs := 0
			err = a.Update(ctx, func(tx store.Tx) error {
				runs++
				if err := tc.read(tx); err != nil {
					return err
				}
				if runs == 1 {
					if err := b.Update(ctx, tc.other); err != nil {
						return err
					}
				}
				return tx.Put([]byte("meta"), []byte("marker"), []byte(fmt.Sprint(runs)))
			})
			if err != nil {
				t.Fatal(err)
			}
			if runs != tc.wantRuns {
				t.Fatalf("fn ran %d times, want %d", runs, tc.wantRuns)
			}
		})
	}
}

func scanAll(bucket []byte, prefix string) func(tx store.Tx) error {
	return func(tx store.Tx) error {
		return tx.Scan(bucket, []byte(prefix), nil, func(_, _ []byte) (bool, error) { return true, nil })
	}
}

func getKey(bucket []byte, key string) func(tx store.Tx) error {
	return func(tx store.Tx) error { tx.Get(bucket, []byte(key)); return nil }
}

var errSpent = errors.New("token already spent")

// race runs fn on both replicas at once and returns their results.
func race(fns ...func() error) []error {
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, len(fns))
	for i, fn := range fns {
		wg.Go(func() {
			<-start
			errs[i] = fn()
		})
	}
	close(start)
	wg.Wait()
	return errs
}

func TestTwoReplicasNeverBothSpendAOneUseToken(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	kek := newKEK(t)
	r1 := mustOpenStore(t, newBackend(t, shared.Endpoints(), prefix), kek)
	r2 := mustOpenStore(t, newBackend(t, shared.Endpoints(), prefix), kek)
	spend := func(s *store.Store, id string) func() error {
		return func() error {
			return s.Update(ctx, func(tx *store.Txn) error {
				tok, err := tx.Token(id)
				if errors.Is(err, store.ErrNotFound) || (err == nil && tok.UsesLeft <= 0) {
					return errSpent
				}
				if err != nil {
					return err
				}
				tok.UsesLeft--
				if tok.UsesLeft == 0 {
					return tx.DeleteToken(id)
				}
				return tx.PutToken(tok)
			})
		}
	}
	for i := range 100 {
		id := fmt.Sprintf("tok-%03d", i)
		if err := r1.Update(ctx, func(tx *store.Txn) error {
			return tx.PutToken(&store.Token{ID: id, Cluster: "orders", UsesLeft: 1})
		}); err != nil {
			t.Fatal(err)
		}
		errs := race(spend(r1, id), spend(r2, id))
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, errSpent):
				t.Fatalf("token %s: unexpected error %v", id, err)
			}
		}
		if wins != 1 {
			t.Fatalf("token %s was spent %d times, want exactly once", id, wins)
		}
	}
}

func TestConcurrentAuditAppendsFromTwoReplicasNeverForkTheChain(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	kek := newKEK(t)
	replicas := []*store.Store{
		mustOpenStore(t, newBackend(t, shared.Endpoints(), prefix), kek),
		mustOpenStore(t, newBackend(t, shared.Endpoints(), prefix), kek),
	}
	const writers, each = 4, 15
	var fns []func() error
	for w := range writers {
		s := replicas[w%2]
		fns = append(fns, func() error {
			for i := range each {
				err := s.Update(ctx, func(tx *store.Txn) error {
					return tx.AppendAudit(&store.AuditEntry{Actor: fmt.Sprintf("writer-%d", w), Action: "test.append", Outcome: "ok", Reason: fmt.Sprint(i)})
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	for _, err := range race(fns...) {
		if err != nil {
			t.Fatal(err)
		}
	}
	var entries []*store.AuditEntry
	var head uint64
	var headHash string
	err := replicas[0].View(ctx, func(tx *store.Txn) error {
		var err error
		if head, headHash, err = tx.AuditHead(); err != nil {
			return err
		}
		return tx.ForEachAudit(1, func(e *store.AuditEntry) (bool, error) {
			entries = append(entries, e)
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != writers*each || head != uint64(writers*each) {
		t.Fatalf("chain has %d entries and head %d, want %d", len(entries), head, writers*each)
	}
	prev := ""
	for i, e := range entries {
		if e.Seq != uint64(i+1) {
			t.Fatalf("entry %d has seq %d: the chain has a gap or a fork", i+1, e.Seq)
		}
		if e.Prev != prev {
			t.Fatalf("entry %d links to %q, want %q", e.Seq, e.Prev, prev)
		}
		if e.Hash != store.AuditHash(e) {
			t.Fatalf("entry %d hash does not match its content", e.Seq)
		}
		prev = e.Hash
	}
	if prev != headHash {
		t.Fatalf("head hash %q is not the last entry's %q", headHash, prev)
	}
}

var errNotPrepared = errors.New("CA is not prepared")

func TestTwoReplicasNeverBothActivateTheSameCA(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	kek := newKEK(t)
	r1 := mustOpenStore(t, newBackend(t, shared.Endpoints(), prefix), kek)
	r2 := mustOpenStore(t, newBackend(t, shared.Endpoints(), prefix), kek)
	activate := func(s *store.Store, id, by string) func() error {
		return func() error {
			return s.Update(ctx, func(tx *store.Txn) error {
				cas, err := tx.CAs("orders")
				if err != nil {
					return err
				}
				for _, ca := range cas {
					if ca.ID != id {
						continue
					}
					if ca.State != "prepared" {
						return errNotPrepared
					}
					ca.State = "active"
					ca.Purpose = by
					return tx.UpdateCA(ca)
				}
				return store.ErrNotFound
			})
		}
	}
	for i := range 30 {
		id := fmt.Sprintf("internal-%d", i)
		if err := r1.Update(ctx, func(tx *store.Txn) error {
			return tx.PutCA(&store.CA{Cluster: "orders", ID: id, State: "prepared", Key: []byte("k")})
		}); err != nil {
			t.Fatal(err)
		}
		errs := race(activate(r1, id, "r1"), activate(r2, id, "r2"))
		winner := ""
		for j, err := range errs {
			switch {
			case err == nil:
				if winner != "" {
					t.Fatalf("CA %s was activated by both replicas", id)
				}
				winner = []string{"r1", "r2"}[j]
			case !errors.Is(err, errNotPrepared):
				t.Fatalf("CA %s: unexpected error %v", id, err)
			}
		}
		if winner == "" {
			t.Fatalf("CA %s was activated by neither replica", id)
		}
		err := r2.View(ctx, func(tx *store.Txn) error {
			cas, err := tx.CAs("orders")
			for _, ca := range cas {
				if ca.ID == id && (ca.State != "active" || ca.Purpose != winner) {
					t.Fatalf("CA %s is %s by %s, want active by %s", id, ca.State, ca.Purpose, winner)
				}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestWithAttemptsBoundsHowOftenAnUpdateRuns: an Update whose every run
// loses to another replica's write runs as often as store.WithAttempts
// allows and then fails with store.ErrContended; a bound above the
// backend's own (MaxRetries) does not raise it.
func TestWithAttemptsBoundsHowOftenAnUpdateRuns(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	a, err := etcd.Open(ctx, etcd.Config{Endpoints: shared.Endpoints(), Prefix: prefix, OpTimeout: 2 * time.Second, MaxRetries: 5})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b := newBackend(t, shared.Endpoints(), prefix)
	holders := []byte("holders")
	for _, c := range []struct{ bound, want int }{{2, 2}, {0, 5}, {50, 5}} {
		runs := 0
		err := a.Update(store.WithAttempts(ctx, c.bound), func(tx store.Tx) error {
			runs++
			if err := scanAll(holders, "orders/")(tx); err != nil {
				return err
			}
			// another replica's issuance changes what this run read
			if err := b.Update(ctx, func(tx store.Tx) error {
				return tx.Put(holders, []byte("orders/tm-"+fmt.Sprint(runs)), []byte("x"))
			}); err != nil {
				return err
			}
			return tx.Put([]byte("meta"), []byte("step"), []byte("done"))
		})
		if !errors.Is(err, store.ErrContended) || runs != c.want {
			t.Errorf("WithAttempts(%d) on a backend of MaxRetries 5: fn ran %d times, err %v; want %d runs, then ErrContended", c.bound, runs, err, c.want)
		}
	}
}
