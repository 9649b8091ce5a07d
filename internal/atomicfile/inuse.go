package atomicfile

// Files a live process holds: made locked (CreateLocked), and told apart
// by their flock from what a killed process left (InUse, HeldForWriting,
// RemoveUnused).

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// CreateLocked creates a new file in dir (os.TempDir() for "") under
// pattern, as os.CreateTemp does, and holds a shared flock on it until it
// is closed: RemoveUnused and RemoveLeftovers, which other runs call to
// remove what killed runs left under the same pattern, leave it alone,
// and remove it once a kill has closed it. The lock is shared so that a
// bbolt reader (a check of the file) may lock it too.
func CreateLocked(dir, pattern string) (*os.File, error) {
	for range 3 {
		f, err := os.CreateTemp(dir, pattern)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		// Another run's clean-up may have removed it before it was locked.
		st, err := os.Lstat(f.Name())
		fst, ferr := f.Stat()
		if err == nil && ferr == nil && os.SameFile(st, fst) {
			return f, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("create a file in %s: removed by another process as soon as it was made, three times", dir)
}

// RemoveUnused removes the files that match the glob pattern and that no
// process holds locked (InUse), and returns the ones it removed: what a
// killed process left of a file it held while it wrote it.
func RemoveUnused(pattern string) []string { return RemoveUnusedIf(pattern, nil) }

// RemoveUnusedIf is RemoveUnused for the files of which also ours (nil:
// all) says the caller's kind of process wrote them: a pattern that other
// files may match too.
func RemoveUnusedIf(pattern string, ours func(path string) bool) []string {
	files, _ := filepath.Glob(pattern)
	var removed []string
	for _, f := range files {
		if inUse, err := InUse(f); err == nil && !inUse && (ours == nil || ours(f)) && os.Remove(f) == nil {
			removed = append(removed, f)
		}
	}
	return removed
}

// InUse reports whether another process (or another open file of this
// one) holds a flock on the regular file at path, as bbolt does on the
// database it has open for writing. A link is not followed: it is false.
func InUse(path string) (bool, error) { return lockedAgainst(path, syscall.LOCK_EX) }

// lockedAgainst reports whether a flock of kind (LOCK_EX or LOCK_SH) on the
// regular file at path would have to wait for another holder, without a
// link followed (then false). The probe's own lock ends with its file.
func lockedAgainst(path string, kind int) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), kind|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	return false, err
}

// HeldForWriting reports whether a process holds an exclusive flock on the
// regular file at path, as bbolt does on the database it has open for
// writing (a running server's). Shared locks do not count: a bbolt reader,
// or a WriteFrom whose file was just renamed to path. The probe is a shared
// lock itself, so two probes of one file do not see each other (InUse's
// exclusive one would). A link is not followed: it is false.
func HeldForWriting(path string) (bool, error) { return lockedAgainst(path, syscall.LOCK_SH) }
