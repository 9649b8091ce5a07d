package authority

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/store"
)

// Tick applies every automatic rotation step that is due, for every cluster
// with automatic rotation on. It never breaks the safety rules: a blocked
// step waits, visibly, for the next tick. It returns the steps it applied.
func (a *Authority) Tick(ctx context.Context) ([]string, error) {
	var applied []string
	after := ""
	for {
		var page []*store.Cluster
		var next string
		err := a.st.View(ctx, func(tx *store.Txn) error {
			var err error
			page, next, err = tx.ListClusters(after, 500)
			return err
		})
		if err != nil {
			return applied, err
		}
		for _, c := range page {
			if !c.AutoRotate {
				continue
			}
			for _, p := range []ca.Purpose{ca.PurposeInternal, ca.PurposeREST} {
				step, err := a.tickLineage(ctx, c.Name, p)
				if err != nil {
					a.log.ErrorContext(ctx, "automatic rotation failed", slog.String("cluster", c.Name), slog.String("purpose", string(p)), slog.String("error", err.Error()))
					continue
				}
				if step != "" {
					applied = append(applied, c.Name+"/"+string(p)+":"+step)
				}
			}
		}
		if next == "" {
			return applied, nil
		}
		after = next
	}
}

func (a *Authority) tickLineage(ctx context.Context, cluster string, p ca.Purpose) (string, error) {
	next, err := a.nextStep(ctx, cluster, p)
	if err != nil {
		return "", err
	}
	if next.Kind == ca.StepNone {
		return "", nil
	}
	step := string(next.Kind)
	if !next.Due {
		a.obs.RotationWaiting(cluster, string(p), step, false)
		return "", nil
	}
	switch next.Kind {
	case ca.StepPrepare:
		err = a.prepare(ctx, System, cluster, string(p))
	case ca.StepActivate:
		err = a.st.Update(ctx, func(tx *store.Txn) error {
			return a.applyPlan(tx, System, cluster, p, "ca.activate", func(l ca.Lineage, hs []ca.HolderView, now time.Time) (ca.Plan, error) {
				return ca.PlanActivate(l, hs, now, false)
			})
		})
	case ca.StepRetire:
		err = a.st.Update(ctx, func(tx *store.Txn) error {
			return a.applyPlan(tx, System, cluster, p, "ca.retire", func(l ca.Lineage, hs []ca.HolderView, now time.Time) (ca.Plan, error) {
				return ca.PlanRetire(l, hs, now, false)
			})
		})
	}
	if errors.Is(err, ca.ErrBlocked) {
		a.obs.RotationWaiting(cluster, string(p), step, true)
		a.log.WarnContext(ctx, "automatic rotation step is waiting for holders", slog.String("cluster", cluster),
			slog.String("purpose", string(p)), slog.String("step", step), slog.String("reason", err.Error()))
		return "", nil
	}
	if err != nil {
		return "", err
	}
	a.obs.RotationWaiting(cluster, string(p), step, false)
	a.log.InfoContext(ctx, "automatic rotation step applied", slog.String("cluster", cluster), slog.String("purpose", string(p)), slog.String("step", step))
	return step, nil
}

// nextStep is a lineage's next rotation step. Whether a step is due depends
// on the CAs alone, so the holders are not read: a tick of a store with a
// million holders reads clusters and CAs, and only a due step reads the
// holders of its lineage, when applyPlan checks what it would break.
func (a *Authority) nextStep(ctx context.Context, cluster string, p ca.Purpose) (ca.Step, error) {
	var next ca.Step
	err := a.st.View(ctx, func(tx *store.Txn) error {
		v, err := a.clusterView(tx, cluster)
		if err != nil {
			return err
		}
		L := v.Cluster.LeafValidity
		next = ca.NextStep(v.Lineage(p), L, ca.DefaultMargin(L), a.now())
		return nil
	})
	return next, err
}

// RunScheduler calls Tick every interval until ctx ends, while leader
// reports true (with several replicas, only the elected one applies steps;
// nil means this process always leads).
func (a *Authority) RunScheduler(ctx context.Context, interval time.Duration, leader func() bool) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if leader != nil && !leader() {
			// not the leader: the stored state is the only hand-over needed
		} else if _, err := a.Tick(ctx); err != nil && ctx.Err() == nil {
			a.log.ErrorContext(ctx, "rotation scheduler tick failed", slog.String("error", err.Error()))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
