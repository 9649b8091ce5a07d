package etcd

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/flinkpki/flinkpki/store"
)

// Backup implements store.Backend. It writes a bbolt database file, the
// format of the bolt backend, holding every bucket as it was at one etcd
// revision. So `flinkpki admin restore` takes a backup of either backend,
// and a backup of an HA installation can seed a single-node one.
//
// The file is built in the system's temporary directory and removed
// afterwards.
func (b *Backend) Backup(ctx context.Context, w io.Writer) (int64, error) {
	dir, err := os.MkdirTemp("", "flinkpki-etcd-backup-")
	if err != nil {
		return 0, fmt.Errorf("etcd backup: %w", err)
	}
	defer os.RemoveAll(dir)
	db, err := bbolt.Open(filepath.Join(dir, "backup.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return 0, fmt.Errorf("etcd backup: create the bbolt file: %w", err)
	}
	defer db.Close()
	err = db.Update(func(out *bbolt.Tx) error {
		return b.View(ctx, func(tx store.Tx) error { return copyInto(tx, out) })
	})
	if err != nil {
		return 0, fmt.Errorf("etcd backup: %w", err)
	}
	var n int64
	err = db.View(func(tx *bbolt.Tx) error {
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("etcd backup: write the snapshot: %w", err)
	}
	return n, nil
}

// copyInto copies every bucket of tx into a bbolt transaction, each
// bucket made anew: when View reads again from the top (etcd compacted its
// snapshot away), keys of the first read that the second no longer has
// must not stay behind (a token spent and deleted in between would come
// back with a restore).
func copyInto(tx store.Tx, out *bbolt.Tx) error {
	for _, name := range store.Buckets {
		if out.Bucket(name) != nil {
			if err := out.DeleteBucket(name); err != nil {
				return err
			}
		}
		bk, err := out.CreateBucket(name)
		if err != nil {
			return err
		}
		err = tx.Scan(name, nil, nil, func(k, v []byte) (bool, error) {
			return true, bk.Put(k, v)
		})
		if err != nil {
			return err
		}
	}
	return nil
}
