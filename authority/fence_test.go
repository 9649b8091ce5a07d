package authority_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/bolt"
)

// contendedBackend fails the next contend Updates (all of them while it
// is negative), as etcd does when a transaction keeps losing to concurrent
// writers (issuances into the cluster whose holders a rotation step reads).
type contendedBackend struct {
	store.Backend
	contend *atomic.Int64
}

func (b contendedBackend) Update(ctx context.Context, fn func(store.Tx) error) error {
	if n := b.contend.Load(); n < 0 || n > 0 && b.contend.CompareAndSwap(n, n-1) {
		return fmt.Errorf("%w after 20 attempts: %w: retry the request", store.ErrContended, store.ErrUnavailable)
	}
	return b.Backend.Update(ctx, fn)
}

// contendedEnv is an Authority on a bbolt file behind a contendedBackend,
// logging to logs.
func contendedEnv(t *testing.T, contend *atomic.Int64, logs *syncBuffer) *authoritytest.Env {
	path := filepath.Join(t.TempDir(), "flinkpki.db")
	return authoritytest.New(t, authoritytest.WithLogger(slog.New(slog.NewTextHandler(logs, nil))), authoritytest.WithBackend(func(context.Context) (store.Backend, error) {
		b, err := bolt.Open(path, bolt.Options{})
		return contendedBackend{b, contend}, err
	}))
}

// TestAStepThatKeepsLosingToIssuancesIsAConflict: on etcd, steady
// enrollment into a cluster can keep a rotation step's commit from going
// through (each issuance changes the holders the step read), and when
// even holding the issuances back does not help (the fence could not be
// set), that is a conflict, safe to run again, not a store that is down:
// the step says so (ErrConflict, gRPC Aborted), and the scheduler defers it
// to its next tick instead of failing.
func TestAStepThatKeepsLosingToIssuancesIsAConflict(t *testing.T) {
	var contend atomic.Int64
	var logs syncBuffer
	e := contendedEnv(t, &contend, &logs)
	const L = day
	e.CreateCluster(authority.CreateClusterRequest{Name: "busy", CAValidity: 4*L + ca.MinMargin, LeafValidity: L})
	if err := e.Authority.Prepare(e.Ctx, admin, "busy", "internal"); err != nil {
		t.Fatal(err)
	}
	e.Clock.Add(L + time.Hour) // activation is due
	contend.Store(-1)
	err := e.Authority.Activate(e.Ctx, admin, "busy", "internal", false)
	if !errors.Is(err, authority.ErrConflict) || errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "issuances into the cluster kept changing its holders") {
		t.Fatalf("activate that kept losing to issuances: %v, want a conflict that says why and is not 'store unavailable'", err)
	}
	applied, err := e.Authority.Tick(e.Ctx)
	if err != nil || len(applied) != 0 {
		t.Fatalf("a tick whose step kept losing to issuances: applied %v, err %v; want it deferred", applied, err)
	}
	if l := logs.String(); !strings.Contains(l, "automatic rotation step deferred") || strings.Contains(l, "automatic rotation failed") {
		t.Errorf("the scheduler's log for a step that kept losing to issuances:\n%s\nwant it deferred, not failed", l)
	}
	contend.Store(0)
	if applied, err = e.Authority.Tick(e.Ctx); err != nil || !slices.Contains(applied, "busy/internal:activate") {
		t.Fatalf("the next tick: applied %v, err %v; want the activation", applied, err)
	}
}

// stepFence reads the cluster's StepFence from the store.
func stepFence(t *testing.T, e *authoritytest.Env, cluster string) time.Time {
	t.Helper()
	v, err := e.Authority.GetCluster(e.Ctx, cluster)
	if err != nil {
		t.Fatal(err)
	}
	return v.Cluster.StepFence
}

// TestAFencedStepThatIsRefusedLiftsItsFence: a step that lost to the
// cluster's issuances holds them back and runs again; refused then (a live
// holder does not trust the prepared CA), it lifts the fence at once
// instead of leaving the cluster's enrollment stalled until it lapses.
// The scheduler's step, fenced and committed, leaves no fence either: its
// own commit cleared it.
func TestAFencedStepThatIsRefusedLiftsItsFence(t *testing.T) {
	var contend atomic.Int64
	var logs syncBuffer
	e := contendedEnv(t, &contend, &logs)
	e.CreateCluster(authority.CreateClusterRequest{Name: "busy", CAValidity: 400 * day, LeafValidity: 30 * day})
	e.Enroll("busy", "taskmanager", "tm-0") // trusts only the first CA
	if err := e.Authority.Prepare(e.Ctx, admin, "busy", "internal"); err != nil {
		t.Fatal(err)
	}
	contend.Store(1) // the step's first commit loses; the fence and the rerun go through
	err := e.Authority.Activate(e.Ctx, admin, "busy", "internal", false)
	if !errors.Is(err, ca.ErrBlocked) {
		t.Fatalf("activate with a holder that does not trust the prepared CA: %v, want it refused for the holder", err)
	}
	if !strings.Contains(logs.String(), "holds the cluster's issuances back") {
		t.Fatalf("the step never fenced the cluster's issuances; log:\n%s", logs.String())
	}
	if f := stepFence(t, e, "busy"); !f.IsZero() {
		t.Fatalf("after the refused step the cluster's issuances are still held back until %v", f)
	}

	e.Enroll("busy", "taskmanager", "tm-0") // now it trusts the prepared CA
	e.Clock.Add(31 * day)                   // the automatic activation is due
	logs.Reset()
	contend.Store(1)
	if applied, err := e.Authority.Tick(e.Ctx); err != nil || !slices.Contains(applied, "busy/internal:activate") {
		t.Fatalf("the tick once the holder trusts the prepared CA: applied %v, err %v; want the activation", applied, err)
	}
	if !strings.Contains(logs.String(), "holds the cluster's issuances back") {
		t.Fatalf("the scheduler's step never fenced the cluster's issuances; log:\n%s", logs.String())
	}
	if f := stepFence(t, e, "busy"); !f.IsZero() {
		t.Fatalf("after the fenced step committed the cluster's issuances are still held back until %v", f)
	}
	if l := lineage(t, e, "busy", ca.PurposeInternal); l.Active() == nil || l.Active().Generation != 2 {
		t.Fatalf("after the fenced activation the active CA is %+v, want generation 2", l.Active())
	}
}

