// Package bolt is the embedded default store backend, on bbolt.
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/flinkpki/flinkpki/internal/atomicfile"
	"github.com/flinkpki/flinkpki/store"
)

// Backend implements store.Backend on one bbolt file.
type Backend struct {
	db     *bbolt.DB
	commit *committer
	health string // the file Healthy writes, beside the database
	// writing is set while a health write runs: one that hangs is not
	// joined by another at every check.
	writing atomic.Bool
	timeout time.Duration // Options.Timeout, for the files Rewrite opens
}

// Options tunes the backend. Zero values pick defaults.
type Options struct {
	// ReadOnly opens the file without write access (offline inspection).
	ReadOnly bool
	// Timeout bounds the wait for the file lock held by another process.
	Timeout time.Duration
	// MaxBatchSize bounds how many calls share one group commit.
	MaxBatchSize int
}

// Open opens or creates the database file at path.
func Open(path string, o Options) (*Backend, error) {
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	created := false
	if !o.ReadOnly {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if err := create(path, o.Timeout); err != nil {
				return nil, err
			}
			created = true
		}
	}
	if err := checkFile(path); err != nil {
		return nil, err
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: o.Timeout, ReadOnly: o.ReadOnly})
	if err != nil {
		return nil, openErr(path, err)
	}
	if err := checkBuckets(db, path, o.ReadOnly); err != nil {
		db.Close()
		return nil, err
	}
	if o.MaxBatchSize <= 0 {
		o.MaxBatchSize = 1000
	}
	if !o.ReadOnly {
		// The file lock is ours: no Backup of another process runs, and no
		// other process creates this store.
		removeStaleBackups(path)
		removeStale(path, newPattern)
		removeStale(path, rewritePattern)
		if !created {
			atomicfile.RemoveUnused(filepath.Join(filepath.Dir(path), MigratingPattern))
		}
	}
	return &Backend{db: db, commit: newCommitter(db, o.MaxBatchSize), health: filepath.Join(filepath.Dir(path), healthFile), timeout: o.Timeout}, nil
}

// newPattern names the file a new store is built in before it is linked
// into place; Open removes any a crash left behind.
const newPattern = ".flinkpki-new-*.db"

// create makes a new store file at path with every bucket, atomically: it
// is built and synced under a temporary name beside path and then linked
// into place, so a first start killed at any point, or failing on a full
// volume, leaves either no file at path or a complete empty store, never a
// file the next start refuses. The link, unlike a rename, never replaces a
// store another process made meanwhile; Open then opens that one.
func create(path string, timeout time.Duration) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, newPattern)
	if err != nil {
		return openErr(path, err)
	}
	tmp := f.Name()
	f.Close()
	defer os.Remove(tmp)
	if err := createBuckets(tmp, timeout); err != nil {
		return openErr(path, err)
	}
	if err := os.Link(tmp, path); err != nil {
		// Another process made the store meanwhile (and may have removed
		// this temporary file as a stale one): open that store.
		if _, serr := os.Lstat(path); serr == nil {
			return nil
		}
		// A volume without hard links: rename. (Another first start could
		// slip in between the check above and the rename; two servers on
		// one new data directory at once is what the file lock is for.)
		if err := os.Rename(tmp, path); err != nil {
			return openErr(path, err)
		}
	}
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return openErr(path, err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return openErr(path, err)
	}
	return nil
}

// createBuckets opens the bbolt file at path (creating it when empty) and
// makes every bucket, in one synced transaction.
func createBuckets(path string, timeout time.Duration) error {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: timeout})
	if err != nil {
		return err
	}
	err = addBuckets(db)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

