package bolt

import (
	bbolt "go.etcd.io/bbolt"

	"github.com/flinkpki/flinkpki/store"
)

// committer is bbolt's side of a store.GroupCommit. bbolt's own Batch
// waits MaxBatchDelay (10 ms) before every batch, which is the whole latency
// of a lone request; the group commit has no delay.
type committer struct {
	db *bbolt.DB
	store.GroupCommit
}

func newCommitter(db *bbolt.DB, maxSize int) *committer {
	c := &committer{db: db}
	c.GroupCommit = store.GroupCommit{Max: maxSize, Commit: c.commit}
	return c
}

// commit runs every call in one transaction. When one fails, the
// transaction is rolled back and each call runs in its own transaction, so
// one caller's refusal never undoes another's change.
func (c *committer) commit(calls []*store.Call) {
	failed := -1
	err := c.db.Update(func(tx *bbolt.Tx) error {
		for i, cl := range calls {
			if err := cl.Fn(boltTx{tx}); err != nil {
				failed = i
				return err
			}
		}
		return nil
	})
	if err == nil {
		for _, cl := range calls {
			cl.Done <- nil
		}
		return
	}
	if failed < 0 { // the commit itself failed
		for _, cl := range calls {
			cl.Done <- err
		}
		return
	}
	for _, cl := range calls {
		cl.Done <- c.db.Update(func(tx *bbolt.Tx) error { return cl.Fn(boltTx{tx}) })
	}
}
