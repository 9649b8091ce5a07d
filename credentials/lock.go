package credentials

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/flinkpki/flinkpki/internal/atomicfile"
)

// ErrBusy reports an output directory that another run holds (DirLock).
var ErrBusy = errors.New("another flinkpki run is writing it")

// DirLock is an exclusive lock on an output directory, held by one run from
// its checks, before it asks the server for anything, to the end of its
// write: two init or bake runs into one --out at once would otherwise each
// swap in a set of their own (..data left pointing at a directory the other
// removed, or a configuration copy holding the passwords of the other's
// stores) and both exit 0. The lock is a flock on the directory itself, so
// it leaves no file behind and ends with the process that held it.
type DirLock struct {
	f       *os.File
	created []string // directories LockDir made, for Release to remove
	kept    bool
}

// LockDir creates dir (mode 0700, as Write would) when it is missing and
// takes the lock without waiting: held by another run, it refuses with
// ErrBusy and changes nothing.
func LockDir(dir string) (*DirLock, error) {
	for range 10 {
		created, err := ensureDir(dir)
		if err != nil {
			return nil, err
		}
		f, err := os.Open(dir)
		if err != nil {
			atomicfile.RemoveDirs(created)
			return nil, fmt.Errorf("cannot use output directory %s: %w", dir, atomicfile.Cause(err))
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			// Not even a directory this run made: another run may have
			// made it at the same moment, and it is the holder's.
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("output %s: %w: wait for it to end, or give each run its own --out", dir, ErrBusy)
			}
			return nil, fmt.Errorf("cannot lock output directory %s: %w", dir, err)
		}
		// The directory locked must still be the one at dir: a run that
		// wrote nothing removes the directory it made, and one that
		// opened it just before holds a lock on a directory gone.
		held, herr := f.Stat()
		now, nerr := os.Stat(dir)
		if herr == nil && nerr == nil && os.SameFile(held, now) {
			return &DirLock{f: f, created: created}, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("output %s: %w: it was made and removed again while this run tried to lock it; give each run its own --out", dir, ErrBusy)
}

// Keep marks the directory as written: Release leaves it.
func (l *DirLock) Keep() { l.kept = true }

// Release ends the lock, and removes the directories LockDir made when the
// run wrote nothing into them (a refused run leaves no file).
func (l *DirLock) Release() {
	if l == nil {
		return
	}
	// Removed while still locked: no other run can take the lock of a
	// directory about to go (and LockDir checks that what it locked is
	// still there).
	if !l.kept {
		atomicfile.RemoveDirs(l.created)
	}
	l.f.Close()
}