// setFence holds the cluster's issuances back until until, as a rotation
// step on another replica does.
func setFence(t *testing.T, e *authoritytest.Env, cluster string, until time.Time) {
	t.Helper()
	err := e.Store.Update(e.Ctx, func(tx *store.Txn) error {
		c, err := tx.Cluster(cluster)
		if err != nil {
			return err
		}
		c.StepFence = until
		return tx.PutCluster(c)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAnIssuanceWaitsForARotationStepsFence: while a rotation step holds
// the cluster's issuances back, an enrollment waits instead of failing, and
// goes on when the fence is lifted, when it lapses, or, when the replica
// that set it stopped on a clock far ahead, after waiting as long as a
// step may take.
func TestAnIssuanceWaitsForARotationStepsFence(t *testing.T) {
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "busy", CAValidity: 400 * day, LeafValidity: 30 * day})
	enroll := func(holder string) <-chan error {
		done := make(chan error, 1)
		go func() {
			_, err := e.EnrollAs(admin, "busy", "taskmanager", holder)
			done <- err
		}()
		return done
	}
	held := func(what string, done <-chan error) {
		t.Helper()
		select {
		case err := <-done:
			t.Fatalf("%s: the enrollment ended (%v) while the cluster's issuances were held back", what, err)
		case <-time.After(300 * time.Millisecond):
		}
	}
	goesOn := func(what string, done <-chan error) {
		t.Helper()
		if err := <-done; err != nil {
			t.Fatalf("%s: the held-back enrollment failed: %v", what, err)
		}
	}

	setFence(t, e, "busy", e.Clock.Now().Add(time.Minute))
	done := enroll("tm-0")
	held("fence set", done)
	setFence(t, e, "busy", time.Time{})
	goesOn("fence lifted", done)

	setFence(t, e, "busy", e.Clock.Now().Add(time.Minute))
	done = enroll("tm-1")
	held("fence set again", done)
	e.Clock.Add(2 * time.Minute)
	goesOn("fence lapsed", done)

	// A fence an hour ahead, never lifted: the enrollment waits as long as
	// a step may take, then goes on.
	setFence(t, e, "busy", e.Clock.Now().Add(time.Hour))
	done = enroll("tm-2")
	held("fence of a stopped replica", done)
	goesOn("fence of a stopped replica", done)
	hs, err := e.Authority.ListHolders(e.Ctx, "busy", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 3 {
		t.Fatalf("after three held-back enrollments the cluster has %d holders, want 3", len(hs))
	}
}

// fencingKeys makes bake's keys, and on the first one calls fence: a
// rotation step fencing the cluster between an issuance's read and its
// commit.
type fencingKeys struct {
	fence func()
	once  sync.Once
}

func (k *fencingKeys) Touch() {}

func (k *fencingKeys) Key(_ context.Context, kt ca.KeyType) (crypto.Signer, error) {
	k.once.Do(k.fence)
	return kt.GenerateKey(rand.Reader)
}

// TestAnIssuanceFencedAfterItsReadWaitsAtItsCommit: a rotation step that
// fences the cluster while an issuance is already past its read (signing)
// holds it back at its commit too, so that once the fence is committed no
// issuance changes the holders the step reads.
func TestAnIssuanceFencedAfterItsReadWaitsAtItsCommit(t *testing.T) {
	keys := &fencingKeys{}
	e := authoritytest.New(t, authoritytest.WithKeyPool(keys))
	keys.fence = func() { setFence(t, e, "busy", e.Clock.Now().Add(time.Minute)) }
	e.CreateCluster(authority.CreateClusterRequest{Name: "busy", CAValidity: 400 * day, LeafValidity: 30 * day})
	done := make(chan error, 1)
	go func() {
		_, err := e.Authority.Bake(e.Ctx, admin, authority.EnrollRequest{Cluster: "busy", Role: "taskmanager", Holder: "tm-0"})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the bake fenced after its read ended (%v) while the cluster's issuances were held back", err)
	case <-time.After(300 * time.Millisecond):
	}
	if hs, err := e.Authority.ListHolders(e.Ctx, "busy", false); err != nil || len(hs) != 0 {
		t.Fatalf("while fenced the cluster has holders %v (%v), want none", hs, err)
	}
	setFence(t, e, "busy", time.Time{})
	if err := <-done; err != nil {
		t.Fatalf("the held-back bake, once the fence was lifted: %v", err)
	}
}
