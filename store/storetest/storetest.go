// Package storetest is the conformance suite every store backend passes:
// data survives a reopen with CA keys sealed, a wrong key-encryption key is
// refused without a change, listings paginate, and a KEK rotation re-seals
// every key. Each backend's tests call Run with a Harness for its kind of
// storage.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/store"
)

// Harness is one backend's storage under test.
type Harness struct {
	// Open opens a backend on the storage. Each call opens the same data
	// again, as a restart or another replica would; the suite closes it.
	Open func(t testing.TB) store.Backend
	// Raw returns everything the backend has persisted, for the clear-text
	// and nothing-changed checks.
	Raw func(t testing.TB) []byte
}

// Run runs the suite; fresh returns a harness on empty storage for each
// test.
func Run(t *testing.T, fresh func(t *testing.T) Harness) {
	t.Run("DataSurvivesReopenAndKeysAreSealed", func(t *testing.T) { dataSurvivesReopen(t, fresh(t)) })
	t.Run("WrongKEKIsRefusedAndLeavesTheStoreUnchanged", func(t *testing.T) { wrongKEKIsRefused(t, fresh(t)) })
	t.Run("ListClustersPaginates", func(t *testing.T) { listClustersPaginates(t, fresh(t)) })
	t.Run("RotateKEKReencryptsEveryKey", func(t *testing.T) { rotateKEK(t, fresh(t)) })
	t.Run("AnInterruptedRotateKEKResumesWithTheSameKeysOnly", func(t *testing.T) { rotateKEKResumes(t, fresh(t)) })
	t.Run("ReadsAreCopiesOfWhatIsStored", func(t *testing.T) { readsAreCopies(t, fresh(t)) })
	t.Run("DeleteClusterRemovesThousandsOfHoldersAtOnce", func(t *testing.T) { deleteBigCluster(t, fresh(t)) })
	t.Run("ExpectHolderFailsOnlyTheStaleCall", func(t *testing.T) { expectHolder(t, fresh(t)) })
	t.Run("TokensScanFromAfterAnID", func(t *testing.T) { tokensAfter(t, fresh(t)) })
	t.Run("ForEachHolderKeepsKeyOrderAcrossDecodeBatches", func(t *testing.T) { holdersInOrder(t, fresh(t)) })
	t.Run("EarliestHolderExpiryReadsOneClusterOnly", func(t *testing.T) { earliestHolderExpiry(t, fresh(t)) })
	t.Run("APanickingBatchCallFailsAloneAndTheStoreServesOn", func(t *testing.T) { panickingBatchCall(t, fresh(t)) })
	t.Run("AServerThatMissedAKEKRotationSealsNothing", func(t *testing.T) { staleSealer(t, fresh(t)) })
}

