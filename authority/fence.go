package authority

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/flinkpki/flinkpki/store"
)

// fenceFor bounds how long a rotation step holds a cluster's issuances
// back (store.Cluster.StepFence), and how long an issuance waits for
// fences in all. On etcd a step reads a cluster of 10,000 holders in
// about 40 range requests, a few hundred milliseconds on a loaded machine.
const fenceFor = 5 * time.Second

// fencePoll is how often a held-back issuance reads whether the fence is
// lifted: the step it waits for commits in a few range requests' time.
const fencePoll = 20 * time.Millisecond

// fencedError holds an issuance back while a rotation step of its cluster
// commits. issue waits it out; it never reaches a caller.
type fencedError struct{ until time.Time }

func (e *fencedError) Error() string {
	return "the cluster's issuances are held back for a rotation step until " + e.until.UTC().Format(time.RFC3339Nano)
}

// checkFence refuses an issuance into c while a rotation step holds the
// cluster's issuances back, unless the issuance has waited for fences as
// long as it may (passed).
func checkFence(c *store.Cluster, now time.Time, passed bool) error {
	if !passed && now.Before(c.StepFence) {
		return &fencedError{until: c.StepFence}
	}
	return nil
}

// waitFence waits until cluster's fence is lifted or lapses, or deadline
// passes (then it answers false: the issuance goes on without waiting
// any longer, as after a replica that fenced and died, on a clock behind
// this one's).
func (a *Authority) waitFence(ctx context.Context, cluster string, deadline time.Time) (bool, error) {
	t := time.NewTicker(fencePoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-t.C:
		}
		if !time.Now().Before(deadline) {
			return false, nil
		}
		var lifted bool
		err := a.st.View(ctx, func(tx *store.Txn) error {
			c, err := a.getCluster(tx, cluster)
			if err != nil {
				return err
			}
			lifted = checkFence(c, a.now(), false) == nil
			return nil
		})
		if err != nil || lifted {
			// A failed read is the issuance's to meet: it reads again.
			return true, nil
		}
	}
}

// withFence runs step, one store transaction of a rotation step of
// cluster. When its commit kept losing to the cluster's issuances
// (store.ErrContended: on etcd every issuance changes the holders the step
// reads), it holds those issuances back (StepFence), runs step once more,
// and lifts the fence again unless the step's commit did. On bbolt a commit
// never loses, and the fence is never set.
func (a *Authority) withFence(ctx context.Context, cluster string, step func() error) error {
	err := step()
	if !errors.Is(err, store.ErrContended) {
		return err
	}
	until := a.now().Add(fenceFor)
	if ferr := a.setFence(ctx, cluster, until); ferr != nil {
		a.log.InfoContext(ctx, "could not hold the cluster's issuances back for a rotation step", slog.String("cluster", cluster), slog.String("reason", ferr.Error()))
		return err
	}
	a.log.InfoContext(ctx, "a rotation step holds the cluster's issuances back while it commits: they kept changing its holders", slog.String("cluster", cluster), slog.Duration("at_most", fenceFor))
	err = step()
	if err != nil {
		a.liftFence(ctx, cluster, until)
	}
	return err
}

// setFence holds cluster's issuances back until until.
func (a *Authority) setFence(ctx context.Context, cluster string, until time.Time) error {
	return a.st.Update(ctx, func(tx *store.Txn) error {
		c, err := a.getCluster(tx, cluster)
		if err != nil {
			return err
		}
		c.StepFence = until
		return tx.PutCluster(c)
	})
}

// liftFence lifts the fence setFence set until until, unless the cluster
// has another by now, even when ctx was cancelled meanwhile.
func (a *Authority) liftFence(ctx context.Context, cluster string, until time.Time) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fenceFor)
	defer cancel()
	err := a.st.Update(ctx, func(tx *store.Txn) error {
		c, err := a.getCluster(tx, cluster)
		if err != nil || !c.StepFence.Equal(until) {
			return err
		}
		c.StepFence = time.Time{}
		return tx.PutCluster(c)
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		a.log.WarnContext(ctx, "could not lift a rotation step's hold on the cluster's issuances; it lapses by itself", slog.String("cluster", cluster), slog.Time("until", until), slog.String("reason", err.Error()))
	}
}
