package etcd_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/store"
)

// TestALongTransactionAppendsToTheAuditTrailDespiteOtherWriters: every
// write of every cluster moves the audit head. A transaction that reads a
// while (a rotation step scanning thousands of holders) must not find it
// changed at its commit because another replica audited something in the
// meantime: it reads the head last, as it is then, so the commit goes
// through the first time, and the chain stays whole.
func TestALongTransactionAppendsToTheAuditTrailDespiteOtherWriters(t *testing.T) {
	ctx := context.Background()
	prefix, kek := testPrefix(t), newKEK(t)
	a := mustOpenStore(t, newBackend(t, shared.Endpoints(), prefix), kek)
	b := mustOpenStore(t, newBackend(t, shared.Endpoints(), prefix), kek)
	entry := func(action string) *store.AuditEntry {
		return &store.AuditEntry{Time: time.Now().UTC(), Actor: "system:test", Action: action, Outcome: "ok"}
	}
	runs := 0
	err := a.Update(ctx, func(tx *store.Txn) error {
		runs++
		// The long read: it fixes the snapshot revision.
		if _, err := tx.Cluster("anything"); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if runs == 1 {
			// Meanwhile, another replica audits a change of another cluster.
			if err := b.Update(ctx, func(tx *store.Txn) error { return tx.AppendAudit(entry("other.change")) }); err != nil {
				return err
			}
		}
		return tx.AppendAudit(entry("long.step"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if runs != 1 {
		t.Errorf("the transaction ran %d times: its commit conflicted on the audit head another replica moved after its snapshot", runs)
	}
	var trail []*store.AuditEntry
	if err := a.View(ctx, func(tx *store.Txn) error {
		return tx.ForEachAudit(1, func(e *store.AuditEntry) (bool, error) {
			trail = append(trail, e)
			return true, nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if len(trail) != 2 || trail[0].Action != "other.change" || trail[1].Action != "long.step" {
		t.Fatalf("audit trail = %+v, want other.change then long.step", trail)
	}
	for i, e := range trail {
		if e.Seq != uint64(i+1) || store.AuditHash(e) != e.Hash || (i > 0 && e.Prev != trail[i-1].Hash) {
			t.Errorf("audit entry %d (%s) does not link: seq %d prev %q hash %q", i+1, e.Action, e.Seq, e.Prev, e.Hash)
		}
	}
}
