package authority_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/bolt"
)

// scanCounter counts the scans of one bucket on a real bbolt backend it
// passes everything to.
type scanCounter struct {
	store.Backend
	bucket string
	n      *atomic.Int64
}

func (b scanCounter) View(ctx context.Context, fn func(store.Tx) error) error {
	return b.Backend.View(ctx, func(tx store.Tx) error { return fn(countingTx{tx, b.bucket, b.n}) })
}

func (b scanCounter) Update(ctx context.Context, fn func(store.Tx) error) error {
	return b.Backend.Update(ctx, func(tx store.Tx) error { return fn(countingTx{tx, b.bucket, b.n}) })
}

func (b scanCounter) Batch(ctx context.Context, fn func(store.Tx) error) error {
	return b.Backend.Batch(ctx, func(tx store.Tx) error { return fn(countingTx{tx, b.bucket, b.n}) })
}

type countingTx struct {
	store.Tx
	bucket string
	n      *atomic.Int64
}

func (t countingTx) Scan(bucket, prefix, start []byte, fn func(k, v []byte) (bool, error)) error {
	if string(bucket) == t.bucket {
		t.n.Add(1)
	}
	return t.Tx.Scan(bucket, prefix, start, fn)
}

// countScans opens an Env on a bbolt file whose scans of bucket n counts.
func countScans(t *testing.T, bucket string, n *atomic.Int64, opts ...authoritytest.Option) *authoritytest.Env {
	path := filepath.Join(t.TempDir(), "flinkpki.db")
	return authoritytest.New(t, append(opts, authoritytest.WithBackend(func(context.Context) (store.Backend, error) {
		b, err := bolt.Open(path, bolt.Options{})
		return scanCounter{b, bucket, n}, err
	}))...)
}

// tickDaily moves the clock a day at a time, up to days, and ticks after
// each move, handing each tick's applied steps to each until it says done.
// It reports whether it did.
func tickDaily(t *testing.T, e *authoritytest.Env, days int, each func(day int, applied []string) (done bool)) bool {
	t.Helper()
	for day := 0; day < days; day++ {
		e.Clock.Add(24 * time.Hour)
		applied, err := e.Authority.Tick(e.Ctx)
		if err != nil {
			t.Fatal(err)
		}
		if each(day, applied) {
			return true
		}
	}
	return false
}

