package etcd_test

import (
	"context"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/store/etcd"
)

// waitOneLeader waits until exactly one candidate claims the leadership
// (candidate want, unless want is -1) and returns it,
// failing when several claim it for longer than a watch event takes.
func waitOneLeader(t testing.TB, want int, cands ...*etcd.Leader) int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var overlap time.Time
	for {
		who := -1
		n := 0
		for i, c := range cands {
			if c != nil && c.IsLeader() {
				who, n = i, n+1
			}
		}
		if n > 1 {
			// The old leader learns of its lost key by a watch event a
			// moment after the new one; more than that is a split brain.
			if overlap.IsZero() {
				overlap = time.Now()
			} else if time.Since(overlap) > 500*time.Millisecond {
				t.Fatalf("%d candidates claim the leadership for over 500ms", n)
			}
		} else {
			overlap = time.Time{}
		}
		if n == 1 && (want < 0 || who == want) {
			return who
		}
		if time.Now().After(deadline) {
			t.Fatalf("candidate %d did not become the only leader within 15s", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestElectionHasExactlyOneLeaderAndHandsOver(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	var cands [2]*etcd.Leader
	for i := range cands {
		l, err := newBackend(t, shared.Endpoints(), prefix).Elect(ctx, "rotation")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		cands[i] = l
	}
	first := waitOneLeader(t, -1, cands[:]...)
	// The leadership stays put while nothing happens.
	for range 10 {
		time.Sleep(20 * time.Millisecond)
		if got := waitOneLeader(t, -1, cands[:]...); got != first {
			t.Fatalf("leadership moved from %d to %d without cause", first, got)
		}
	}

	// Losing the session (an outage past the TTL) hands over, and the old
	// leader campaigns again as a follower.
	if err := cands[first].LoseSession(ctx); err != nil {
		t.Fatal(err)
	}
	second := 1 - first
	waitOneLeader(t, second, cands[:]...)

	// Closing the leader hands over at once, to the candidate that rejoined.
	start := time.Now()
	cands[second].Close()
	others := cands
	others[second] = nil
	waitOneLeader(t, first, others[:]...)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("handover after Close took %s, longer than the lease TTL suggests it should", took)
	}
}
