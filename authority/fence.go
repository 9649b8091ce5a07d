package authority

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/store"
)

// fenceFor bounds how long a rotation step holds a lineage's issuances
// back (store.Cluster.StepFence), and how long an issuance waits for
// fences in all. On etcd a step reads a lineage of 10,000 holders in about
// 40 range requests, a few hundred milliseconds on a loaded machine.
const fenceFor = 5 * time.Second

// fenceSkew is how far ahead of this replica's clock a fence may end and
// still be waited for: one set on a clock further ahead (and left by a
// replica that stopped before it lifted it) is ignored, instead of
// holding every issuance of the lineage back for as long as the clocks
// differ.
const fenceSkew = fenceFor

// stepAttempts is how often a rotation step's transaction runs before its
// lineage's issuances are held back for it: each run reads every holder of
// the lineage, and under steady enrollment every run loses alike.
const stepAttempts = 3

// fencePoll is how often a replica reads whether a fence its issuances
// wait for is lifted: the step commits in a few range requests' time.
const fencePoll = 20 * time.Millisecond

// fencedError holds an issuance back while a rotation step of its lineage
// commits. issue waits it out; it never reaches a caller.
type fencedError struct{ until time.Time }

func (e *fencedError) Error() string {
	return "the lineage's issuances are held back for a rotation step until " + e.until.UTC().Format(time.RFC3339Nano)
}

// checkFence refuses an issuance of purpose p into c while a rotation step
// of that lineage holds its issuances back, unless the issuance has waited
// for fences as long as it may (passed). A fence is a mark, not a lock:
// the step's transaction is what keeps the lineage consistent, and the
// fence only keeps issuances from changing what the step reads.
func checkFence(c *store.Cluster, p ca.Purpose, now time.Time, passed bool) error {
	if passed || c.StepFence.IsZero() || c.StepFencePurpose != string(p) {
		return nil
	}
	if left := c.StepFence.Sub(now); left <= 0 || left > fenceFor+fenceSkew {
		return nil // lapsed, or set on a clock far ahead of this one
	}
	return &fencedError{until: c.StepFence}
}

// waitFence waits until the fence of cluster's lineage p is to be read
// again: it was lifted, it lapsed, or the replica's poll gave up; it
// answers false when deadline passed first (the issuance then goes on
// without waiting any longer). Every issuance of the replica that waits
// for the lineage shares one poll (fenceWatch).
func (a *Authority) waitFence(ctx context.Context, cluster string, p ca.Purpose, deadline time.Time) (bool, error) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-t.C:
		return false, nil
	case <-a.fenceWatch(cluster, p):
		return true, nil
	}
}

// fenceWatch returns a channel that is closed when the fence of cluster's
// lineage p is lifted or lapses, or when the poll has run for as long as
// a fence may last. One poll per lineage runs at a time, however many
// issuances wait for it.
func (a *Authority) fenceWatch(cluster string, p ca.Purpose) <-chan struct{} {
	key := cluster + "/" + string(p)
	a.fenceMu.Lock()
	defer a.fenceMu.Unlock()
	if ch, ok := a.fences[key]; ok {
		return ch
	}
	ch := make(chan struct{})
	a.fences[key] = ch
	go a.pollFence(key, cluster, p, ch)
	return ch
}

func (a *Authority) pollFence(key, cluster string, p ca.Purpose, ch chan struct{}) {
	defer func() {
		a.fenceMu.Lock()
		delete(a.fences, key)
		a.fenceMu.Unlock()
		close(ch)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), fenceFor+fenceSkew)
	defer cancel()
	t := time.NewTicker(fencePoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		held := false
		err := a.st.View(ctx, func(tx *store.Txn) error {
			c, err := a.getCluster(tx, cluster)
			if err != nil {
				return err
			}
			held = checkFence(c, p, a.now(), false) != nil
			return nil
		})
		if err != nil || !held {
			// A failed read is the issuances' to meet: they read again.
			return
		}
	}
}

// withFence runs step, one store transaction of a rotation step of
// cluster's lineage p, with ctx. When its commit lost stepAttempts times to
// the lineage's issuances (store.ErrContended: on etcd every issuance
// changes the holders the step reads), it holds those issuances back
// (StepFence), runs step once more, with the store's whole budget of
// attempts, and lifts the fence again unless the step's commit did. On
// bbolt a commit never loses, and the fence is never set.
//
// Issuances that read the cluster record before the fence fail their
// group commit's comparison on it: that first wave's groups commit call by
// call once, as any group with a stale read does.
func (a *Authority) withFence(ctx context.Context, cluster string, p ca.Purpose, step func(context.Context) error) error {
	err := step(store.WithAttempts(ctx, stepAttempts))
	if !errors.Is(err, store.ErrContended) {
		return err
	}
	until := a.now().Add(fenceFor)
	if ferr := a.setFence(ctx, cluster, p, until); ferr != nil {
		// It may have been written all the same (a commit etcd took but
		// did not confirm).
		a.liftFence(ctx, cluster, until)
		a.log.InfoContext(ctx, "could not hold the lineage's issuances back for a rotation step", slog.String("cluster", cluster), slog.String("purpose", string(p)), slog.String("reason", ferr.Error()))
		return err
	}
	a.log.InfoContext(ctx, "a rotation step holds the lineage's issuances back while it commits: they kept changing its holders", slog.String("cluster", cluster), slog.String("purpose", string(p)), slog.Duration("at_most", fenceFor))
	err = step(ctx)
	if err != nil {
		a.liftFence(ctx, cluster, until)
	}
	return err
}

// setFence holds the issuances of cluster's lineage p back until until.
func (a *Authority) setFence(ctx context.Context, cluster string, p ca.Purpose, until time.Time) error {
	return a.st.Update(ctx, func(tx *store.Txn) error {
		c, err := a.getCluster(tx, cluster)
		if err != nil {
			return err
		}
		c.StepFence, c.StepFencePurpose = until, string(p)
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
		c.StepFence, c.StepFencePurpose = time.Time{}, ""
		return tx.PutCluster(c)
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		a.log.WarnContext(ctx, "could not lift a rotation step's hold on the lineage's issuances; it lapses by itself", slog.String("cluster", cluster), slog.Time("until", until), slog.String("reason", err.Error()))
	}
}
