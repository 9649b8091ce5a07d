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

// contention decides which Updates of a contendedBackend lose, as etcd's
// do when a transaction keeps losing to concurrent writers (issuances
// into the lineage whose holders a rotation step reads).
type contention struct {
	mu     sync.Mutex
	always bool   // every Update loses, once plan is used up
	plan   []bool // the next Updates: true loses, false goes through
	// after, when set, runs after every Update that went through.
	after func()
	// bounds is store.Attempts of every Update's context, in order.
	bounds []int
}

func (c *contention) set(always bool, plan ...bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.always, c.plan = always, plan
}

func (c *contention) loses() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.plan) > 0 {
		l := c.plan[0]
		c.plan = c.plan[1:]
		return l
	}
	return c.always
}

type contendedBackend struct {
	store.Backend
	c *contention
}

func (b contendedBackend) Update(ctx context.Context, fn func(store.Tx) error) error {
	b.c.mu.Lock()
	b.c.bounds = append(b.c.bounds, store.Attempts(ctx))
	b.c.mu.Unlock()
	if b.c.loses() {
		return fmt.Errorf("%w after 20 attempts: %w: retry the request", store.ErrContended, store.ErrUnavailable)
	}
	err := b.Backend.Update(ctx, fn)
	if err == nil && b.c.after != nil {
		b.c.after()
	}
	return err
}

