package authority

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/internal/tick"
	"github.com/flinkpki/flinkpki/store"
)

// Tick applies every automatic rotation step that is due, for every cluster
// with automatic rotation on. It never breaks the safety rules: a blocked
// step waits, visibly, for the next tick. It returns the steps it applied.
//
// Each page of clusters is read in one transaction, CAs only: whether a
// step is due depends on them alone, and the step itself re-reads the
// lineage and its holders before it changes anything, so a tick over a
// million holders reads none unless a step is due.
func (a *Authority) Tick(ctx context.Context) ([]string, error) {
	var applied []string
	var waits []RotationWait
	err := forClusterPages(ctx, a, a.autoRotateSteps, func(page [][]lineageStep) error {
		for _, ls := range slices.Concat(page...) {
			step, wait, err := a.tickLineage(ctx, ls)
			if err != nil {
				wait = RotationWait{Cluster: ls.cluster, Purpose: string(ls.purpose), Failed: true}
				if a.logWait(wait) {
					a.log.ErrorContext(ctx, "automatic rotation failed", slog.String("cluster", ls.cluster), slog.String("purpose", string(ls.purpose)),
						slog.String("error", err.Error()), repeatsAttr)
				}
			}
			if wait.Cluster != "" {
				waits = append(waits, wait)
			}
			if step != "" {
				applied = append(applied, ls.cluster+"/"+string(ls.purpose)+":"+step)
			}
		}
		return nil
	})
	if err == nil {
		a.obs.Rotations(waits)
		seen := make(map[string]bool, len(waits))
		for _, w := range waits {
			seen[w.Cluster] = true
		}
		a.forgetSchedules(seen)
		a.forgetWaits(waits)
	}
	return applied, err
}

// schedulerLogEvery is how often the scheduler repeats the log line of a
// lineage that goes on waiting: the metrics (flinkpki_rotation_blocked)
// and ca status say it at every tick.
const schedulerLogEvery = time.Hour

// repeatsAttr tells, on a waiting lineage's log line, how often it comes.
var repeatsAttr = slog.String("repeats", "at most every "+schedulerLogEvery.String()+" while it lasts")

// logWait reports whether a wait (blocked, or failed) is to be logged
// now: the first time, and then at most every schedulerLogEvery.
func (a *Authority) logWait(w RotationWait) bool {
	key := w.logKey()
	a.waitMu.Lock()
	defer a.waitMu.Unlock()
	now := a.now()
	if last, ok := a.waitLogged[key]; ok && now.Sub(last) < schedulerLogEvery {
		return false
	}
	if a.waitLogged == nil {
		a.waitLogged = map[string]time.Time{}
	}
	a.waitLogged[key] = now
	return true
}

// forgetWaits drops the logged waits that this tick no longer saw, so a
// lineage that waits again later is logged at once, and the map holds only
// what waits now.
func (a *Authority) forgetWaits(waits []RotationWait) {
	now := make(map[string]bool, len(waits))
	for _, w := range waits {
		if w.Blocked || w.Failed {
			now[w.logKey()] = true
		}
	}
	a.waitMu.Lock()
	defer a.waitMu.Unlock()
	for k := range a.waitLogged {
		if !now[k] {
			delete(a.waitLogged, k)
		}
	}
}

// logKey names a wait in the scheduler's log bookkeeping: its lineage,
// and the step it waits for, or that it failed.
func (w RotationWait) logKey() string {
	if w.Failed {
		return w.Cluster + "/" + w.Purpose + ":failed"
	}
	return w.Cluster + "/" + w.Purpose + ":" + w.Step
}

// lineageStep is one lineage's next step as a tick read it, or why it
// could not be read.
type lineageStep struct {
	cluster string
	purpose ca.Purpose
	next    ca.Step
	err     error
}

