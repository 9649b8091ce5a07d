package etcd_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/store"
)

// TestTwoBusyReplicasBothMakeProgress runs the shape of an enrollment burst
// on two replicas at once: every group commit reads and rewrites one shared
// record (like a token's remaining uses and the audit head). Under
// optimistic concurrency alone, the replica that commits back to back
// lands a commit inside every read-to-commit window of the other, which
// then waits until the first one's load ends. Neither replica may wait
// that long, and no increment may be lost.
func TestTwoBusyReplicasBothMakeProgress(t *testing.T) {
	const (
		run     = 4 * time.Second
		workers = 16
	)
	prefix := testPrefix(t)
	replicas := []store.Backend{newBackend(t, shared.Endpoints(), prefix), newBackend(t, shared.Endpoints(), prefix)}
	meta, audit := []byte("meta"), []byte("audit")
	incr := func(tx store.Tx) error {
		if tx.Get(meta, []byte("cluster")) == nil { // read by every call, written by none
			return fmt.Errorf("the cluster record is missing")
		}
		n := 0
		if v := tx.Get(meta, []byte("counter")); v != nil {
			var err error
			if n, err = strconv.Atoi(string(v)); err != nil {
				return err
			}
		}
		if err := tx.Put(audit, fmt.Appendf(nil, "%020d", n+1), []byte("entry")); err != nil {
			return err
		}
		return tx.Put(meta, []byte("counter"), []byte(strconv.Itoa(n+1)))
	}

	if err := replicas[0].Update(context.Background(), func(tx store.Tx) error {
		return tx.Put(meta, []byte("cluster"), []byte("orders"))
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*run)
	defer cancel()
	var (
		wg        sync.WaitGroup
		committed atomic.Int64
		mu        sync.Mutex
		worst     = make([]time.Duration, len(replicas))
		calls     = make([]int, len(replicas))
		firstErr  error
	)
	deadline := time.Now().Add(run)
	for r, b := range replicas {
		for range workers {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					t0 := time.Now()
					err := b.Batch(ctx, incr)
					d := time.Since(t0)
					mu.Lock()
					if err != nil && firstErr == nil {
						firstErr = fmt.Errorf("replica %d: %w", r+1, err)
					}
					if err == nil {
						committed.Add(1)
						calls[r]++
					}
					worst[r] = max(worst[r], d)
					mu.Unlock()
					if err != nil {
						return
					}
				}
			})
		}
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	t.Logf("commits: replica 1 %d, replica 2 %d; longest wait: %v, %v", calls[0], calls[1], worst[0], worst[1])
	for r, w := range worst {
		if w > run/2 {
			t.Errorf("replica %d waited %v for one commit while the other kept committing (run %v)", r+1, w, run)
		}
	}
	var final int
	if err := replicas[0].View(context.Background(), func(tx store.Tx) error {
		var err error
		final, err = strconv.Atoi(string(tx.Get(meta, []byte("counter"))))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if int64(final) != committed.Load() {
		t.Fatalf("counter is %d after %d committed increments", final, committed.Load())
	}
}
