package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/flinkpki/flinkpki/store"
)

// defaultMaxBatch bounds the calls that share one etcd transaction: every
// call adds a few compares and writes, and etcd refuses a transaction with
// more than --max-txn-ops (128 by default) of either.
const defaultMaxBatch = 20

// batcher is a group commit over etcd, like the bbolt backend's: callers
// that arrive while a transaction is in flight share the next one. Without
// it, every concurrent issuance would race for the audit head and most
// would retry; with it, one replica commits one transaction at a time and
// conflicts only with other replicas.
type batcher struct {
	b *Backend

	mu      sync.Mutex
	pending []*batchCall
	running bool
}

type batchCall struct {
	ctx  context.Context
	fn   func(store.Tx) error
	done chan error
}

// Batch implements store.Backend with group commit. fn may run more than
// once, so it must not change state outside the transaction.
func (b *Backend) Batch(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &batchCall{ctx: ctx, fn: fn, done: make(chan error, 1)}
	bt := &b.batch
	bt.mu.Lock()
	bt.pending = append(bt.pending, c)
	if !bt.running {
		bt.running = true
		go bt.loop()
	}
	bt.mu.Unlock()
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (bt *batcher) loop() {
	for {
		bt.mu.Lock()
		n := min(len(bt.pending), bt.b.cfg.MaxBatch)
		calls := bt.pending[:n:n]
		bt.pending = bt.pending[n:]
		if n == 0 {
			bt.pending = nil
			bt.running = false
			bt.mu.Unlock()
			return
		}
		bt.mu.Unlock()
		bt.commit(calls)
	}
}

// commit runs calls in one transaction, retrying it on conflict. When a
// call fails, each call runs on its own (Update), so one caller's refusal
// never undoes another's change.
func (bt *batcher) commit(calls []*batchCall) {
	b := bt.b
	for attempt := 0; ; attempt++ {
		t := b.newTxn(context.Background(), false)
		failed := false
		for _, c := range calls {
			err := c.fn(t)
			if t.err != nil {
				err = t.err
			}
			if err != nil {
				failed = true
				break
			}
		}
		if failed {
			for _, c := range calls {
				c.done <- b.Update(c.ctx, c.fn)
			}
			return
		}
		err := t.commit()
		if !errors.Is(err, errConflict) {
			for _, c := range calls {
				c.done <- err
			}
			return
		}
		// A group stands for many callers, and its conflicts come from other
		// replicas' groups, which back off too: it gets more tries than one
		// Update before its callers see an error.
		if attempt+1 >= 3*b.cfg.MaxRetries {
			err := fmt.Errorf("%w after %d attempts: %w: retry the request", ErrTooManyConflicts, attempt+1, store.ErrUnavailable)
			for _, c := range calls {
				c.done <- err
			}
			return
		}
		if err := backoff(context.Background(), attempt); err != nil {
			for _, c := range calls {
				c.done <- err
			}
			return
		}
	}
}
