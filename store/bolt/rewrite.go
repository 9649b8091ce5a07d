package bolt

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/flinkpki/flinkpki/internal/atomicfile"
	"github.com/flinkpki/flinkpki/store"
)

// rewritePattern names the copies Rewrite works on beside the database;
// Open removes any a crash left behind.
const rewritePattern = ".flinkpki-rewrite-*.db"

// compactTxSize bounds one transaction of a compacting copy, so that a
// large database is not copied in memory at once.
const compactTxSize = 64 << 20

// Rewrite implements store.Rewriter. bbolt never overwrites a page in
// place: a changed record's old page goes on the freelist with its bytes
// intact until a later write reuses it, and a Backup copies it too. So
// fn runs on a compacted copy of the database (no freed pages), and a
// compacted copy of the result (none of the pages fn freed) is renamed
// over the database: what fn replaced is in neither. The rename is the
// commit: a crash before it leaves the database as it was (and the copies
// for the next Open to remove), a failing fn changes nothing. Backup
// afterwards copies only live data.
//
// Rewrite is for offline work (admin rotate-kek): nothing else may use b
// meanwhile. b holds the database's lock throughout and afterwards uses
// the new file. The copies need twice the database's size free beside it.
func (b *Backend) Rewrite(ctx context.Context, fn func(store.Backend) error) error {
	path := b.db.Path()
	orig, err := os.Stat(path)
	if err != nil {
		return err
	}
	work, err := compactCopy(b.db, b.timeout)
	if err != nil {
		return err
	}
	defer os.Remove(work)
	wdb, err := bbolt.Open(work, 0o600, &bbolt.Options{Timeout: b.timeout})
	if err != nil {
		return fmt.Errorf("open the database's working copy: %w", atomicfile.Cause(err))
	}
	wb := &Backend{db: wdb, commit: newCommitter(wdb, b.commit.Max), health: b.health, timeout: b.timeout}
	if err := fn(wb); err != nil {
		wdb.Close()
		return err
	}
	if err := ctx.Err(); err != nil {
		wdb.Close()
		return err
	}
	final, err := compactCopy(wdb, b.timeout)
	if cerr := wdb.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close the database's working copy: %w", atomicfile.Cause(cerr))
	}
	if err != nil {
		return err
	}
	defer os.Remove(final) // gone by then, once renamed
	// The server runs as the database's owner, maybe not as whoever runs
	// this (root, say): the new file takes the old one's owner and mode.
	if err := sameOwnerAndMode(final, orig); err != nil {
		return err
	}
	if err := os.Rename(final, path); err != nil {
		return fmt.Errorf("put the rewritten database in place: %w", atomicfile.Cause(err))
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("%w, but the rename may not be durable: %v", store.ErrReplaced, err)
	}
	// The old file is unlinked and still locked by b.db: open the new
	// one (nobody else may take its lock meanwhile: the work is offline,
	// and the new file was ours alone until the rename), then let the
	// old one go.
	ndb, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: b.timeout})
	if err != nil {
		return fmt.Errorf("%w, but it does not open: %v", store.ErrReplaced, openErr(path, err))
	}
	old := b.db
	b.db, b.commit = ndb, newCommitter(ndb, b.commit.Max)
	return old.Close()
}

// sameOwnerAndMode gives the file at path the owner and mode of orig.
func sameOwnerAndMode(path string, orig fs.FileInfo) error {
	if err := os.Chmod(path, orig.Mode().Perm()); err != nil {
		return fmt.Errorf("give the rewritten database the mode of the old: %w", atomicfile.Cause(err))
	}
	st, ok := orig.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if err := os.Lchown(path, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("give the rewritten database the owner of the old (uid %d, gid %d), so that its server can open it: %w; run as that user or as root", st.Uid, st.Gid, atomicfile.Cause(err))
	}
	return nil
}

// compactCopy copies db's live data, and none of its freed pages, into a
// new synced file beside it, and returns that file's name.
func compactCopy(db *bbolt.DB, timeout time.Duration) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(db.Path()), rewritePattern)
	if err != nil {
		return "", fmt.Errorf("copy the database beside it: %w", atomicfile.Cause(err))
	}
	name := f.Name()
	f.Close()
	dst, err := bbolt.Open(name, 0o600, &bbolt.Options{Timeout: timeout})
	if err == nil {
		err = bbolt.Compact(dst, db, compactTxSize)
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("copy the database beside it (this needs about twice its size free in %s): %w", filepath.Dir(db.Path()), atomicfile.Cause(err))
	}
	return name, nil
}
