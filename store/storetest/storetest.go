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
	"maps"
	"slices"
	"strings"
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

// earliestHolderExpiry checks the expiry gauges' read: the earliest expiry
// after now among one cluster's holders of both purposes, and how many
// they are, with holders expired at or before now left out and clusters
// whose names extend the cluster's ("a-b", "ab") never read; and the scan
// under it, ForEachHolderExpiry, which pruning resumes after a holder.
func earliestHolderExpiry(t *testing.T, h Harness) {
	ctx := context.Background()
	s := mustOpen(t, h, NewKEK(t))
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	put := func(cluster, purpose, name string, notAfter time.Time) {
		t.Helper()
		if err := s.Update(ctx, func(tx *store.Txn) error {
			return tx.PutHolder(&store.Holder{Cluster: cluster, Purpose: purpose, Name: name, NotAfter: notAfter, Actor: `,"not_after":"2030-01-01T00:00:01Z"`})
		}); err != nil {
			t.Fatal(err)
		}
	}
	put("a", "internal", "expired", now.Add(-time.Hour))
	put("a", "internal", "at-now", now)
	put("a", "internal", "late", now.Add(48*time.Hour))
	put("a", "rest", "early", now.Add(time.Hour).In(time.FixedZone("x", 3600)))
	put("a", "internal", "late", now.Add(72*time.Hour)) // superseded: still later
	put("a-b", "internal", "earlier", now.Add(time.Minute))
	put("ab", "internal", "earlier", now.Add(time.Second))
	put("gone", "internal", "expired", now.Add(-time.Second))
	for _, c := range []struct {
		cluster  string
		earliest time.Time
		live     int
	}{
		{"a", now, 3}, // the leaf expiring at now is still valid (through its notAfter)
		{"a-b", now.Add(time.Minute), 1},
		{"ab", now.Add(time.Second), 1},
		{"gone", time.Time{}, 0},
		{"none", time.Time{}, 0},
	} {
		if err := s.View(ctx, func(tx *store.Txn) error {
			earliest, live, err := tx.EarliestHolderExpiry(c.cluster, now)
			if err != nil {
				return err
			}
			if !earliest.Equal(c.earliest) || live != c.live {
				t.Errorf("EarliestHolderExpiry(%s) = %v with %d live, want %v with %d", c.cluster, earliest, live, c.earliest, c.live)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ purpose, name, want string }{
		{"", "", "internal/at-now internal/expired internal/late rest/early"},
		{"internal", "at-now", "internal/expired internal/late rest/early"},
		{"internal", "late", "rest/early"},
		{"rest", "early", ""},
	} {
		var got []string
		if err := s.View(ctx, func(tx *store.Txn) error {
			return tx.ForEachHolderExpiry("a", c.purpose, c.name, func(purpose, name string, notAfter time.Time) (bool, error) {
				got = append(got, purpose+"/"+name)
				if name == "late" && !notAfter.Equal(now.Add(72*time.Hour)) {
					t.Errorf("a/internal/late expires at %v, want the later of its two enrollments", notAfter)
				}
				return true, nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("ForEachHolderExpiry(a) after %q/%q saw %q, want %q", c.purpose, c.name, strings.Join(got, " "), c.want)
		}
	}
}

// holdersInOrder checks ForEachHolder, which decodes a big cluster's
// holders a batch at a time on all cores: every holder of the cluster and
// purpose once, in name order, each a record of its own that stays intact
// after the scan; a stop after any number of holders stops there.
func holdersInOrder(t *testing.T, h Harness) {
	ctx := context.Background()
	s := mustOpen(t, h, NewKEK(t))
	const many = 1300                   // more than two decode batches, and a partial one
	for lo := 0; lo < many; lo += 100 { // etcd's default --max-txn-ops is 128
		if err := s.Update(ctx, func(tx *store.Txn) error {
			for i := lo; i < min(lo+100, many); i++ {
				for _, c := range []string{"a", "b"} {
					if err := tx.PutHolder(&store.Holder{Cluster: c, Purpose: "internal", Name: fmt.Sprintf("tm-%04d", i), Serial: fmt.Sprint(i)}); err != nil {
						return err
					}
				}
			}
			return tx.PutHolder(&store.Holder{Cluster: "a", Purpose: "rest", Name: fmt.Sprintf("r-%04d", lo)})
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.View(ctx, func(tx *store.Txn) error {
		var seen []*store.Holder
		if err := tx.ForEachHolder("a", "internal", func(h *store.Holder) (bool, error) {
			seen = append(seen, h)
			return true, nil
		}); err != nil {
			return err
		}
		if len(seen) != many {
			t.Fatalf("ForEachHolder(a, internal) saw %d holders, want %d", len(seen), many)
		}
		for i, h := range seen {
			if want := fmt.Sprintf("tm-%04d", i); h.Cluster != "a" || h.Purpose != "internal" || h.Name != want || h.Serial != fmt.Sprint(i) {
				t.Fatalf("holder %d after the scan is %s/%s/%s serial %s, want a/internal/%s serial %d", i, h.Cluster, h.Purpose, h.Name, h.Serial, want, i)
			}
		}
		all := 0
		if err := tx.ForEachHolder("a", "", func(*store.Holder) (bool, error) { all++; return true, nil }); err != nil {
			return err
		}
		if all != many+many/100 {
			t.Errorf("ForEachHolder(a, all purposes) saw %d holders, want %d", all, many+many/100)
		}
		for _, stop := range []int{1, 511, 512, 513, 1299} {
			n := 0
			if err := tx.ForEachHolder("b", "internal", func(*store.Holder) (bool, error) { n++; return n < stop, nil }); err != nil {
				return err
			}
			if n != stop {
				t.Errorf("a scan told to stop at holder %d called fn %d times", stop, n)
			}
		}
		boom := errors.New("boom")
		n := 0
		if err := tx.ForEachHolder("b", "internal", func(*store.Holder) (bool, error) {
			if n++; n == 700 {
				return true, boom
			}
			return true, nil
		}); !errors.Is(err, boom) || n != 700 {
			t.Errorf("a scan whose fn fails at holder 700 returned %v after %d calls", err, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// tokensAfter checks ForEachTokenAfter, the paging of token list: every
// token whose ID sorts after the given one, in ID order, the given one
// left out.
func tokensAfter(t *testing.T, h Harness) {
	ctx := context.Background()
	s := mustOpen(t, h, NewKEK(t))
	defer s.Close()
	ids := []string{"a1", "a2", "b1", "b10", "b2"}
	if err := s.Update(ctx, func(tx *store.Txn) error {
		for _, id := range ids {
			if err := tx.PutToken(&store.Token{ID: id, Cluster: "c", Role: "taskmanager", UsesLeft: 1}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for after, want := range map[string]string{"": "a1 a2 b1 b10 b2", "a2": "b1 b10 b2", "b1": "b10 b2", "b": "b1 b10 b2", "b2": ""} {
		var got []string
		if err := s.View(ctx, func(tx *store.Txn) error {
			return tx.ForEachTokenAfter(after, func(tk *store.Token) (bool, error) {
				got = append(got, tk.ID)
				return true, nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		if g := strings.Join(got, " "); g != want {
			t.Errorf("tokens after %q = %q, want %q", after, g, want)
		}
	}
}

// expectHolder checks Tx.Expect through ExpectHolder: a mark taken in a
// View holds at the commit unless the record changed in between, and in a
// group commit a stale expectation fails its own call only.
func expectHolder(t *testing.T, h Harness) {
	ctx := context.Background()
	s := mustOpen(t, h, NewKEK(t))
	defer s.Close()
	holder := func(name, role string) *store.Holder {
		return &store.Holder{Cluster: "c", Purpose: "internal", Name: name, Role: role, Serial: "1", NotAfter: time.Now().Add(time.Hour)}
	}
	mark := func(name string) store.HolderMark {
		t.Helper()
		var m store.HolderMark
		if err := s.View(ctx, func(tx *store.Txn) error {
			_, mk, err := tx.MarkHolder("c", "internal", name)
			m = mk
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	putIf := func(m store.HolderMark, hd *store.Holder) func(*store.Txn) error {
		return func(tx *store.Txn) error {
			if err := tx.ExpectHolder(m); err != nil {
				return err
			}
			return tx.PutHolder(hd)
		}
	}
	role := func(name string) string {
		t.Helper()
		var r string
		if err := s.View(ctx, func(tx *store.Txn) error {
			hd, err := tx.Holder("c", "internal", name)
			if err == nil {
				r = hd.Role
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return r
	}

	// Absent, then written by another: the mark of absence is stale.
	absent := mark("a")
	if err := s.Update(ctx, putIf(absent, holder("a", "jobmanager"))); err != nil {
		t.Fatalf("a fresh mark of absence: %v", err)
	}
	if err := s.Update(ctx, putIf(absent, holder("a", "taskmanager"))); !errors.Is(err, store.ErrChanged) {
		t.Fatalf("a stale mark of absence: err = %v, want ErrChanged", err)
	}
	if got := role("a"); got != "jobmanager" {
		t.Fatalf("role = %q after the refused write, want jobmanager", got)
	}
	// Present and unchanged: holds, in Update and in Batch.
	if err := s.Batch(ctx, putIf(mark("a"), holder("a", "jobmanager"))); err != nil {
		t.Fatalf("a fresh mark of a record in Batch: %v", err)
	}

	// A group commit where one of many calls is stale: only that call fails.
	stale := mark("a")
	if err := s.Update(ctx, func(tx *store.Txn) error { return tx.PutHolder(holder("a", "taskmanager")) }); err != nil {
		t.Fatal(err)
	}
	const n = 16
	errs := make(chan error, n)
	for i := range n {
		go func() {
			if i == 0 {
				errs <- s.Batch(ctx, putIf(stale, holder("a", "jobmanager")))
				return
			}
			name := fmt.Sprintf("g%d", i)
			errs <- s.Batch(ctx, putIf(mark(name), holder(name, "taskmanager")))
		}()
	}
	changed := 0
	for range n {
		switch err := <-errs; {
		case errors.Is(err, store.ErrChanged):
			changed++
		case err != nil:
			t.Errorf("a call with a fresh mark failed: %v", err)
		}
	}
	if changed != 1 {
		t.Errorf("%d calls failed with ErrChanged, want exactly the stale one", changed)
	}
	if got := role("a"); got != "taskmanager" {
		t.Errorf("role = %q: the stale call overwrote the record", got)
	}
	for i := 1; i < n; i++ {
		if got := role(fmt.Sprintf("g%d", i)); got != "taskmanager" {
			t.Errorf("holder g%d: role %q, want taskmanager", i, got)
		}
	}
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

// staleSealer: a server still running when the store's key-encryption
// key is rotated (an etcd replica whose election key had lapsed, so
// rotate-kek did not see it) still holds the old key. While the rotation
// runs and after it, it must not seal a new CA key (a prepare, a new
// cluster): no server of the rotated store could open it. Rewriting a
// record it read, which keeps the sealed key as stored, stays allowed.
func staleSealer(t *testing.T, h Harness) {
	ctx := context.Background()
	// Two stores on one backend, as a bbolt file can be open in one
	// process only: the running server's, and rotate-kek's.
	b := h.Open(t)
	defer b.Close()
	oldSeal, _ := store.NewSealer(NewKEK(t), nil)
	running, err := store.Open(ctx, b, oldSeal)
	if err != nil {
		t.Fatal(err)
	}
	putCAs(t, running)
	rotator, err := store.Open(ctx, b, oldSeal)
	if err != nil {
		t.Fatal(err)
	}
	next, _ := store.NewSealer(NewKEK(t), nil)
	newCA := func(id string) error {
		return running.Update(ctx, func(tx *store.Txn) error {
			return tx.PutCA(&store.CA{Cluster: "stale", ID: id, Purpose: "internal", State: "prepared", CertDER: []byte{1}, Key: []byte("a CA private key")})
		})
	}
	var during error
	checked := false
	if _, err := rotator.RotateKEK(ctx, next, store.RotateKEKOptions{Progress: func(int) {
		if !checked { // a backend that rotates in steps: the marker is set
			checked = true
			during = newCA("during")
		}
	}}); err != nil {
		t.Fatal(err)
	}
	// A backend that rotates in steps reports progress while its marker is
	// set (ErrKEKRotation); one that rotates in one transaction, after it
	// (ErrWrongKEK). Either way nothing is sealed under the old key.
	if checked && !errors.Is(during, store.ErrKEKRotation) && !errors.Is(during, store.ErrWrongKEK) {
		t.Errorf("a CA sealed while the rotation ran: %v, want it refused", during)
	}
	if err := newCA("after"); !errors.Is(err, store.ErrWrongKEK) {
		t.Errorf("a CA sealed under the old key after the rotation: %v, want ErrWrongKEK", err)
	}
	if err := running.Update(ctx, func(tx *store.Txn) error {
		cas, err := tx.CAs("c00")
		if err != nil || len(cas) == 0 {
			return fmt.Errorf("CAs of c00: %d, %v", len(cas), err)
		}
		cas[0].State = "active"
		return tx.UpdateCA(cas[0])
	}); err != nil {
		t.Errorf("rewriting a CA record as read: %v", err)
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

func wrongKEKIsRefused(t *testing.T, h Harness) {
	mustOpen(t, h, NewKEK(t)).Close()
	before := h.Raw(t)
	if _, err := open(t, h, NewKEK(t)); !errors.Is(err, store.ErrWrongKEK) {
		t.Fatalf("err = %v, want ErrWrongKEK", err)
	}
	if after := h.Raw(t); !bytes.Equal(before, after) {
		t.Fatal("opening with a wrong key changed the stored data")
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

// manyCAs is more CA keys than one etcd transaction may write, so a
// backend with a write limit rotates them in several.
const manyCAs = 250

// putCAs stores manyCAs CA keys ("key-I" for CA I of cluster "cI/10"),
// fifty to a transaction, and a serving CA.
func putCAs(t *testing.T, s *store.Store) {
	t.Helper()
	ctx := context.Background()
	for lo := 0; lo < manyCAs; lo += 50 {
		err := s.Update(ctx, func(tx *store.Txn) error {
			for i := lo; i < lo+50; i++ {
				if err := tx.PutCA(&store.CA{Cluster: fmt.Sprintf("c%02d", i/10), ID: fmt.Sprintf("internal-%03d", i), Key: []byte(fmt.Sprintf("key-%d", i))}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update(ctx, func(tx *store.Txn) error {
		return tx.PutServerCA(&store.CA{ID: "server", Purpose: "serving", Key: []byte("serving-key")})
	}); err != nil {
		t.Fatal(err)
	}
}

// checkCAs asserts that s opens every key putCAs stored.
func checkCAs(t *testing.T, s *store.Store) {
	t.Helper()
	err := s.View(context.Background(), func(tx *store.Txn) error {
		for c := 0; c < manyCAs/10; c++ {
			cas, err := tx.CAs(fmt.Sprintf("c%02d", c))
			if err != nil || len(cas) != 10 {
				t.Fatalf("cluster c%02d: %d CAs, %v", c, len(cas), err)
			}
			for _, ca := range cas {
				var i int
				fmt.Sscanf(ca.ID, "internal-%d", &i)
				if key, err := s.OpenCAKey(ca); err != nil || string(key) != fmt.Sprintf("key-%d", i) {
					t.Fatalf("CA %s/%s: %q, %v", ca.Cluster, ca.ID, key, err)
				}
			}
		}
		rec, err := tx.ServerCA()
		if err != nil || string(rec.Key) != "serving-key" {
			t.Fatalf("serving CA: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func rotateKEK(t *testing.T, h Harness) {
	ctx := context.Background()
	oldKEK, newK := NewKEK(t), NewKEK(t)
	s := mustOpen(t, h, oldKEK)
	putCAs(t, s)
	next, _ := store.NewSealer(newK, nil)
	var seen []int
	audit := &store.AuditEntry{Time: time.Now().UTC(), Actor: "system:test", Action: "kek.rotate", Outcome: "ok"}
	n, err := s.RotateKEK(ctx, next, store.RotateKEKOptions{Progress: func(done int) { seen = append(seen, done) }, Audit: audit})
	if err != nil || n != manyCAs+1 {
		t.Fatalf("RotateKEK = %d, %v; want %d (every CA and the serving CA)", n, err, manyCAs+1)
	}
	if len(seen) == 0 || seen[len(seen)-1] != n || !slices.IsSorted(seen) {
		t.Errorf("progress reports %v, want a rising count ending at %d", seen, n)
	}
	s.Close()
	if _, err := open(t, h, oldKEK); !errors.Is(err, store.ErrWrongKEK) {
		t.Fatalf("old KEK still opens the store: %v", err)
	}
	s = mustOpen(t, h, newK)
	defer s.Close()
	checkCAs(t, s)
	oldSeal, _ := store.NewSealer(oldKEK, nil)
	var got []*store.AuditEntry
	err = s.View(ctx, func(tx *store.Txn) error {
		return tx.ForEachAudit(1, func(e *store.AuditEntry) (bool, error) {
			got = append(got, e)
			return true, nil
		})
	})
	want := map[string]string{"from": oldSeal.ID(), "to": next.ID(), "keys": fmt.Sprint(manyCAs + 1)}
	if err != nil || len(got) != 1 || got[0].Action != "kek.rotate" || !maps.Equal(got[0].Details, want) {
		t.Errorf("audit trail after the rotation: %+v, %v; want one kek.rotate entry with %v", got, err, want)
	}
}

// rotateKEKResumes interrupts a rotation after its first transaction. A
// backend without a write limit rotates in one transaction, so nothing has
// changed; one with a limit is left between the two keys: no server may
// open it, a run with another new key is refused, and a run with the same
// two keys finishes it.
func rotateKEKResumes(t *testing.T, h Harness) {
	oldKEK, newK, otherK := NewKEK(t), NewKEK(t), NewKEK(t)
	s := mustOpen(t, h, oldKEK)
	putCAs(t, s)
	next, _ := store.NewSealer(newK, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := s.RotateKEK(ctx, next, store.RotateKEKOptions{Progress: func(int) { cancel() }})
	s.Close()
	b := h.Open(t)
	_, limited := b.(store.WriteLimiter)
	b.Close()
	if !limited {
		if err != nil || n != manyCAs+1 {
			t.Fatalf("RotateKEK in one transaction = %d, %v", n, err)
		}
		return
	}
	if !errors.Is(err, store.ErrKEKRotation) || n == 0 || n >= manyCAs {
		t.Fatalf("interrupted RotateKEK = %d, %v; want ErrKEKRotation part of the way", n, err)
	}
	// Either key is told to finish the rotation (rotate-kek's advice on
	// failure is to start with the new one); a third is a wrong key.
	for name, k := range map[string][]byte{"old": oldKEK, "new": newK} {
		if _, err := open(t, h, k); !errors.Is(err, store.ErrKEKRotation) || errors.Is(err, store.ErrWrongKEK) || !strings.Contains(err.Error(), "run flinkpki admin rotate-kek again") {
			t.Fatalf("Open with the %s key = %v, want ErrKEKRotation, saying to run rotate-kek again", name, err)
		}
	}
	if _, err := open(t, h, otherK); !errors.Is(err, store.ErrWrongKEK) {
		t.Fatalf("Open with a third key = %v, want ErrWrongKEK", err)
	}
	reopen := func() *store.Store {
		t.Helper()
		seal, _ := store.NewSealer(oldKEK, nil)
		b := h.Open(t)
		s, err := store.OpenForKEKRotation(context.Background(), b, seal)
		if err != nil {
			b.Close()
			t.Fatalf("OpenForKEKRotation: %v", err)
		}
		return s
	}
	s = reopen()
	other, _ := store.NewSealer(otherK, nil)
	before := h.Raw(t)
	if _, err := s.RotateKEK(context.Background(), other, store.RotateKEKOptions{}); !errors.Is(err, store.ErrKEKRotation) || !strings.Contains(err.Error(), "give the same two keys") {
		t.Fatalf("a run with another new key = %v, want ErrKEKRotation", err)
	}
	if !bytes.Equal(before, h.Raw(t)) {
		t.Fatal("the refused run changed the store")
	}
	s.Close()
	s = reopen()
	rest, err := s.RotateKEK(context.Background(), next, store.RotateKEKOptions{})
	if err != nil || n+rest != manyCAs+1 {
		t.Fatalf("the resumed RotateKEK = %d, %v; want the %d keys the first run left", rest, err, manyCAs+1-n)
	}
	s.Close()
	s = mustOpen(t, h, newK)
	defer s.Close()
	checkCAs(t, s)
}

// deleteBigCluster deletes a cluster with 1,500 holders in one transaction:
// more keys than etcd's --max-txn-ops allows one transaction to touch, so
// the backend deletes them as a range. Within the transaction the records
// are gone at once; afterwards, and after a reopen, nothing of the cluster
// is left and the other cluster is untouched.
func deleteBigCluster(t *testing.T, h Harness) {
	ctx := context.Background()
	kek := NewKEK(t)
	s := mustOpen(t, h, kek)
	const many = 1500
	put := func(fn func(tx *store.Txn) error) {
		t.Helper()
		if err := s.Update(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	put(func(tx *store.Txn) error {
		for _, c := range []string{"big", "small"} {
			if err := tx.PutCluster(&store.Cluster{Name: c}); err != nil {
				return err
			}
			if err := tx.PutToken(&store.Token{ID: "tok-" + c, Cluster: c, Role: "taskmanager"}); err != nil {
				return err
			}
		}
		for i := range 2 {
			if err := tx.PutHolder(&store.Holder{Cluster: "small", Purpose: "internal", Name: fmt.Sprintf("jm-%d", i)}); err != nil {
				return err
			}
		}
		return nil
	})
	for lo := 0; lo < many; lo += 100 { // etcd's default --max-txn-ops is 128
		put(func(tx *store.Txn) error {
			for i := lo; i < lo+100; i++ {
				if err := tx.PutHolder(&store.Holder{Cluster: "big", Purpose: "internal", Name: fmt.Sprintf("tm-%04d", i)}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	count := func(tx *store.Txn, cluster string) int {
		n := 0
		if err := tx.ForEachHolder(cluster, "", func(*store.Holder) (bool, error) { n++; return true, nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	put(func(tx *store.Txn) error {
		if n := count(tx, "big"); n != many {
			t.Fatalf("cluster big has %d holders before the delete, want %d", n, many)
		}
		if err := tx.DeleteCluster("big"); err != nil {
			return err
		}
		if n := count(tx, "big"); n != 0 {
			t.Errorf("within the deleting transaction, %d holders of big are still read", n)
		}
		if _, err := tx.Holder("big", "internal", "tm-0007"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("within the deleting transaction, a holder of big reads as %v, want ErrNotFound", err)
		}
		return nil
	})
	check := func(s *store.Store, when string) {
		t.Helper()
		if err := s.View(ctx, func(tx *store.Txn) error {
			if _, err := tx.Cluster("big"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: cluster big reads as %v, want ErrNotFound", when, err)
			}
			if n := count(tx, "big"); n != 0 {
				t.Errorf("%s: %d holders of big are left", when, n)
			}
			if n := count(tx, "small"); n != 2 {
				t.Errorf("%s: cluster small has %d holders, want 2", when, n)
			}
			if _, err := tx.Token("tok-big"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: big's token reads as %v, want ErrNotFound", when, err)
			}
			if _, err := tx.Token("tok-small"); err != nil {
				t.Errorf("%s: small's token: %v", when, err)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	check(s, "after the delete")
	s.Close()
	s = mustOpen(t, h, kek)
	defer s.Close()
	check(s, "after a reopen")
}
