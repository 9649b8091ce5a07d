package storetest

// The suite's tests of holder and token records: expiry scans, key order,
// ExpectHolder's stale-call check, and deleting a cluster with thousands.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/store"
)

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