// panickingBatchCall: a Batch function that panics (a bug in one
// request's transaction) fails that call with ErrPanicked, writes nothing,
// and leaves the calls of its group and the commits after it working. The
// group commit runs the functions on its own goroutine, where a panic
// would otherwise end the process.
func panickingBatchCall(t *testing.T, h Harness) {
	ctx := context.Background()
	s := mustOpen(t, h, NewKEK(t))
	defer s.Close()
	put := func(name string) func(*store.Txn) error {
		return func(tx *store.Txn) error {
			return tx.PutHolder(&store.Holder{Cluster: "p", Purpose: "internal", Name: name, Role: "taskmanager", NotAfter: time.Now().Add(time.Hour)})
		}
	}
	const n = 16
	errs := make(chan error, n)
	for i := range n {
		go func() {
			if i == 0 {
				errs <- s.Batch(ctx, func(tx *store.Txn) error {
					if err := put("bad")(tx); err != nil {
						return err
					}
					var names []string
					_ = names[len(names)] // an index out of range: panics
					return nil
				})
				return
			}
			errs <- s.Batch(ctx, put(fmt.Sprintf("ok-%02d", i)))
		}()
	}
	panicked := 0
	for range n {
		switch err := <-errs; {
		case errors.Is(err, store.ErrPanicked):
			panicked++
		case err != nil:
			t.Errorf("a call beside the panicking one failed: %v", err)
		}
	}
	if panicked != 1 {
		t.Fatalf("%d calls failed with ErrPanicked, want the panicking one", panicked)
	}
	if err := s.Batch(ctx, put("after")); err != nil {
		t.Fatalf("a commit after the panic: %v", err)
	}
	var names []string
	if err := s.View(ctx, func(tx *store.Txn) error {
		return tx.ForEachHolder("p", "internal", func(hd *store.Holder) (bool, error) {
			names = append(names, hd.Name)
			return true, nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if len(names) != n || slices.Contains(names, "bad") || !slices.Contains(names, "after") {
		t.Errorf("holders after the group: %v, want ok-01..ok-%02d and after, without bad", names, n-1)
	}
}

// NewKEK returns a random key-encryption key.
func NewKEK(t testing.TB) []byte {
	k := make([]byte, store.KEKSize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// open opens a store on a new backend of h; on failure the backend is
// closed again.
func open(t testing.TB, h Harness, kek []byte) (*store.Store, error) {
	t.Helper()
	seal, err := store.NewSealer(kek, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := h.Open(t)
	s, err := store.Open(context.Background(), b, seal)
	if err != nil {
		b.Close()
		return nil, err
	}
	return s, nil
}

func mustOpen(t testing.TB, h Harness, kek []byte) *store.Store {
	t.Helper()
	s, err := open(t, h, kek)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func dataSurvivesReopen(t *testing.T, h Harness) {
	ctx := context.Background()
	kek := NewKEK(t)
	s := mustOpen(t, h, kek)
	secretKey := []byte("-----BEGIN PRIVATE KEY----- pretend PKCS#8 bytes")
	err := s.Update(ctx, func(tx *store.Txn) error {
		if err := tx.PutCluster(&store.Cluster{Name: "orders", KeyType: "ecdsa-p256", Created: time.Now()}); err != nil {
			return err
		}
		if err := tx.PutCA(&store.CA{Cluster: "orders", ID: "internal-1", Purpose: "internal", State: "active", CertDER: []byte{1, 2}, Key: secretKey}); err != nil {
			return err
		}
		return tx.AppendAudit(&store.AuditEntry{Action: "cluster.create", Outcome: "ok", Cluster: "orders"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if raw := h.Raw(t); bytes.Contains(raw, secretKey) || bytes.Contains(raw, []byte("BEGIN PRIVATE KEY")) {
		t.Fatal("the stored data holds the CA key in clear text")
	}

	s = mustOpen(t, h, kek)
	defer s.Close()
	err = s.View(ctx, func(tx *store.Txn) error {
		c, err := tx.Cluster("orders")
		if err != nil {
			return err
		}
		if c.KeyType != "ecdsa-p256" {
			t.Errorf("key type = %q after reopen", c.KeyType)
		}
		cas, err := tx.CAs("orders")
		if err != nil {
			return err
		}
		if len(cas) != 1 {
			t.Fatalf("CAs = %+v", cas)
		}
		if key, err := s.OpenCAKey(cas[0]); err != nil || !bytes.Equal(key, secretKey) {
			t.Errorf("CA key did not round-trip: %q %v", key, err)
		}
		seq, hash, err := tx.AuditHead()
		if err != nil {
			return err
		}
		if seq != 1 || hash == "" {
			t.Errorf("audit head = %d %q", seq, hash)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func listClustersPaginates(t *testing.T, h Harness) {
	ctx := context.Background()
	s := mustOpen(t, h, NewKEK(t))
	defer s.Close()
	names := []string{"a", "b", "c", "d", "e"}
	err := s.Update(ctx, func(tx *store.Txn) error {
		for _, n := range names {
			if err := tx.PutCluster(&store.Cluster{Name: n}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	after := ""
	for pages := 0; pages < 10; pages++ {
		var page []*store.Cluster
		var next string
		if err := s.View(ctx, func(tx *store.Txn) error {
			var err error
			page, next, err = tx.ListClusters(after, 2)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		for _, c := range page {
			got = append(got, c.Name)
		}
		if next == "" {
			break
		}
		after = next
	}
	if len(got) != len(names) {
		t.Fatalf("paged listing = %v, want %v", got, names)
	}
	for i := range names {
		if got[i] != names[i] {
			t.Fatalf("paged listing = %v, want %v", got, names)
		}
	}
}

// readsAreCopies checks the decode cache behind Token and Cluster: a
// caller's change to what it read never shows in the next read, a write
// that is rolled back is never read, and a committed write is.
func readsAreCopies(t *testing.T, h Harness) {
	ctx := context.Background()
	s := mustOpen(t, h, NewKEK(t))
	defer s.Close()
	cl := &store.Cluster{Name: "orders", Generations: map[string]int{"internal": 1},
		K8sBindings: []store.K8sBinding{{Namespace: "flink", ServiceAccount: "orders", Roles: []string{"taskmanager"}}}, Epoch: 1}
	tok := &store.Token{ID: "t1", Hash: []byte{1, 2, 3}, Cluster: "orders", Role: "taskmanager", UsesLeft: 5}
	put := func(c *store.Cluster, tk *store.Token) func(*store.Txn) error {
		return func(tx *store.Txn) error {
			if err := tx.PutCluster(c); err != nil {
				return err
			}
			return tx.PutToken(tk)
		}
	}
	if err := s.Update(ctx, put(cl, tok)); err != nil {
		t.Fatal(err)
	}
	read := func() (c *store.Cluster, tk *store.Token) {
		t.Helper()
		err := s.View(ctx, func(tx *store.Txn) error {
			var err error
			if c, err = tx.Cluster("orders"); err != nil {
				return err
			}
			tk, err = tx.Token("t1")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return c, tk
	}
	for range 2 { // the second round reads what the first one decoded
		c, tk := read()
		if c.Generations["internal"] != 1 || c.K8sBindings[0].ServiceAccount != "orders" || c.K8sBindings[0].Roles[0] != "taskmanager" || c.Epoch != 1 ||
			tk.Hash[0] != 1 || tk.UsesLeft != 5 {
			t.Fatalf("read cluster %+v token %+v, want what was written", c, tk)
		}
		c.Generations["internal"] = 9
		c.K8sBindings[0].ServiceAccount = "changed"
		c.K8sBindings[0].Roles[0] = "jobmanager"
		c.Epoch = 9
		tk.Hash[0] = 9
		tk.UsesLeft = 9
	}

	changedCl := &store.Cluster{Name: "orders", Generations: map[string]int{"internal": 2}, Epoch: 2}
	changedTok := &store.Token{ID: "t1", Hash: []byte{1, 2, 3}, Cluster: "orders", Role: "taskmanager", UsesLeft: 4}
	rollback := errors.New("roll back")
	if err := s.Update(ctx, func(tx *store.Txn) error {
		if err := put(changedCl, changedTok)(tx); err != nil {
			return err
		}
		return rollback
	}); !errors.Is(err, rollback) {
		t.Fatalf("update = %v, want the rollback", err)
	}
	if c, tk := read(); c.Epoch != 1 || tk.UsesLeft != 5 {
		t.Fatalf("after a rolled-back write: epoch %d, uses left %d; want 1 and 5", c.Epoch, tk.UsesLeft)
	}
	if err := s.Update(ctx, put(changedCl, changedTok)); err != nil {
		t.Fatal(err)
	}
	changedCl.Epoch, changedTok.UsesLeft = 7, 7 // the writer's copy is not the store's
	if c, tk := read(); c.Epoch != 2 || c.Generations["internal"] != 2 || len(c.K8sBindings) != 0 || tk.UsesLeft != 4 {
		t.Fatalf("after a committed write: cluster %+v token %+v", c, tk)
	}
}
