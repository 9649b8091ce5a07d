package etcd

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/flinkpki/flinkpki/store"
)

// defaultMaxBatch bounds the calls that share one etcd transaction: every
// call adds a few compares and writes, and etcd refuses a transaction with
// more than --max-txn-ops (128 by default) of either.
const defaultMaxBatch = 20

// Batch implements store.Backend with a group commit (store.GroupCommit)
// over etcd, like the bbolt backend's: callers that arrive while a
// transaction is in flight share the next one. Without it, every concurrent
// issuance would race for the audit head and most would retry; with it, one
// replica commits one transaction at a time and conflicts only with other
// replicas. fn may run more than once, so it must not change state outside
// the transaction.
func (b *Backend) Batch(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.batch.Do(ctx, fn)
}

// commit runs calls in one transaction, retrying it on conflict. When a
// call fails, each call runs on its own (Update), so one caller's refusal
// never undoes another's change.
func (b *Backend) commitGroup(calls []*store.Call) {
	var stale map[string]readKey // expected keys the last attempt found changed
	for attempt := 0; ; attempt++ {
		t := b.newTxn(context.Background(), false)
		t.optimistic = true
		maps.Copy(t.reads, stale)
		failed := false
		for _, c := range calls {
			err := c.Fn(t)
			if t.err != nil {
				err = t.err
			}
			if err != nil {
				failed = true
				break
			}
		}
		if errors.Is(t.err, store.ErrUnavailable) {
			// etcd did not answer the group's reads: it would not answer
			// each call's own either, one after another behind this one.
			for _, c := range calls {
				c.Done <- t.err
			}
			return
		}
		if failed {
			// Each call on its own, to its end even if its caller has gone
			// (each request stays bounded by its own timeout): the group
			// commit answers it with the outcome, and a write etcd applied
			// must not be reported as failed.
			for _, c := range calls {
				c.Done <- b.Update(context.WithoutCancel(c.Ctx), c.Fn)
			}
			return
		}
		err := t.commit()
		stale = t.stale
		if !errors.Is(err, errConflict) {
			for _, c := range calls {
				c.Done <- err
			}
			return
		}
		// A group stands for many callers, and its conflicts come from other
		// replicas' groups, which back off too: it gets more tries than one
		// Update before its callers see an error.
		if attempt+1 >= 3*b.cfg.MaxRetries {
			err := fmt.Errorf("%w after %d attempts: %w: retry the request", ErrTooManyConflicts, attempt+1, store.ErrUnavailable)
			for _, c := range calls {
				c.Done <- err
			}
			return
		}
		if err := backoff(context.Background(), attempt); err != nil {
			for _, c := range calls {
				c.Done <- err
			}
			return
		}
	}
}
