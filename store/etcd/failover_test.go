package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/internal/etcdtest"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/etcd"
)

// TestUpdatesSurviveTheLossOfTheEtcdLeader kills the raft leader of a
// private cluster in the middle of a stream of writes. Writes in the gap
// either succeed or fail with store.ErrUnavailable, and the same Backend
// succeeds again once the remaining members elect a new leader.
func TestUpdatesSurviveTheLossOfTheEtcdLeader(t *testing.T) {
	c := etcdtest.New(t, 3)
	ctx := context.Background()
	b := newBackend(t, c.Endpoints(), "/failover/")
	put := func(i int) error {
		return b.Update(ctx, func(tx store.Tx) error {
			return tx.Put([]byte("audit"), fmt.Appendf(nil, "%04d", i), []byte("v"))
		})
	}
	for i := range 10 {
		if err := put(i); err != nil {
			t.Fatalf("write %d before the failover: %v", i, err)
		}
	}
	old, err := c.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Kill(old)
	killed := time.Now()
	unavailable := 0
	deadline := time.Now().Add(20 * time.Second)
	const writes = 40
	for i := 10; i < writes; i++ {
		for {
			err := put(i)
			if err == nil {
				break
			}
			if !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("write %d after killing the leader failed with %v, want success or store.ErrUnavailable", i, err)
			}
			unavailable++
			if time.Now().After(deadline) {
				t.Fatalf("write %d still fails %s after killing the leader: %v", i, time.Since(killed), err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("%d writes failed with store.ErrUnavailable during the failover; writes resumed within %s", unavailable, time.Since(killed).Round(time.Millisecond))
	now, err := c.Leader(ctx)
	if err != nil || now == old {
		t.Fatalf("leader after the failover = m%d (%v), the killed one was m%d", now, err, old)
	}
	if err := b.Healthy(ctx); err != nil {
		t.Fatalf("Healthy after the failover: %v", err)
	}
	n := 0
	err = b.View(ctx, func(tx store.Tx) error {
		return tx.Scan([]byte("audit"), nil, nil, func(_, _ []byte) (bool, error) { n++; return true, nil })
	})
	if err != nil || n != writes {
		t.Fatalf("after the failover the store holds %d keys (%v), want %d", n, err, writes)
	}
}

// TestHealthyFailsWithoutQuorum leaves one member of three: the cluster
// has no leader, so Healthy and writes report store.ErrUnavailable.
func TestHealthyFailsWithoutQuorum(t *testing.T) {
	c := etcdtest.New(t, 3)
	ctx := context.Background()
	b, err := etcd.Open(ctx, etcd.Config{Endpoints: c.Endpoints(), Prefix: "/quorum/", OpTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Healthy(ctx); err != nil {
		t.Fatalf("Healthy with all members up: %v", err)
	}
	c.Kill(0)
	c.Kill(1)
	if err := b.Healthy(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Healthy without quorum = %v, want store.ErrUnavailable", err)
	}
	err = b.Update(ctx, func(tx store.Tx) error { return tx.Put([]byte("meta"), []byte("x"), []byte("1")) })
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Update without quorum = %v, want store.ErrUnavailable", err)
	}
}