// TestATickReadsHoldersOnlyForADueStep: whether a rotation step is due
// depends on the CAs alone, so the scheduler's tick, every minute for every
// cluster, does not read a cluster's holders (a million of them, at scale)
// unless a step is due and must be checked against them.
func TestATickReadsHoldersOnlyForADueStep(t *testing.T) {
	var scans atomic.Int64
	e := countScans(t, "holders", &scans)
	const leaf = 30 * 24 * time.Hour
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders", CAValidity: 400 * 24 * time.Hour, LeafValidity: leaf})
	for i := range 20 {
		e.Enroll("orders", "taskmanager", fmt.Sprintf("tm-%d", i))
	}

	scans.Store(0)
	applied, err := e.Authority.Tick(e.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 0 {
		t.Fatalf("a new cluster's tick applied %v", applied)
	}
	if n := scans.Load(); n != 0 {
		t.Errorf("a tick with nothing due scanned the holders %d times", n)
	}

	// Walk the clock until the scheduler prepares, then activates, the next
	// CA: activation must first check the live holders.
	activated := tickDaily(t, e, 400, func(_ int, applied []string) bool {
		defer scans.Store(0) // count the next tick's alone
		if !slices.Contains(applied, "orders/internal:activate") {
			return false
		}
		if scans.Load() == 0 {
			t.Error("the scheduler activated a CA without reading the holders it could break")
		}
		return true
	})
	if !activated {
		t.Fatal("the scheduler never activated the next CA in 400 days")
	}
}

// TestATickReportsWhatEachLineageWaitsFor: after each tick the observer
// holds one record per lineage with automatic rotation on, naming the step
// it waits for; after a step is applied, the step after it; a cluster
// without automatic rotation has none, and a deleted cluster's go at the
// next tick.
func TestATickReportsWhatEachLineageWaitsFor(t *testing.T) {
	obs := &recorder{}
	e := authoritytest.New(t, authoritytest.WithObserver(obs))
	const leaf = 30 * 24 * time.Hour
	for _, req := range []authority.CreateClusterRequest{
		{Name: "auto", CAValidity: 400 * 24 * time.Hour, LeafValidity: leaf},
		{Name: "gone", CAValidity: 400 * 24 * time.Hour, LeafValidity: leaf},
		{Name: "manual", CAValidity: 400 * 24 * time.Hour, LeafValidity: leaf, NoAutoRotate: true},
	} {
		e.CreateCluster(req)
	}
	tick := func() []string {
		t.Helper()
		if _, err := e.Authority.Tick(e.Ctx); err != nil {
			t.Fatal(err)
		}
		return obs.lastRotations()
	}
	want := []string{
		"auto/internal waits for prepare blocked=false failed=false",
		"auto/rest waits for prepare blocked=false failed=false",
		"gone/internal waits for prepare blocked=false failed=false",
		"gone/rest waits for prepare blocked=false failed=false",
	}
	if got := tick(); !slices.Equal(got, want) {
		t.Fatalf("a new cluster's tick reported\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := e.Authority.DeleteCluster(e.Ctx, admin, "gone"); err != nil {
		t.Fatal(err)
	}
	prepared := tickDaily(t, e, 400, func(day int, applied []string) bool {
		if slices.Contains(applied, "auto/internal:prepare") {
			want := []string{
				"auto/internal waits for activate blocked=false failed=false",
				"auto/rest waits for activate blocked=false failed=false",
			}
			if got := obs.lastRotations(); !slices.Equal(got, want) {
				t.Fatalf("the tick that prepared the next CAs (%v) reported\n%s\nwant\n%s", applied, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			return true
		}
		if got := obs.lastRotations(); len(got) != 2 || !strings.HasPrefix(got[0], "auto/internal waits for prepare") {
			t.Fatalf("on day %d, after the delete of gone, a tick reported %v", day, got)
		}
		return false
	})
	if !prepared {
		t.Fatal("the scheduler never prepared the next CA in 400 days")
	}
}

// TestATickReadsCAsOnlyOfClustersThatChanged: the next steps depend on a
// cluster's CAs and leaf validity alone, so a tick reads the CAs only of
// the clusters whose lineages changed since the tick before (a step taken
// by hand, a cluster deleted and made again under its name), and still
// reports and takes every step when it is due.
func TestATickReadsCAsOnlyOfClustersThatChanged(t *testing.T) {
	var scans atomic.Int64
	obs := &recorder{}
	e := countScans(t, "cas", &scans, authoritytest.WithObserver(obs))
	const leaf = 30 * 24 * time.Hour
	create := func(name string, l time.Duration) {
		e.CreateCluster(authority.CreateClusterRequest{Name: name, CAValidity: 400 * 24 * time.Hour, LeafValidity: l})
	}
	for i := range 5 {
		create(fmt.Sprintf("c%d", i), leaf)
	}
	tick := func(wantScans int64, what string) []string {
		t.Helper()
		scans.Store(0)
		applied, err := e.Authority.Tick(e.Ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := scans.Load(); n != wantScans {
			t.Errorf("%s: the tick read the CAs of %d clusters, want %d", what, n, wantScans)
		}
		return applied
	}
	tick(5, "first tick")
	tick(0, "nothing changed")
	if err := e.Authority.Prepare(e.Ctx, admin, "c1", "internal"); err != nil {
		t.Fatal(err)
	}
	tick(1, "after a prepare by hand")
	if got := obs.lastRotations(); !slices.Contains(got, "c1/internal waits for activate blocked=false failed=false") ||
		!slices.Contains(got, "c1/rest waits for prepare blocked=false failed=false") {
		t.Errorf("after a prepare by hand of c1/internal the tick reported %v", got)
	}
	if err := e.Authority.DeleteCluster(e.Ctx, admin, "c2"); err != nil {
		t.Fatal(err)
	}
	create("c2", 10*24*time.Hour) // same name, new CAs, another leaf validity
	tick(1, "after c2 was made again")

	// Walk the clock: every due step is still taken, at the day the
	// lineage's own CAs say, whatever the tick remembered.
	prepared := map[string]bool{}
	tickDaily(t, e, 400, func(_ int, applied []string) bool {
		for _, s := range applied {
			if c, ok := strings.CutSuffix(s, "/rest:prepare"); ok {
				prepared[c] = true
			}
		}
		return len(prepared) == 5
	})
	if len(prepared) != 5 {
		t.Fatalf("in 400 days the scheduler prepared the next REST CA of %v, want all 5 clusters", prepared)
	}
	reported := obs.lastRotations()
	for _, c := range []string{"c0", "c1", "c2", "c3", "c4"} {
		v, err := e.Authority.GetCluster(e.Ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []ca.Purpose{ca.PurposeInternal, ca.PurposeREST} {
			want := fmt.Sprintf("%s/%s waits for %s blocked=false failed=false", c, p, v.NextStep(p, e.Clock.Now()).Kind)
			if !slices.Contains(reported, want) {
				t.Errorf("the last tick reported %v; want %q among them", reported, want)
			}
		}
	}
}

// TestTheSchedulerWaitsForHoldersAStepWouldBreak: by the schedule no live
// holder can block an automatic step (each waits a leaf validity), but a
// holder the schedule does not foresee (a leaf issued by a server with a
// clock ahead, or by an earlier version with longer leaves) must stop it
// all the same: the scheduler never forces. The step waits, is reported
// as blocked, and is taken at the first tick after the holder is gone.
// That holds for activation (a live holder that does not trust the next
// CA) and for retirement (a live holder signed by the retiring CA).
func TestTheSchedulerWaitsForHoldersAStepWouldBreak(t *testing.T) {
	obs := &recorder{}
	var logs syncBuffer
	e := authoritytest.New(t, authoritytest.WithObserver(obs), authoritytest.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	const leaf = 30 * 24 * time.Hour
	e.CreateCluster(authority.CreateClusterRequest{Name: "held", CAValidity: 400 * 24 * time.Hour, LeafValidity: leaf})
	state := func() map[string]ca.State {
		t.Helper()
		v, err := e.Authority.GetCluster(e.Ctx, "held")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]ca.State{}
		for _, c := range v.CAs {
			if c.Purpose == ca.PurposeInternal {
				out[c.ID] = c.State
			}
		}
		return out
	}
	// An unforeseen holder: valid for a year, of the given signer and trust.
	plant := func(name, signedBy string, trusts ...string) {
		t.Helper()
		now := e.Clock.Now()
		if err := e.Store.Update(e.Ctx, func(tx *store.Txn) error {
			return tx.PutHolder(&store.Holder{Cluster: "held", Purpose: "internal", Name: name, Role: "taskmanager",
				Serial: "0a" + name, NotAfter: now.Add(365 * 24 * time.Hour), SignedBy: signedBy, Trusts: trusts, Issued: now})
		}); err != nil {
			t.Fatal(err)
		}
	}
	release := func(name string) {
		t.Helper()
		if _, err := e.Authority.ReleaseHolder(e.Ctx, admin, "held", name, "internal"); err != nil {
			t.Fatal(err)
		}
	}
	blocked := func(step string) bool {
		return slices.Contains(obs.lastRotations(), "held/internal waits for "+step+" blocked=true failed=false")
	}

	if !tickDaily(t, e, 400, func(_ int, applied []string) bool { return slices.Contains(applied, "held/internal:prepare") }) {
		t.Fatal("the scheduler never prepared the next CA")
	}
	if got := state(); got["internal-1"] != ca.StateActive || got["internal-2"] != ca.StatePrepared {
		t.Fatalf("after prepare the lineage is %v", got)
	}
	plant("ahead-tm", "internal-1", "internal-1")
	// Ticks go on past the day activation was due: it waits, blocked.
	for day := range 60 {
		e.Clock.Add(24 * time.Hour)
		applied, err := e.Authority.Tick(e.Ctx)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(applied, "held/internal:activate") {
			t.Fatalf("day %d: the scheduler activated the next CA although ahead-tm, live, does not trust it", day)
		}
	}
	if !blocked("activate") {
		t.Fatalf("activation was not reported blocked: %v", obs.lastRotations())
	}
	// 60 daily ticks of a blocked step: one log line a day (an hour apart
	// at most), not one a tick; the gauge says it at every tick.
	if n := strings.Count(logs.String(), "automatic rotation step is waiting for holders"); n < 1 || n > 61 {
		t.Errorf("the blocked activation was logged %d times in 60 daily ticks, want about one a day", n)
	}
	before := strings.Count(logs.String(), "automatic rotation step is waiting for holders")
	for range 5 { // ticks a minute apart
		e.Clock.Add(time.Minute)
		if _, err := e.Authority.Tick(e.Ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "automatic rotation step is waiting for holders") - before; n != 0 {
		t.Errorf("five ticks a minute apart logged the same blocked step %d more times, want none within the hour", n)
	}
	if got := state(); got["internal-2"] != ca.StatePrepared {
		t.Fatalf("the blocked activation changed the lineage: %v", got)
	}
	release("ahead-tm")
	if applied, err := e.Authority.Tick(e.Ctx); err != nil || !slices.Contains(applied, "held/internal:activate") {
		t.Fatalf("the first tick after the blocker left applied %v (%v), want the activation", applied, err)
	}

	plant("old-tm", "internal-1", "internal-1", "internal-2")
	for day := range 60 {
		e.Clock.Add(24 * time.Hour)
		applied, err := e.Authority.Tick(e.Ctx)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(applied, "held/internal:retire") {
			t.Fatalf("day %d: the scheduler retired the old CA although old-tm, live, was signed by it", day)
		}
	}
	if !blocked("retire") {
		t.Fatalf("retirement was not reported blocked: %v", obs.lastRotations())
	}
	if got := state(); got["internal-1"] != ca.StateRetiring {
		t.Fatalf("the blocked retirement changed the lineage: %v", got)
	}
	release("old-tm")
	if applied, err := e.Authority.Tick(e.Ctx); err != nil || !slices.Contains(applied, "held/internal:retire") {
		t.Fatalf("the first tick after the blocker left applied %v (%v), want the retirement", applied, err)
	}
	if got := state(); len(got) != 1 || got["internal-2"] != ca.StateActive {
		t.Fatalf("after the retirement the lineage is %v", got)
	}
}

// hookRand runs fn once, on the first read after armed says so: a hook
// in the middle of a CA's creation.
type hookRand struct {
	armed func() bool
	fn    func()
}

func (h *hookRand) Read(p []byte) (int, error) {
	if h.armed != nil && h.armed() {
		h.armed = nil
		h.fn()
	}
	return rand.Read(p)
}

// TestATickTakesNoStaleStep: a tick reads each lineage's due step before
// it takes the steps; an administrator's steps on cluster b2 while the
// tick works on a1 (here: while a1's next CA is made) leave a new prepared
// CA, which the tick must not activate at once, L before the schedule
// allows: the step is checked again in the transaction that takes it.
// (From this session's rotation-safety review.)
func TestATickTakesNoStaleStep(t *testing.T) {
	const L = day
	var armed bool
	var e *authoritytest.Env
	h := &hookRand{}
	e = authoritytest.New(t)
	// Rebuild the Authority with the hooked reader.
	a, err := authority.New(authority.Config{Store: e.Store, Now: e.Clock.Now, Rand: h})
	if err != nil {
		t.Fatal(err)
	}
	e.Authority = a
	e.CreateCluster(authority.CreateClusterRequest{Name: "a1", CAValidity: 4*L + ca.MinMargin, LeafValidity: L})
	e.CreateCluster(authority.CreateClusterRequest{Name: "b2", LeafValidity: L})
	e.Clock.Add(L)
	if err := a.Prepare(e.Ctx, admin, "b2", "internal"); err != nil {
		t.Fatal(err)
	}
	e.Clock.Add(L)
	h.armed = func() bool { return armed }
	h.fn = func() {
		for _, step := range []func() error{
			func() error { return a.Activate(e.Ctx, admin, "b2", "internal", false) },
			func() error { return a.Retire(e.Ctx, admin, "b2", "internal", false) },
			func() error { return a.Prepare(e.Ctx, admin, "b2", "internal") },
		} {
			if err := step(); err != nil {
				t.Errorf("admin step: %v", err)
			}
		}
	}
	armed = true
	steps, err := a.Tick(e.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.armed != nil {
		t.Fatal("the hook never ran: the tick made no key for a1")
	}
	t.Logf("tick applied %v", steps)
	l := lineage(t, e, "b2", ca.PurposeInternal)
	act := l.Active()
	t.Logf("b2 lineage %v; active %s created %s activated %s", l.TrustIDs(), act.ID, act.Created, act.Activated)
	if act.Generation != 2 {
		t.Errorf("b2's active CA is %s, want internal-2 (activated by hand; internal-3 prepared)", act.ID)
	}
	if act.Generation == 3 && act.Activated.Sub(act.Created) < L {
		t.Errorf("the scheduler activated %s %s after it was prepared, want at least L=%s", act.ID, act.Activated.Sub(act.Created), L)
	}
}

// TestStepsHoldOnAClockAheadWithinTheSkewAllowed: the replica that steps a
// lineage may run on a clock ahead of the one that issued its leaves (HA
// leadership moving between replicas, a VM resumed with a fast clock). A
// leaf that its own issuer's clock still holds valid must block the steps
// taken on a clock up to ca.ClockSkew ahead: here 4 minutes, on 30-day
// leaves, for both the automatic activation and retirement. (From this
// session's rotation-safety review, whose example, a clock an hour fast,
// is beyond what any allowance can cover: servers must keep time.)
func TestStepsHoldOnAClockAheadWithinTheSkewAllowed(t *testing.T) {
	const L = 30 * day
	const ahead = 4 * time.Minute
	if ahead >= ca.ClockSkew(L) {
		t.Fatalf("the test's skew %s is not within the allowance %s", ahead, ca.ClockSkew(L))
	}
	t.Run("activation", func(t *testing.T) {
		e := authoritytest.New(t)
		e.CreateCluster(authority.CreateClusterRequest{Name: "sa", CAValidity: 400 * day, LeafValidity: L})
		tm0 := e.Enroll("sa", "taskmanager", "tm-0") // trusts the first CA only
		e.Clock.Add(30 * time.Second)
		if err := e.Authority.Prepare(e.Ctx, admin, "sa", "internal"); err != nil {
			t.Fatal(err)
		}
		// The stepping replica's clock is ahead; on the issuer's, tm-0's
		// leaf has a minute left.
		real := tm0.Leaf().NotAfter.Add(-time.Minute)
		e.Clock.Add(real.Sub(e.Clock.Now()) + ahead)
		if steps, err := e.Authority.Tick(e.Ctx); err != nil || slices.Contains(steps, "sa/internal:activate") {
			t.Fatalf("a tick on a clock %s ahead applied %v (%v) while tm-0 is live on the issuer's clock", ahead, steps, err)
		}
		e.Clock.Add(-ahead)
		mustTalk(t, tm0, e.Enroll("sa", "jobmanager", "jm-1"))
	})
	t.Run("retirement", func(t *testing.T) {
		e := authoritytest.New(t)
		e.CreateCluster(authority.CreateClusterRequest{Name: "sk", CAValidity: 400 * day, LeafValidity: L})
		if err := e.Authority.Prepare(e.Ctx, admin, "sk", "internal"); err != nil {
			t.Fatal(err)
		}
		jm0 := e.Enroll("sk", "jobmanager", "jm-0") // signed by the first CA
		e.Clock.Add(30 * time.Second)
		if err := e.Authority.Activate(e.Ctx, admin, "sk", "internal", false); err != nil {
			t.Fatal(err)
		}
		real := jm0.Leaf().NotAfter.Add(-time.Minute)
		e.Clock.Add(real.Sub(e.Clock.Now()) + ahead)
		if steps, err := e.Authority.Tick(e.Ctx); err != nil || slices.Contains(steps, "sk/internal:retire") {
			t.Fatalf("a tick on a clock %s ahead applied %v (%v) while jm-0 is live on the issuer's clock", ahead, steps, err)
		}
		e.Clock.Add(-ahead)
		mustTalk(t, jm0, e.Enroll("sk", "taskmanager", "tm-1"))
	})
}

// TestALateRotationActivatesWhenTheActiveCAExpires: automatic rotation
// turned on (or a scheduler back up) so late that the active CA expires
// less than L after the prepare. No leaf the active CA signed outlives it,
// so the scheduler activates the prepared CA as soon as the active one has
// expired (and the clock skew allowed has passed) instead of L after the
// prepare, which left the cluster unable to enroll for up to L.
func TestALateRotationActivatesWhenTheActiveCAExpires(t *testing.T) {
	e := authoritytest.New(t)
	const day, leaf = 24 * time.Hour, 30 * 24 * time.Hour
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders", CAValidity: 130 * day, LeafValidity: leaf, NoAutoRotate: true})
	e.Enroll("orders", "taskmanager", "tm-0")

	e.Clock.Add(129 * day) // a day before the first CA expires
	on := true
	if _, err := e.Authority.UpdateCluster(e.Ctx, authoritytest.Admin, authority.UpdateClusterRequest{Name: "orders", AutoRotate: &on}); err != nil {
		t.Fatal(err)
	}
	applied, err := e.Authority.Tick(e.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(applied, "orders/internal:prepare") {
		t.Fatalf("the first tick applied %v, want the internal prepare", applied)
	}

	e.Clock.Add(day + 10*time.Minute) // the first CA expired, the skew passed
	applied, err = e.Authority.Tick(e.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(applied, "orders/internal:activate") {
		t.Fatalf("a tick after the active CA expired applied %v, want the internal activate", applied)
	}
	c := e.Enroll("orders", "taskmanager", "tm-1")
	if got := c.Chain[0].Issuer.CommonName; !strings.HasSuffix(got, "internal CA 2") {
		t.Errorf("the leaf after the late rotation was issued by %q, want the internal CA 2", got)
	}
}

// TestATickPreparesNothingOnceAutomaticRotationIsOff: the scheduler makes
// the next CA's key before it stores the CA; an administrator who turns
// automatic rotation off meanwhile (on another replica, which does not
// wait for this one's lock on the cluster) must find nothing prepared, as
// for the other steps (stillDue, checked where the CA is stored).
func TestATickPreparesNothingOnceAutomaticRotationIsOff(t *testing.T) {
	const L = day
	e := authoritytest.New(t)
	h := &hookRand{}
	a, err := authority.New(authority.Config{Store: e.Store, Now: e.Clock.Now, Rand: h})
	if err != nil {
		t.Fatal(err)
	}
	other, err := authority.New(authority.Config{Store: e.Store, Now: e.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.Authority = a
	e.CreateCluster(authority.CreateClusterRequest{Name: "c1", CAValidity: 4*L + ca.MinMargin, LeafValidity: L})
	e.Clock.Add(2 * L) // the next CA is due: 2L plus the margin before the active one expires
	off := false
	h.armed = func() bool { return true }
	h.fn = func() {
		if _, err := other.UpdateCluster(e.Ctx, admin, authority.UpdateClusterRequest{Name: "c1", AutoRotate: &off}); err != nil {
			t.Errorf("turn automatic rotation off: %v", err)
		}
	}
	applied, err := a.Tick(e.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.armed != nil {
		t.Fatal("the hook never ran: the tick made no key")
	}
	if len(applied) != 0 {
		t.Errorf("the tick applied %v after automatic rotation was turned off", applied)
	}
	if l := lineage(t, e, "c1", ca.PurposeInternal); l.Prepared() != nil {
		t.Errorf("the tick prepared %s after automatic rotation was turned off", l.Prepared().ID)
	}
}