// addBuckets makes every bucket that is missing, in one transaction.
func addBuckets(db *bbolt.DB) error {
	return db.Update(func(tx *bbolt.Tx) error {
		for _, b := range store.Buckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
}

// checkBuckets refuses a database that lacks one of the store's buckets:
// not a flinkpki store. One with no bucket at all, opened for writing, is
// given them instead: bbolt's empty database, what a first start of an
// earlier version left when killed between creating the file and its
// buckets (no flinkpki store ever loses its buckets).
func checkBuckets(db *bbolt.DB, path string, readOnly bool) error {
	var missing []byte
	none := true
	if err := db.View(func(tx *bbolt.Tx) error {
		for _, b := range store.Buckets {
			if tx.Bucket(b) == nil {
				if missing == nil {
					missing = b
				}
			} else {
				none = false
			}
		}
		return nil
	}); err != nil {
		return err
	}
	switch {
	case missing == nil:
		return nil
	case none && !readOnly:
		if err := addBuckets(db); err != nil {
			return openErr(path, err)
		}
		return nil
	}
	return fmt.Errorf("%w: %s has no bucket %q: not a flinkpki store", store.ErrSchema, path, missing)
}

// IsScratch reports whether name, an entry of the database's directory,
// is one of the files the backend keeps beside the database that hold no
// data: the health file, or a new, empty store not yet in place. A restore
// into the directory may ignore them. (A backup's snapshot is a whole copy
// of a store: not scratch.)
func IsScratch(name string) bool {
	ok, _ := filepath.Match(newPattern, name)
	return ok || name == healthFile
}

// RestoreAdvice ends the refusal of a damaged store file. A caller that
// checks a backup file itself (admin restore) replaces it: restoring that
// file is what failed.
const RestoreAdvice = "restore it from a backup (flinkpki admin restore)"

func openErr(path string, err error) error {
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return fmt.Errorf("open store %s: the file is locked by another flinkpki process: stop it first", path)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrVersionMismatch):
		return fmt.Errorf("%w: open store %s: %v: %s", store.ErrCorrupt, path, err, RestoreAdvice)
	}
	return fmt.Errorf("open store %s: %w", path, err)
}

// Path returns the database file's path.
func (b *Backend) Path() string { return b.db.Path() }

// View implements store.Backend.
func (b *Backend) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.db.View(func(tx *bbolt.Tx) error { return fn(boltTx{tx}) })
}

// Update implements store.Backend.
func (b *Backend) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.volumeErr(b.db.Update(func(tx *bbolt.Tx) error { return fn(boltTx{tx}) }))
}

// volumeErr marks a commit that failed for want of room on the database's
// volume (ENOSPC, EDQUOT) or on a volume remounted read-only (EROFS) as
// store.ErrUnavailable: bbolt rolled the transaction back, the store is as
// it was, and the request succeeds once room is made, so a client retries
// (init does) instead of failing on an internal error. Other errors pass.
func (b *Backend) volumeErr(err error) error {
	if err == nil {
		return nil
	}
	// bbolt wraps a failed resize or sync with %s: then only the text tells.
	is := func(e syscall.Errno) bool { return errors.Is(err, e) || strings.Contains(err.Error(), e.Error()) }
	var why string
	switch {
	case is(syscall.ENOSPC), is(syscall.EDQUOT):
		why = "is full: free space on it or grow it"
	case is(syscall.EROFS):
		why = "is read-only (remounted after I/O errors?): check the disk and restart the server"
	default:
		return err
	}
	return fmt.Errorf("%w: the volume of %s %s; nothing was written (%v)", store.ErrUnavailable, filepath.Dir(b.db.Path()), why, err)
}

// Batch implements store.Backend with group commit (see committer).
func (b *Backend) Batch(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.volumeErr(b.commit.Do(ctx, fn))
}

// backupPattern names the snapshot files Backup writes next to the
// database; Open removes any a crash left behind.
const backupPattern = ".flinkpki-backup-*.db"

// Backup implements store.Backend with a consistent online snapshot. The
// snapshot is first copied to a file next to the database, and only then,
// with its read transaction closed, sent to w. Sending from inside the
// transaction would let a slow or stalled reader of w (a backup client
// that stops reading, say) hold it open: the next commit that grows the
// file waits for it to close, and every later read and write waits for
// that commit. The copy needs as much free space as the database.
func (b *Backend) Backup(ctx context.Context, w io.Writer) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(b.db.Path()), backupPattern)
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	err = b.db.View(func(tx *bbolt.Tx) error {
		_, err := tx.WriteTo(f)
		return err
	})
	if err != nil {
		return 0, b.volumeErr(fmt.Errorf("backup: a snapshot as large as the database, beside it: %w", atomicfile.Cause(err)))
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	return io.Copy(w, f)
}

// removeStaleBackups deletes snapshot files a crashed Backup left next to
// the database at path.
func removeStaleBackups(path string) { removeStale(path, backupPattern) }

// removeStale deletes the files matching pattern next to the database at
// path: what a crash left of a Backup or of a new store's set-up.
func removeStale(path, pattern string) {
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(path), pattern))
	for _, f := range stale {
		_ = os.Remove(f)
	}
}

// MigratingPattern names the new bbolt file admin migrate builds beside
// its target's path, linked into place once verified. A killed migration
// leaves it (sealed CA keys and all); the migration's retry removes those
// no process holds open (atomicfile.RemoveUnused: a migration still
// running into another target in the same folder keeps its own), and so
// does Open of a store that exists: such a file is then a partial copy of
// a store whose source still holds it all (a copy from this store, or
// into it, which exists already). Open of a new store leaves them: the
// file may be the store being migrated into that path, which serve
// refuses to start in place of.
const MigratingPattern = ".flinkpki-migrating-*.db"

