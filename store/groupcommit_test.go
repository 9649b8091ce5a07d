package store

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestAGroupCommitDropsCallsWhoseCallerHasGone: while one commit runs,
// calls queue for the next. One whose caller gave up meanwhile (its
// deadline passed) is answered with its context's error and never run, so
// an issuance nobody receives spends nothing; a live call of the same
// group runs and commits.
func TestAGroupCommitDropsCallsWhoseCallerHasGone(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{})
	var committed [][]*Call
	first := true
	g := &GroupCommit{Max: 10, Commit: func(calls []*Call) {
		if first {
			first = false
			close(started)
			<-release // hold the first commit while the others queue
		}
		committed = append(committed, calls)
		for _, c := range calls {
			c.Done <- c.Fn(nil)
		}
	}}
	var ran atomic.Int32
	fn := func(Tx) error { ran.Add(1); return nil }
	firstDone := make(chan error, 1)
	go func() { firstDone <- g.Do(context.Background(), fn) }()
	<-started

	gone, cancel := context.WithCancel(context.Background())
	goneDone := make(chan error, 1)
	go func() {
		goneDone <- g.Do(gone, func(Tx) error { t.Error("a call whose caller had gone was run"); return nil })
	}()
	liveDone := make(chan error, 1)
	go func() { liveDone <- g.Do(context.Background(), fn) }()
	for len(g.snapshot()) < 2 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-goneDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("the abandoned call returned %v", err)
	}
	close(release)
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	if err := <-liveDone; err != nil {
		t.Fatal(err)
	}
	if ran.Load() != 2 || len(committed) != 2 || len(committed[1]) != 1 {
		t.Fatalf("ran %d calls in groups of %v, want the first alone and the live one without the abandoned one", ran.Load(), groupSizes(committed))
	}
}

// TestAGroupCommitAnswersACallWhoseCallerWentMidCommit: a caller that
// gives up while its call is being committed is told the commit's outcome,
// not that it gave up, so that an issuance that spent a token use and
// recorded a holder is never reported (and audited) as failed.
func TestAGroupCommitAnswersACallWhoseCallerWentMidCommit(t *testing.T) {
	inCommit, release := make(chan struct{}), make(chan struct{})
	var ran atomic.Int32
	g := &GroupCommit{Max: 10, Commit: func(calls []*Call) {
		close(inCommit)
		<-release
		for _, c := range calls {
			c.Done <- c.Fn(nil)
		}
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Do(ctx, func(Tx) error { ran.Add(1); return nil }) }()
	<-inCommit
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Do returned %v while its call was still being committed", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("a call committed after its caller went returned %v, want the commit's outcome (nil)", err)
	}
	if ran.Load() != 1 {
		t.Fatalf("the call ran %d times, want once", ran.Load())
	}
}

// TestAGroupCommitThatHangsAnswersItsGoneCallerUnavailable: a commit that
// does not end (a volume that hangs an fsync) holds a caller that has gone
// for OutcomeWait at most, then answers ErrUnavailable, its outcome
// unknown, instead of holding it until the volume recovers.
func TestAGroupCommitThatHangsAnswersItsGoneCallerUnavailable(t *testing.T) {
	inCommit, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	g := &GroupCommit{Max: 10, OutcomeWait: 50 * time.Millisecond, Commit: func(calls []*Call) {
		close(inCommit)
		<-release
		for _, c := range calls {
			c.Done <- nil
		}
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Do(ctx, func(Tx) error { return nil }) }()
	<-inCommit
	cancel()
	if err := <-done; !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "whether it was made is unknown") {
		t.Fatalf("a gone caller of a hung commit got %v, want ErrUnavailable with its outcome unknown", err)
	}
}

// snapshot returns the calls waiting for the next commit.
func (g *GroupCommit) snapshot() []*Call {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*Call(nil), g.pending...)
}

func groupSizes(groups [][]*Call) []int {
	var out []int
	for _, g := range groups {
		out = append(out, len(g))
	}
	return out
}