// autoRotateSteps reads the next step of each lineage of a cluster with
// automatic rotation on (none when it is off). A cluster that cannot be
// read fails its own lineages, not the tick's other clusters. When and
// what the next steps are depends on the CAs and the leaf validity alone,
// so they are remembered per lineage epoch: a tick reads the CAs (and
// parses their certificates) only of the clusters whose lineages changed
// since the last one.
func (a *Authority) autoRotateSteps(tx *store.Txn, cluster string) ([]lineageStep, error) {
	c, err := tx.Cluster(cluster)
	if err == nil && !c.AutoRotate {
		return nil, nil
	}
	var steps [2]ca.Step
	if err == nil {
		steps, err = a.schedule(tx, c)
	}
	now := a.now()
	out := make([]lineageStep, 0, 2)
	for i, p := range ca.Purposes() {
		ls := lineageStep{cluster: cluster, purpose: p, err: err}
		if err == nil {
			ls.next = steps[i].DueAt(now)
		}
		out = append(out, ls)
	}
	return out, nil
}

// scheduled is a cluster's next steps (internal, then rest) as of its
// lineages at one epoch and one leaf validity; each tick sets Due.
type scheduled struct {
	lineageEpoch
	leaf  time.Duration
	steps [2]ca.Step
}

// schedule returns c's next steps, from the last tick's when c's lineages
// and leaf validity are what they were then.
func (a *Authority) schedule(tx *store.Txn, c *store.Cluster) ([2]ca.Step, error) {
	a.schedMu.Lock()
	s, ok := a.sched[c.Name]
	a.schedMu.Unlock()
	if ok && s.current(c) && s.leaf == c.LeafValidity {
		return s.steps, nil
	}
	v, err := a.clusterView(tx, c.Name)
	if err != nil {
		return [2]ca.Step{}, err
	}
	s = scheduled{lineageEpoch: epochOf(v.Cluster), leaf: v.Cluster.LeafValidity}
	for i, p := range ca.Purposes() {
		s.steps[i] = v.NextStep(p, time.Time{})
	}
	a.schedMu.Lock()
	a.sched[c.Name] = s
	a.schedMu.Unlock()
	return s.steps, nil
}

// forgetSchedules drops the remembered steps of clusters a whole tick did
// not see: deleted ones, or ones whose automatic rotation was turned off.
func (a *Authority) forgetSchedules(seen map[string]bool) {
	a.schedMu.Lock()
	defer a.schedMu.Unlock()
	for name := range a.sched {
		if !seen[name] {
			delete(a.sched, name)
		}
	}
}

// tickLineage applies the lineage's next step when it is due, and returns
// the step it applied and the step the lineage waits for after the tick
// (none when it has no next step).
func (a *Authority) tickLineage(ctx context.Context, ls lineageStep) (string, RotationWait, error) {
	cluster, p, next := ls.cluster, ls.purpose, ls.next
	if ls.err != nil {
		return "", RotationWait{}, ls.err
	}
	if next.Kind == ca.StepNone {
		return "", RotationWait{}, nil
	}
	step := string(next.Kind)
	wait := RotationWait{Cluster: cluster, Purpose: string(p), Step: step}
	if !next.Due {
		return "", wait, nil
	}
	var err error
	switch next.Kind {
	case ca.StepPrepare:
		// Checked again where the CA is stored, as the other steps are:
		// making its key takes a while, and meanwhile an administrator
		// may turn automatic rotation off or prepare by hand.
		err = a.prepare(ctx, System, cluster, string(p), func(tx *store.Txn) error {
			return a.stillDue(tx, cluster, p, next)
		})
	case ca.StepActivate, ca.StepRetire:
		action, plan := stepPlan(next.Kind, false)
		err = a.withFence(ctx, cluster, p, func(ctx context.Context) error {
			return a.st.Update(ctx, func(tx *store.Txn) error {
				if err := a.stillDue(tx, cluster, p, next); err != nil {
					return err
				}
				return a.applyPlan(tx, System, cluster, p, action, plan)
			})
		})
	}
	if errors.Is(err, store.ErrContended) {
		a.log.InfoContext(ctx, "automatic rotation step deferred: issuances into the cluster kept changing its holders; the next tick tries again",
			slog.String("cluster", cluster), slog.String("purpose", string(p)), slog.String("step", step))
		return "", wait, nil
	}
	if errors.Is(err, errStaleStep) {
		a.log.InfoContext(ctx, "automatic rotation step not taken: the lineage changed since the tick read it; the next tick looks again",
			slog.String("cluster", cluster), slog.String("purpose", string(p)), slog.String("step", step), slog.String("ca", next.CAID))
		return "", RotationWait{}, nil
	}
	if errors.Is(err, ca.ErrBlocked) {
		wait.Blocked = true
		if a.logWait(wait) {
			a.log.WarnContext(ctx, "automatic rotation step is waiting for holders", slog.String("cluster", cluster),
				slog.String("purpose", string(p)), slog.String("step", step), slog.String("reason", err.Error()),
				repeatsAttr)
		}
		return "", wait, nil
	}
	if err != nil {
		return "", RotationWait{}, err
	}
	a.log.InfoContext(ctx, "automatic rotation step applied", slog.String("cluster", cluster), slog.String("purpose", string(p)), slog.String("step", step))
	return step, a.waitAfterStep(ctx, cluster, p), nil
}

