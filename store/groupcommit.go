package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"time"
)

// GroupCommit is the queue of a group commit without a fixed delay: a call
// that finds no commit running starts one at once, and calls that arrive
// while a commit is in flight share the next one, up to Max per commit.
// Each backend brings its own Commit, which must answer every call it is
// given exactly once through Call.Done.
type GroupCommit struct {
	Max    int
	Commit func(calls []*Call)
	// OutcomeWait bounds how long Do waits for a commit under way once its
	// caller has gone; zero means DefaultOutcomeWait.
	OutcomeWait time.Duration

	mu      sync.Mutex
	pending []*Call
	running bool
}

// Call is one caller's transaction function in a group commit. Fn never
// panics: Do turns a panic of the caller's function into an error of that
// call alone (ErrPanicked), so one bad call cannot end the commit loop and
// with it the process.
type Call struct {
	Ctx  context.Context
	Fn   func(Tx) error
	Done chan error
}

// Do queues fn and waits for its group's outcome. A call whose ctx ends
// while it waits in the queue is dropped unrun: its caller has gone (a
// client's deadline passed while commits queued), and an issuance it never
// receives must not spend a token use. A call whose ctx ends once its group
// has started gets the group's outcome all the same, after the commit: a
// caller told that its call failed must not find it committed. Its
// response may still reach nobody, exactly as when it is lost on the way;
// the transaction stays atomic. A commit that has not ended OutcomeWait
// after the caller went (a volume that hangs an fsync) answers
// ErrUnavailable, its outcome unknown: the caller can look for what the
// call would have written.
func (g *GroupCommit) Do(ctx context.Context, fn func(Tx) error) error {
	c := &Call{Ctx: ctx, Fn: func(tx Tx) error { return safeRun(fn, tx) }, Done: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, c)
	if !g.running {
		g.running = true
		go g.loop()
	}
	g.mu.Unlock()
	select {
	case err := <-c.Done:
		return err
	case <-ctx.Done():
	}
	g.mu.Lock()
	if i := slices.Index(g.pending, c); i >= 0 {
		g.pending = slices.Delete(g.pending, i, i+1)
		g.mu.Unlock()
		return ctx.Err()
	}
	g.mu.Unlock()
	most := cmp.Or(g.OutcomeWait, DefaultOutcomeWait)
	wait := time.NewTimer(most)
	defer wait.Stop()
	select {
	case err := <-c.Done:
		return err
	case <-wait.C:
		return fmt.Errorf("%w: the commit under way when the request ended did not end within %s; whether it was made is unknown", ErrUnavailable, most)
	}
}

// DefaultOutcomeWait is GroupCommit.OutcomeWait's default.
const DefaultOutcomeWait = 10 * time.Second

func (g *GroupCommit) loop() {
	for {
		g.mu.Lock()
		n := min(len(g.pending), max(g.Max, 1))
		calls := g.pending[:n:n]
		g.pending = g.pending[n:]
		if n == 0 {
			g.pending = nil
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		// Filtered in place: pending no longer refers to these n slots.
		live := calls[:0]
		for _, c := range calls {
			if err := c.Ctx.Err(); err != nil {
				c.Done <- err
				continue
			}
			live = append(live, c)
		}
		if len(live) > 0 {
			g.Commit(live)
		}
	}
}

// ErrPanicked is the error of a group-commit call whose function panicked.
var ErrPanicked = errors.New("panic in transaction")

// safeRun runs fn and turns a panic in it into an error wrapping
// ErrPanicked, with the panic's value and stack for the server log.
func safeRun(fn func(Tx) error, tx Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v\n%s", ErrPanicked, p, debug.Stack())
		}
	}()
	return fn(tx)
}
