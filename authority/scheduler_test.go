package authority_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/bolt"
)

// holderScans counts the scans of the holders bucket on a real bbolt
// backend it passes everything to.
type holderScans struct {
	store.Backend
	n *atomic.Int64
}

func (b holderScans) View(ctx context.Context, fn func(store.Tx) error) error {
	return b.Backend.View(ctx, func(tx store.Tx) error { return fn(countingTx{tx, b.n}) })
}

func (b holderScans) Update(ctx context.Context, fn func(store.Tx) error) error {
	return b.Backend.Update(ctx, func(tx store.Tx) error { return fn(countingTx{tx, b.n}) })
}

func (b holderScans) Batch(ctx context.Context, fn func(store.Tx) error) error {
	return b.Backend.Batch(ctx, func(tx store.Tx) error { return fn(countingTx{tx, b.n}) })
}

type countingTx struct {
	store.Tx
	n *atomic.Int64
}

func (t countingTx) Scan(bucket, prefix, start []byte, fn func(k, v []byte) (bool, error)) error {
	if bytes.Equal(bucket, []byte("holders")) {
		t.n.Add(1)
	}
	return t.Tx.Scan(bucket, prefix, start, fn)
}

// TestATickReadsHoldersOnlyForADueStep: whether a rotation step is due
// depends on the CAs alone, so the scheduler's tick, every minute for every
// cluster, does not read a cluster's holders (a million of them, at scale)
// unless a step is due and must be checked against them.
func TestATickReadsHoldersOnlyForADueStep(t *testing.T) {
	var scans atomic.Int64
	path := filepath.Join(t.TempDir(), "flinkpki.db")
	e := authoritytest.New(t, authoritytest.WithBackend(func(context.Context) (store.Backend, error) {
		b, err := bolt.Open(path, bolt.Options{})
		return holderScans{b, &scans}, err
	}))
	const leaf = 30 * 24 * time.Hour
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders", CAValidity: 400 * 24 * time.Hour, LeafValidity: leaf})
	for i := range 20 {
		e.Enroll("orders", "taskmanager", fmt.Sprintf("tm-%d", i))
	}

	scans.Store(0)
	applied, err := e.Authority.Tick(e.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 0 {
		t.Fatalf("a new cluster's tick applied %v", applied)
	}
	if n := scans.Load(); n != 0 {
		t.Errorf("a tick with nothing due scanned the holders %d times", n)
	}

	// Walk the clock until the scheduler prepares, then activates, the next
	// CA: activation must first check the live holders.
	var activated bool
	for day := 0; day < 400 && !activated; day++ {
		e.Clock.Add(24 * time.Hour)
		scans.Store(0)
		applied, err := e.Authority.Tick(e.Ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range applied {
			if s == "orders/internal:activate" {
				activated = true
				if scans.Load() == 0 {
					t.Error("the scheduler activated a CA without reading the holders it could break")
				}
			}
		}
	}
	if !activated {
		t.Fatal("the scheduler never activated the next CA in 400 days")
	}
}