// contendedEnv is an Authority on a bbolt file behind a contendedBackend,
// logging to logs.
func contendedEnv(t *testing.T, c *contention, logs *syncBuffer) *authoritytest.Env {
	path := filepath.Join(t.TempDir(), "flinkpki.db")
	return authoritytest.New(t, authoritytest.WithLogger(slog.New(slog.NewTextHandler(logs, nil))), authoritytest.WithBackend(func(context.Context) (store.Backend, error) {
		b, err := bolt.Open(path, bolt.Options{})
		return contendedBackend{b, c}, err
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
	var c contention
	var logs syncBuffer
	e := contendedEnv(t, &c, &logs)
	const L = day
	e.CreateCluster(authority.CreateClusterRequest{Name: "busy", CAValidity: 4*L + ca.MinMargin, LeafValidity: L})
	if err := e.Authority.Prepare(e.Ctx, admin, "busy", "internal"); err != nil {
		t.Fatal(err)
	}
	e.Clock.Add(L + time.Hour) // activation is due
	c.set(true)
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
	c.set(false)
	if applied, err = e.Authority.Tick(e.Ctx); err != nil || !slices.Contains(applied, "busy/internal:activate") {
		t.Fatalf("the next tick: applied %v, err %v; want the activation", applied, err)
	}
}

// TestAStepIsFencedAfterAFewLostAttempts: under steady enrollment on etcd
// every run of a rotation step reads the lineage's holders and loses
// alike, so the step's first transaction runs only a few times (not the
// store's whole budget of 20 scans) before the step holds the issuances
// back; the fenced run, which should win, has the whole budget.
func TestAStepIsFencedAfterAFewLostAttempts(t *testing.T) {
	var c contention
	var logs syncBuffer
	e := contendedEnv(t, &c, &logs)
	e.CreateCluster(authority.CreateClusterRequest{Name: "busy", CAValidity: 4*day + ca.MinMargin, LeafValidity: day})
	if err := e.Authority.Prepare(e.Ctx, admin, "busy", "internal"); err != nil {
		t.Fatal(err)
	}
	e.Clock.Add(day + time.Hour) // activation is due
	c.mu.Lock()
	c.bounds = nil
	c.mu.Unlock()
	c.set(false, true) // the step's first transaction loses
	if err := e.Authority.Activate(e.Ctx, admin, "busy", "internal", false); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.bounds) != 3 || c.bounds[0] <= 0 || c.bounds[0] > 5 || c.bounds[1] != 0 || c.bounds[2] != 0 {
		t.Fatalf("the activation's transactions ran with attempt bounds %v; want three (the step, the fence, the fenced step), the first bounded to a few and the others to the store's own budget (0)", c.bounds)
	}
}

// stepFence reads the cluster's StepFence and its lineage from the store.
func stepFence(t *testing.T, e *authoritytest.Env, cluster string) (time.Time, string) {
	t.Helper()
	v, err := e.Authority.GetCluster(e.Ctx, cluster)
	if err != nil {
		t.Fatal(err)
	}
	return v.Cluster.StepFence, v.Cluster.StepFencePurpose
}

// fenceSeen makes c record, after every Update that goes through, whether
// the cluster's internal lineage is fenced: that the fence was written,
// whatever lifted it since.
func fenceSeen(t *testing.T, e *authoritytest.Env, c *contention, cluster string) *atomic.Bool {
	var seen atomic.Bool
	c.after = func() {
		if f, p := stepFence(t, e, cluster); !f.IsZero() && p == "internal" {
			seen.Store(true)
		}
	}
	return &seen
}

// TestAFencedStepThatIsRefusedLiftsItsFence: a step that lost to the
// lineage's issuances holds them back and runs again; refused then (a live
// holder does not trust the prepared CA), or losing again, it lifts the
// fence at once instead of leaving the lineage's enrollment stalled until
// it lapses. The scheduler's step, fenced and committed, leaves no fence
// either: its own commit cleared it.
func TestAFencedStepThatIsRefusedLiftsItsFence(t *testing.T) {
	var c contention
	var logs syncBuffer
	e := contendedEnv(t, &c, &logs)
	seen := fenceSeen(t, e, &c, "busy")
	e.CreateCluster(authority.CreateClusterRequest{Name: "busy", CAValidity: 400 * day, LeafValidity: 30 * day})
	e.Enroll("busy", "taskmanager", "tm-0") // trusts only the first CA
	if err := e.Authority.Prepare(e.Ctx, admin, "busy", "internal"); err != nil {
		t.Fatal(err)
	}
	lifted := func(what string) {
		t.Helper()
		if !seen.Swap(false) {
			t.Fatalf("%s: the step never fenced the lineage's issuances; log:\n%s", what, logs.String())
		}
		if f, _ := stepFence(t, e, "busy"); !f.IsZero() {
			t.Fatalf("%s: the lineage's issuances are still held back until %v", what, f)
		}
	}

	c.set(false, true) // the step's first commit loses; the fence and the rerun go through
	err := e.Authority.Activate(e.Ctx, admin, "busy", "internal", false)
	if !errors.Is(err, ca.ErrBlocked) {
		t.Fatalf("activate with a holder that does not trust the prepared CA: %v, want it refused for the holder", err)
	}
	lifted("after the refused step")

	c.set(false, true, false, true) // the rerun loses too
	err = e.Authority.Activate(e.Ctx, admin, "busy", "internal", false)
	if !errors.Is(err, authority.ErrConflict) {
		t.Fatalf("activate that lost again once fenced: %v, want a conflict", err)
	}
	lifted("after the fenced step lost again")

	e.Enroll("busy", "taskmanager", "tm-0") // now it trusts the prepared CA
	e.Clock.Add(31 * day)                   // the automatic activation is due
	c.set(false, true)
	if applied, err := e.Authority.Tick(e.Ctx); err != nil || !slices.Contains(applied, "busy/internal:activate") {
		t.Fatalf("the tick once the holder trusts the prepared CA: applied %v, err %v; want the activation", applied, err)
	}
	lifted("after the scheduler's fenced step committed")
	if l := lineage(t, e, "busy", ca.PurposeInternal); l.Active() == nil || l.Active().Generation != 2 {
		t.Fatalf("after the fenced activation the active CA is %+v, want generation 2", l.Active())
	}
}

// setFence holds the issuances of the cluster's internal lineage back
// until until, as a rotation step on another replica does.
func setFence(t *testing.T, e *authoritytest.Env, cluster string, until time.Time) {
	t.Helper()
	err := e.Store.Update(e.Ctx, func(tx *store.Txn) error {
		c, err := tx.Cluster(cluster)
		if err != nil {
			return err
		}
		c.StepFence, c.StepFencePurpose = until, "internal"
		return tx.PutCluster(c)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAnIssuanceWaitsForARotationStepsFence: while a rotation step holds
// the lineage's issuances back, an enrollment waits instead of failing,
// and goes on when the fence is lifted, when it lapses, or, when the
// replica that set it stopped on a clock ahead, after waiting as long as a
// step may take; a caller that gives up meanwhile ends at once.
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

	// Fences end within the 5 s a step may hold them plus as much clock
	// skew: one further ahead is ignored (checkFence's own test).
	setFence(t, e, "busy", e.Clock.Now().Add(8*time.Second))
	done := enroll("tm-0")
	held("fence set", done)
	setFence(t, e, "busy", time.Time{})
	goesOn("fence lifted", done)

	setFence(t, e, "busy", e.Clock.Now().Add(8*time.Second))
	done = enroll("tm-1")
	held("fence set again", done)
	e.Clock.Add(9 * time.Second)
	goesOn("fence lapsed", done)

	// A fence never lifted, on a clock that does not move (a replica that
	// stopped, its clock ahead of this one's): the enrollment waits as long
	// as a step may take, then goes on.
	setFence(t, e, "busy", e.Clock.Now().Add(9*time.Second))
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

	// A caller that gives up while held back ends at once, with nothing
	// issued.
	setFence(t, e, "busy", e.Clock.Now().Add(8*time.Second))
	_, csr, err := authoritytest.NewCSR("ecdsa-p256", "tm-3")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.Ctx)
	go func() {
		time.Sleep(200 * time.Millisecond)
		cancel()
	}()
	_, err = e.Authority.Enroll(ctx, admin, authority.EnrollRequest{Cluster: "busy", Role: "taskmanager", Holder: "tm-3", CSR: csr})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("an enrollment whose caller gave up while held back: %v, want context.Canceled", err)
	}
	if hs, err := e.Authority.ListHolders(e.Ctx, "busy", false); err != nil || len(hs) != 3 {
		t.Fatalf("after the enrollment that gave up the cluster has %d holders (%v), want 3", len(hs), err)
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
	keys.fence = func() { setFence(t, e, "busy", e.Clock.Now().Add(8*time.Second)) }
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

// TestCheckFence: which fences hold an issuance back. Only one of the
// issuance's own lineage that has not lapsed, and not one that ends
// further ahead of this replica's clock than a step may hold it plus the
// clock skew allowed (left by a replica that stopped, its clock ahead: it
// would hold every issuance of the lineage back for as long as the clocks
// differ), and none once the issuance has waited as long as it may.
func TestCheckFence(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	fence := func(d time.Duration, p string) *store.Cluster {
		return &store.Cluster{Name: "c", StepFence: now.Add(d), StepFencePurpose: p}
	}
	for _, tt := range []struct {
		name   string
		c      *store.Cluster
		p      ca.Purpose
		passed bool
		want   bool
	}{
		{"no fence", &store.Cluster{Name: "c"}, ca.PurposeInternal, false, false},
		{"the lineage's fence", fence(time.Second, "internal"), ca.PurposeInternal, false, true},
		{"the other lineage's fence", fence(time.Second, "rest"), ca.PurposeInternal, false, false},
		{"a rest fence for a rest issuance", fence(time.Second, "rest"), ca.PurposeREST, false, true},
		{"lapsed", fence(-time.Millisecond, "internal"), ca.PurposeInternal, false, false},
		{"ends now", fence(0, "internal"), ca.PurposeInternal, false, false},
		{"at the skew bound", fence(authority.FenceFor+authority.FenceSkew, "internal"), ca.PurposeInternal, false, true},
		{"beyond the skew bound", fence(authority.FenceFor+authority.FenceSkew+time.Millisecond, "internal"), ca.PurposeInternal, false, false},
		{"an hour ahead", fence(time.Hour, "internal"), ca.PurposeInternal, false, false},
		{"waited as long as it may", fence(time.Second, "internal"), ca.PurposeInternal, true, false},
	} {
		if got := authority.CheckFence(tt.c, tt.p, now, tt.passed); got != tt.want {
			t.Errorf("%s: held back %v, want %v", tt.name, got, tt.want)
		}
	}
}
