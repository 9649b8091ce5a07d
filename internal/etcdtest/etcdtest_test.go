package etcdtest

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestAKilledLeaderIsReplacedAndARestartedMemberRejoins(t *testing.T) {
	c := New(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	old, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Kill(old)
	if c.Members[old].Running() {
		t.Fatalf("member %d still runs after Kill", old)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	now, err := c.Leader(ctx)
	if err != nil || now == old {
		t.Fatalf("leader after killing m%d = m%d (%v), want another member", old, now, err)
	}
	if err := c.Restart(old); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(old); err == nil {
		t.Fatal("Restart of a running member succeeded")
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatalf("the restarted member did not rejoin: %v", err)
	}
}

func TestLeaderFailsWhenQuorumIsLost(t *testing.T) {
	c := New(t, 3)
	c.Kill(0)
	c.Kill(1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The survivor may remember the old leader for an election timeout.
	for {
		_, err := c.Leader(ctx)
		if errors.Is(err, ErrNoLeader) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("Leader without quorum = %v, want ErrNoLeader", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
