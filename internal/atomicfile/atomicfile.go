// Package atomicfile replaces a file whole or not at all: the content goes
// to a temporary file beside the target, is synced, and is renamed over it,
// so a reader (or a restart after a crash) sees the old file or the complete
// new one. Write replaces one file; Stage leaves the synced temporary file
// to its caller, which renames several together (the Flink configuration
// copy). The credential file set has its own, directory-level swap in
// package credentials, and shares SyncDir. The package also tells the
// files a live process holds (a flock, inuse.go) from those a killed one
// left, so that cleaning up never removes another run's work.
package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Write replaces path with data, with mode perm.
func Write(path string, data []byte, perm fs.FileMode) error {
	_, err := WriteFrom(path, perm, func(w io.Writer) error {
		_, err := io.Copy(w, bytes.NewReader(data))
		return err
	}, nil)
	return err
}

// WriteFrom replaces path with what fill writes, with mode perm, and
// returns the number of bytes written. check, when not nil, runs on the
// synced temporary file before it is moved into place; an error from it
// leaves path untouched. On any failure the temporary file is removed.
// Once path is in place, so are the temporary files that killed writers of
// path left beside it (RemoveLeftovers).
func WriteFrom(path string, perm fs.FileMode, fill func(io.Writer) error, check func(tmpPath string) error) (n int64, err error) {
	f, n, err := stage(path, perm, fill)
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
			f.Close()
		}
	}()
	if check != nil {
		if err := check(tmp); err != nil {
			return 0, err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("move %s into place: %w", path, err)
	}
	// The lock kept the temporary file from another writer's
	// RemoveLeftovers; at path it must not look like a file in use.
	f.Close()
	// The rename is durable once the directory is synced: without it a
	// power loss right after "restored" could leave the old name, or none.
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return n, fmt.Errorf("%s is in place, but %w", path, err)
	}
	RemoveLeftovers(path)
	return n, nil
}

// Stage writes what fill writes, with mode perm and synced, to a new
// temporary file beside path, and returns its name and size: nothing is in
// place until the caller renames it over path. A caller that must replace
// several files together stages them all first. On failure nothing is
// left behind.
func Stage(path string, perm fs.FileMode, fill func(io.Writer) error) (tmpPath string, n int64, err error) {
	f, n, err := stage(path, perm, fill)
	if err != nil {
		return "", 0, err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", 0, err
	}
	return f.Name(), n, nil
}

// stage is Stage that returns the temporary file open, and locked
// (CreateLocked), so that RemoveLeftovers, run by another writer of path
// that finished first, leaves it alone while WriteFrom checks it.
func stage(path string, perm fs.FileMode, fill func(io.Writer) error) (_ *os.File, n int64, err error) {
	tmp, err := CreateLocked(filepath.Dir(path), "."+filepath.Base(path)+tmpSuffix+"*")
	if err != nil {
		return nil, 0, fmt.Errorf("create temporary file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return nil, 0, err
	}
	cw := &countingWriter{w: tmp}
	if err := fill(cw); err != nil {
		return nil, 0, err
	}
	if err := tmp.Sync(); err != nil {
		return nil, 0, fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	return tmp, cw.n, nil
}

// tmpSuffix follows the target's name in a temporary file's name.
const tmpSuffix = ".tmp-"

// RemoveLeftovers removes the temporary files of path that a killed
// writer left beside it (they may hold an earlier version's secrets), but
// not one that a WriteFrom still running holds locked (InUse).
func RemoveLeftovers(path string) { RemoveLeftoversExcept(path, nil) }

// RemoveLeftoversExcept is RemoveLeftovers that also keeps the files keep
// (nil: none) names: a caller's own files whose names look like leftovers
// (a copied directory holding both a and .a.tmp-x).
func RemoveLeftoversExcept(path string, keep func(p string) bool) {
	for _, p := range Leftovers(path) {
		if keep != nil && keep(p) {
			continue
		}
		if st, err := os.Lstat(p); err == nil && st.Mode().IsRegular() {
			if inUse, _ := InUse(p); !inUse {
				os.Remove(p)
			}
		}
	}
}

// Leftovers lists the temporary files of path that a killed writer left
// beside it (regular or not: RemoveLeftovers removes only regular ones).
func Leftovers(path string) []string {
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "."+globEscape(filepath.Base(path))+tmpSuffix+"*"))
	return left
}

// globEscape quotes the characters filepath.Match treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// SyncDir makes the entries of dir (a rename, a new file) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cannot sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("cannot sync %s: %w", dir, err)
	}
	return nil
}