// errStaleStep is stillDue's refusal.
var errStaleStep = errors.New("the automatic rotation step is no longer the lineage's next one")

// stillDue checks, in the transaction that would take it, that step is
// still the next one of the lineage, on the same CA, due, with automatic
// rotation still on: a tick reads the clusters before it takes their steps,
// and meanwhile an administrator may have stepped the lineage by hand (the
// step read would then act on another CA, at once), or turned automatic
// rotation off.
func (a *Authority) stillDue(tx *store.Txn, cluster string, p ca.Purpose, step ca.Step) error {
	steps, err := a.autoRotateSteps(tx, cluster)
	if err != nil {
		return err
	}
	for _, n := range steps {
		if n.purpose != p {
			continue
		}
		if n.err != nil {
			return n.err
		}
		if n.next.Kind == step.Kind && n.next.CAID == step.CAID && n.next.Due {
			return nil
		}
	}
	return errStaleStep
}

// waitAfterStep reads what a lineage waits for right after a step was
// applied to it: the step after that one; Failed when the read fails, so
// the gauges keep what they said; none when the lineage has no next step.
func (a *Authority) waitAfterStep(ctx context.Context, cluster string, p ca.Purpose) RotationWait {
	var steps []lineageStep
	err := a.st.View(ctx, func(tx *store.Txn) error {
		var err error
		steps, err = a.autoRotateSteps(tx, cluster)
		return err
	})
	if err != nil {
		return RotationWait{Cluster: cluster, Purpose: string(p), Failed: true}
	}
	for _, n := range steps {
		if n.purpose == p && n.err == nil && n.next.Kind != ca.StepNone {
			return RotationWait{Cluster: cluster, Purpose: string(p), Step: string(n.next.Kind)}
		}
	}
	return RotationWait{}
}

// RunScheduler calls Tick every interval until ctx ends, while leader
// reports true (with several replicas, only the elected one applies steps;
// nil means this process always leads).
func (a *Authority) RunScheduler(ctx context.Context, interval time.Duration, leader func() bool) {
	step := func(time.Time) {
		if leader != nil && !leader() {
			// Not the leader: the stored state is the only hand-over needed,
			// and the leader reports the rotation gauges.
			a.obs.Rotations(nil)
		} else if _, err := a.Tick(ctx); err != nil && ctx.Err() == nil {
			a.log.ErrorContext(ctx, "rotation scheduler tick failed", slog.String("error", err.Error()))
		}
	}
	tick.Call(a.log, step, time.Now())
	tick.Every(ctx, a.log, interval, step)
}