// Close implements store.Backend.
func (b *Backend) Close() error { return b.db.Close() }

// healthFile is the file beside the database that Healthy rewrites.
const healthFile = ".flinkpki-health"

// Healthy reports whether the database's volume takes a synced write: it
// rewrites a few bytes of a small file beside the database and syncs it.
// A file system remounted read-only after I/O errors, or a volume gone,
// fails it, and the server reports NOT_SERVING, as it does when etcd is
// lost. (An empty bbolt transaction would test the same volume, but it
// rewrites the whole freelist: about 100 KiB per check on a store of a
// million holders.)
func (b *Backend) Healthy(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// A volume that hangs (an NFS hard mount, a stalled disk) blocks the
	// write for ever: the check fails at ctx's end instead, and the write
	// finishes, or not, on its own goroutine.
	if !b.writing.CompareAndSwap(false, true) {
		return errors.New("the database's volume has not finished the previous check's write")
	}
	done := make(chan error, 1)
	go func() {
		defer b.writing.Store(false)
		done <- writeHealth(b.health)
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("the database's volume: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the database's volume did not take a write within the check's time: %w", ctx.Err())
	}
}

// writeHealth rewrites the health file's few bytes and syncs them. The
// file is ours alone: a link in its place is refused, not followed.
func writeHealth(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	var stamp [8]byte
	binary.BigEndian.PutUint64(stamp[:], uint64(time.Now().UnixNano()))
	if _, err := f.WriteAt(stamp[:], 0); err != nil {
		return err
	}
	return f.Sync()
}

type boltTx struct{ tx *bbolt.Tx }

func (t boltTx) bucket(name []byte) (*bbolt.Bucket, error) {
	bk := t.tx.Bucket(name)
	if bk == nil {
		return nil, fmt.Errorf("%w: missing bucket %q", store.ErrCorrupt, name)
	}
	return bk, nil
}

func (t boltTx) Get(bucket, key []byte) []byte {
	bk := t.tx.Bucket(bucket)
	if bk == nil {
		return nil
	}
	return bk.Get(key)
}

// How full bbolt fills a page of a bucket before it splits it. Its
// default, 0.5, suits keys that come in random order; keys that come in
// order leave such pages half empty for good. Holders at 0.7, measured on
// 4,800 of them in the group commit's transactions of 16 (the test
// TestHolderPagesSuitPodsNamedInOrderAndInAnyOrder): pods named in Flink's
// order fill their pages to 64% (49% at 0.5), random names to 68% as at 0.5
// (56% at 0.9, which would suit the ordered ones best: 76%).
const (
	appendFill  = 0.95
	inOrderFill = 0.7
)

// fillPercent is the page fill of bucket's writes.
func fillPercent(bucket []byte) float64 {
	for _, b := range store.AppendOnly {
		if bytes.Equal(b, bucket) {
			return appendFill
		}
	}
	for _, b := range store.MostlyInOrder {
		if bytes.Equal(b, bucket) {
			return inOrderFill
		}
	}
	return bbolt.DefaultFillPercent
}

func (t boltTx) Put(bucket, key, value []byte) error {
	bk, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	bk.FillPercent = fillPercent(bucket)
	return bk.Put(key, value)
}

func (t boltTx) Delete(bucket, key []byte) error {
	bk, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return bk.Delete(key)
}

// Mark implements store.Tx: the value itself (nil: absent).
func (t boltTx) Mark(bucket, key []byte) []byte { return bytes.Clone(t.Get(bucket, key)) }

// Expect implements store.Tx: bbolt has one writer at a time, so a read
// in the transaction is the commit's state.
func (t boltTx) Expect(bucket, key, mark []byte) error {
	if got := t.Get(bucket, key); (got == nil) != (mark == nil) || !bytes.Equal(got, mark) {
		return store.ErrChanged
	}
	return nil
}

// DeletePrefix collects the keys first: bbolt's Cursor.Delete followed by
// Next can skip a key.
func (t boltTx) DeletePrefix(bucket, prefix []byte) error {
	bk, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	var keys [][]byte
	c := bk.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := bk.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func (t boltTx) Scan(bucket, prefix, start []byte, fn func(k, v []byte) (bool, error)) error {
	bk, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	c := bk.Cursor()
	seek := prefix
	if start != nil && bytes.Compare(start, prefix) > 0 {
		seek = start
	}
	for k, v := c.Seek(seek); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		more, err := fn(k, v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}