// MkdirAll is os.MkdirAll that returns the directories it created,
// outermost first: a caller undoing a failed write removes those, and only
// those (RemoveDirs). When it fails part way it removes what it made
// itself, and returns none.
func MkdirAll(dir string, perm fs.FileMode) (created []string, err error) {
	var missing []string
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err == nil {
			if !st.IsDir() {
				return nil, &fs.PathError{Op: "mkdir", Path: p, Err: syscall.ENOTDIR}
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || filepath.Dir(p) == p {
			return nil, err
		}
		missing = append(missing, p)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], perm); err != nil {
			if st, serr := os.Stat(missing[i]); serr == nil && st.IsDir() {
				continue // made by someone else meanwhile: not ours to remove
			}
			RemoveDirs(created)
			return nil, err
		}
		created = append(created, missing[i])
	}
	return created, nil
}

// RemoveDirs removes the directories MkdirAll created, innermost first,
// each only if it is empty.
func RemoveDirs(created []string) {
	for i := len(created) - 1; i >= 0; i-- {
		_ = os.Remove(created[i])
	}
}

// Cause is the system error inside err's *fs.PathError or *os.LinkError,
// else err: for a message that names the user's path, not the temporary or
// hidden one the error names (which would also print a path twice).
func Cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// probeSize is how much CheckDir writes: more than a credential file set
// takes (a few KiB, RSA-4096 stores in both formats included), and as much
// as a usual Flink configuration directory, so that a volume too full for
// them shows too.
const probeSize = 64 << 10

// CheckDir reports, writing nothing that stays, whether files can be made
// in dir or, when dir does not exist yet, in its nearest existing ancestor
// (where os.MkdirAll would begin). It creates a temporary directory there
// with probeSize bytes in it, synced, and removes it, so a read-only file
// system, a missing permission, a full volume or a symbolic link to a
// directory that does not exist (DanglingLink) shows before the caller asks
// anyone for anything (a one-use token is spent by the asking).
func CheckDir(dir string) error { return CheckDirRoom(dir, probeSize) }

// CheckDirRoom is CheckDir for n bytes (probeSize at least): a caller that
// will write more than probeSize (a large Flink configuration directory)
// probes for what it will write.
func CheckDirRoom(dir string, n int64) error {
	n = max(n, probeSize)
	p := filepath.Clean(dir)
	for {
		st, err := os.Stat(p)
		if err == nil {
			if !st.IsDir() {
				return fmt.Errorf("%s is not a directory", p)
			}
			break
		}
		parent := filepath.Dir(p)
		if !errors.Is(err, fs.ErrNotExist) || parent == p {
			return fmt.Errorf("cannot use %s: %w", p, err)
		}
		if err := DanglingLink(p); err != nil {
			return err
		}
		p = parent
	}
	removeStaleProbes(p)
	probe, err := os.MkdirTemp(p, probePrefix)
	if err != nil {
		return fmt.Errorf("cannot create files in %s: %w", p, err)
	}
	defer os.RemoveAll(probe)
	f, err := os.Create(filepath.Join(probe, probeFile))
	if err == nil {
		// Held while it is written: another run's removeStaleProbes
		// keeps it (and removes it once a kill has closed it).
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH)
	}
	if err == nil {
		_, err = f.Write(make([]byte, n))
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("cannot write %d KiB in %s: %w", (n+1023)>>10, p, err)
	}
	return nil
}

// DanglingLink refuses p when it is a symbolic link whose target does not
// exist. os.Stat calls such a path missing, but os.MkdirAll cannot create
// it (the link is in the way), so a check that reads "missing" as "will be
// created" passes, and the write fails only after the caller has asked for
// everything (an issuance, a token use). Any other p, missing or not, is
// nil.
func DanglingLink(p string) error {
	st, err := os.Lstat(p)
	if err != nil || st.Mode()&fs.ModeSymlink == 0 {
		return nil
	}
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	target, err := os.Readlink(p)
	if err != nil {
		return fmt.Errorf("cannot use %s: %w", p, err)
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(p), target)
	}
	return fmt.Errorf("%s is a symbolic link to %s, which does not exist: create that directory first, or name another directory", p, target)
}

const probePrefix = ".flinkpki-probe-"

// probeFile is the file in a probe directory that holds the probe's bytes.
const probeFile = "space"

// staleProbe is the age past which a probe directory without its file is
// a killed run's (a run makes the file right after the directory).
const staleProbe = 10 * time.Minute

// removeStaleProbes removes the probe directories in dir that runs killed
// before their clean-up left (they hold a probe's bytes each), but not a
// probe of a run that may still be going: one whose file is locked (InUse),
// or, without its file yet, one made in the last staleProbe.
func removeStaleProbes(dir string) {
	old, _ := filepath.Glob(filepath.Join(dir, probePrefix+"*"))
	for _, p := range old {
		st, err := os.Lstat(p)
		if err != nil || !st.IsDir() {
			continue
		}
		inUse, err := InUse(filepath.Join(p, probeFile))
		if (err == nil && !inUse) || (errors.Is(err, fs.ErrNotExist) && time.Since(st.ModTime()) > staleProbe) {
			_ = os.RemoveAll(p)
		}
	}
}
