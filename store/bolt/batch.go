package bolt

import (
	"context"
	"sync"

	bbolt "go.etcd.io/bbolt"

	"github.com/flinkpki/flinkpki/store"
)

// committer is a group commit without a fixed delay: a caller that finds no
// commit running commits at once, and callers that arrive while a commit is
// in flight share the next one. bbolt's own Batch waits MaxBatchDelay
// (10 ms) before every batch, which is the whole latency of a lone request.
type committer struct {
	db      *bbolt.DB
	maxSize int

	mu      sync.Mutex
	pending []*call
	running bool
}

type call struct {
	fn   func(store.Tx) error
	done chan error
}

func (c *committer) batch(ctx context.Context, fn func(store.Tx) error) error {
	cl := &call{fn: fn, done: make(chan error, 1)}
	c.mu.Lock()
	c.pending = append(c.pending, cl)
	if !c.running {
		c.running = true
		go c.loop()
	}
	c.mu.Unlock()
	select {
	case err := <-cl.done:
		return err
	case <-ctx.Done():
		// The call may still commit; its outcome is unknown to the caller,
		// exactly as with a lost response. The transaction itself stays
		// atomic.
		return ctx.Err()
	}
}

func (c *committer) loop() {
	for {
		c.mu.Lock()
		n := min(len(c.pending), c.maxSize)
		calls := c.pending[:n:n]
		c.pending = c.pending[n:]
		if n == 0 {
			c.pending = nil
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.commit(calls)
	}
}

// commit runs every call in one transaction. When one fails, the
// transaction is rolled back and each call runs in its own transaction, so
// one caller's refusal never undoes another's change.
func (c *committer) commit(calls []*call) {
	failed := -1
	err := c.db.Update(func(tx *bbolt.Tx) error {
		for i, cl := range calls {
			if err := safeRun(cl.fn, boltTx{tx}); err != nil {
				failed = i
				return err
			}
		}
		return nil
	})
	if err == nil {
		for _, cl := range calls {
			cl.done <- nil
		}
		return
	}
	if failed < 0 { // the commit itself failed
		for _, cl := range calls {
			cl.done <- err
		}
		return
	}
	for _, cl := range calls {
		cl.done <- c.db.Update(func(tx *bbolt.Tx) error { return safeRun(cl.fn, boltTx{tx}) })
	}
}

// safeRun turns a panic in fn into an error, so one bad call cannot take
// the shared commit loop down with it.
func safeRun(fn func(store.Tx) error, tx store.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicError{r}
		}
	}()
	return fn(tx)
}

type panicError struct{ v any }

func (p panicError) Error() string { return "panic in transaction: " + stringify(p.v) }

func stringify(v any) string {
	if e, ok := v.(error); ok {
		return e.Error()
	}
	if s, ok := v.(string); ok {
		return s
	}
	return "unknown value"
}
