package etcd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/flinkpki/flinkpki/internal/atomicfile"
	"github.com/flinkpki/flinkpki/store"
)

// backupTxBytes bounds the keys and values one bbolt write transaction of a
// backup holds. bbolt keeps a transaction's dirty pages on the Go heap
// until it commits, so a backup built in one transaction took more memory
// than the store's size: 135-143 MiB of anonymous memory for 100k holders
// (an 84 MB file), over the HA Deployment's limit (then 128Mi). On that store the
// replica peaked at 25-27 MiB with 64 KiB to 1 MiB per transaction, 33-38
// MiB with 4 MiB and 72-87 MiB with 16 MiB: about four times the bound
// above the 20 MiB heap floor of internal/gctune. Every bound took 1.4-1.7
// s (2.7 s in one transaction). 1 MiB is about a thousand holders a commit.
const backupTxBytes = 1 << 20

// backupPattern names the file a backup is built in, in the temporary
// directory. Open removes the ones a killed process left (removeStaleBackups).
const backupPattern = "flinkpki-etcd-backup-*.db"

// Backup implements store.Backend. It writes a bbolt database file, the
// format of the bolt backend, holding every bucket as it was at one etcd
// revision. So `flinkpki admin restore` takes a backup of either backend,
// and a backup of an HA installation can seed a single-node one.
//
// The file is built in the system's temporary directory, in transactions
// of at most about backupTxBytes: the snapshot is one revision because the
// etcd read is, not the bbolt writes. The file's name is removed as soon as
// bbolt has opened it, so the copy of the store (sealed CA keys, token
// hashes, the audit trail) is freed when the backup ends, however the
// process ends.
func (b *Backend) Backup(ctx context.Context, w io.Writer) (int64, error) {
	return b.backup(ctx, w, backupTxBytes)
}

func (b *Backend) backup(ctx context.Context, w io.Writer, txBytes int) (int64, error) {
	var db *bbolt.DB
	defer func() {
		if db != nil {
			db.Close()
		}
	}()
	err := b.View(ctx, func(tx store.Tx) error {
		// A read again (etcd compacted the first one's revision away, or
		// a member did not answer) starts from an empty file: what the
		// first read committed may have been deleted since (a token
		// spent), and must not stay.
		if db != nil {
			db.Close()
		}
		var err error
		if db, err = createBackupFile(); err != nil {
			return err
		}
		return copyInto(tx, &boltWriter{db: db, limit: txBytes})
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

// createBackupFile opens a new, empty bbolt file in the temporary
// directory, under backupPattern, and removes its name at once: bbolt holds
// it open (and reads it back through that descriptor), so a killed process
// leaves no copy of the store behind. Only a process killed between the
// two steps leaves an empty file, which the next Open removes.
//
// Neither syncs: the file is read back from the page cache by this
// process, and a crash loses it anyway.
func createBackupFile() (*bbolt.DB, error) {
	f, err := os.CreateTemp("", backupPattern)
	if err != nil {
		return nil, fmt.Errorf("create the bbolt file: %w", err)
	}
	path := f.Name()
	f.Close()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true, NoGrowSync: true})
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("create the bbolt file: %w", err)
	}
	// Another process's removeStaleBackups may have removed it already
	// (before bbolt locked it): the open file is unaffected.
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		db.Close()
		return nil, fmt.Errorf("unlink the bbolt file: %w", err)
	}
	return db, nil
}

// removeStaleBackups deletes the files of backups that a killed process
// left in the temporary directory: under backupPattern (holding no record:
// createBackupFile unlinks its file at once), and the directories
// flinkpki-etcd-backup-*/backup.db of earlier versions, which held a full
// copy of the store. Replicas may share the directory (one host, one
// TMPDIR), so a file is removed only when no process holds bbolt's lock on
// it: a live backup of another process, or of this one, keeps its file.
func removeStaleBackups() {
	dir := os.TempDir()
	atomicfile.RemoveUnused(filepath.Join(dir, backupPattern))
	for _, f := range atomicfile.RemoveUnused(filepath.Join(dir, "flinkpki-etcd-backup-*", "backup.db")) {
		os.Remove(filepath.Dir(f)) // only when empty
	}
}

// copyInto copies every bucket of tx into the empty file behind out, in
// transactions bounded by out's limit.
func copyInto(tx store.Tx, out *boltWriter) error {
	defer out.abort()
	for _, name := range store.Buckets {
		if err := out.bucket(name); err != nil {
			return err
		}
		err := tx.Scan(name, nil, nil, func(k, v []byte) (bool, error) {
			return true, out.put(k, v)
		})
		if err != nil {
			return err
		}
	}
	return out.commit()
}

// boltWriter writes keys into a bbolt file in write transactions of at
// most about limit bytes of keys and values each.
type boltWriter struct {
	db    *bbolt.DB
	limit int
	tx    *bbolt.Tx
	name  []byte // the bucket being written
	bk    *bbolt.Bucket
	held  int // bytes put in tx
}

// bucket creates the bucket name and writes the next keys into it.
func (w *boltWriter) bucket(name []byte) error {
	if err := w.begin(); err != nil {
		return err
	}
	bk, err := w.tx.CreateBucket(name)
	if err != nil {
		return err
	}
	w.name, w.bk = name, bk
	return nil
}

// put writes k and v into the current bucket, first committing the
// transaction when it holds limit bytes or more.
func (w *boltWriter) put(k, v []byte) error {
	if w.held >= w.limit {
		if err := w.commit(); err != nil {
			return err
		}
		if err := w.begin(); err != nil {
			return err
		}
		w.bk = w.tx.Bucket(w.name)
	}
	w.held += len(k) + len(v)
	return w.bk.Put(k, v)
}

// begin starts a write transaction unless one is open.
func (w *boltWriter) begin() error {
	if w.tx != nil {
		return nil
	}
	tx, err := w.db.Begin(true)
	if err != nil {
		return err
	}
	w.tx, w.held = tx, 0
	return nil
}

// commit commits the open transaction, if any.
func (w *boltWriter) commit() error {
	if w.tx == nil {
		return nil
	}
	tx := w.tx
	w.tx, w.bk = nil, nil
	return tx.Commit()
}

// abort rolls back the open transaction, if any.
func (w *boltWriter) abort() {
	if w.tx != nil {
		w.tx.Rollback()
		w.tx, w.bk = nil, nil
	}
}
