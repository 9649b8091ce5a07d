package credentials

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/flinkpki/flinkpki/internal/atomicfile"
	"github.com/flinkpki/flinkpki/keystore"
)

// Names used inside an output directory, as in the kubelet's AtomicWriter:
// the files live in a hidden timestamped directory, ..data is a symlink to
// it, and each visible name is a symlink through ..data.
const (
	dataLink    = "..data"
	dataLinkTmp = "..data_tmp"
	tsPrefix    = ".."
	tsLayout    = "2006_01_02_15_04_05."
)

// Write puts the set into dir so that it appears all at once: a reader, or
// a crash at any instant, sees either the whole new set, the whole previous
// set, or (on a first write) none of it. dir is created with mode 0700 when
// missing. Writing again into the same dir swaps the set atomically and
// removes the previous one.
//
// Write refuses, changing nothing, when dir is not a directory or when a
// visible name exists but is not one of its symlinks. One writer per dir at
// a time is assumed: init and bake hold a DirLock on it for their run.
func (fs *FileSet) Write(dir string) (err error) {
	created, err := ensureDir(dir)
	if err != nil {
		return err
	}
	if created == nil {
		atomicfile.CloseToOthers(dir)
	}
	w := &writer{dir: dir, set: fs}
	defer func() {
		if err != nil {
			w.rollback(created)
		}
	}()
	if err := w.checkNames(); err != nil {
		return err
	}
	if err := w.writeData(); err != nil {
		return err
	}
	if err := w.linkNames(); err != nil {
		return err
	}
	if err := w.swap(); err != nil {
		return err
	}
	w.cleanup()
	return nil
}

// Check refuses, writing nothing, what Build or Write would refuse later
// for o: a bad format or profile, a directory Flink cannot name unquoted,
// one that cannot be created or written, and visible names in it that
// flinkpki did not write. A caller runs it before asking the server for
// anything, so that a refusal costs no issuance and no token use.
func Check(o Options) error {
	format, err := keystore.ParseFormat(string(o.Format))
	if err != nil {
		return err
	}
	if _, err := keystore.ParseProfile(string(o.Profile)); err != nil {
		return err
	}
	if err := checkDirs(o); err != nil {
		return err
	}
	st, err := os.Stat(o.Dir)
	switch {
	case err == nil && !st.IsDir():
		return fmt.Errorf("output %s exists and is not a directory; choose another --out", o.Dir)
	case err == nil:
		set := &FileSet{}
		for _, name := range fileNames(format) {
			set.Files = append(set.Files, File{Name: name})
		}
		if err := (&writer{dir: o.Dir, set: set}).checkNames(); err != nil {
			return err
		}
	}
	if err := atomicfile.CheckDir(o.Dir); err != nil {
		return fmt.Errorf("cannot write the file set: %w", err)
	}
	return nil
}

// ensureDir creates dir when missing and returns the directories it
// created (dir and missing parents), for a rollback to remove; when it
// fails, it has removed them.
func ensureDir(dir string) ([]string, error) {
	st, err := os.Stat(dir)
	switch {
	case err == nil && !st.IsDir():
		return nil, fmt.Errorf("output %s exists and is not a directory; choose another --out", dir)
	case err == nil:
		return nil, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("cannot use output directory %s: %w", dir, atomicfile.Cause(err))
	}
	created, err := atomicfile.MkdirAll(dir, 0o700)
	if err != nil {
		return nil, fmt.Errorf("cannot create output directory %s: %w", dir, atomicfile.Cause(err))
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		atomicfile.RemoveDirs(created)
		return nil, fmt.Errorf("cannot set mode 0700 on %s: %w", dir, atomicfile.Cause(err))
	}
	return created, nil
}

type writer struct {
	dir     string
	set     *FileSet
	oldData string   // base name of the previous data directory, if any
	tsDir   string   // absolute path of the new data directory
	linked  []string // visible symlinks this write created
}

func (w *writer) path(name string) string { return filepath.Join(w.dir, name) }

// checkNames refuses to clobber anything that is not ours.
func (w *writer) checkNames() error {
	target, err := os.Readlink(w.path(dataLink))
	switch {
	case err == nil:
		if !isTSDir(target) {
			return fmt.Errorf("%s points to %q, not to a flinkpki data directory; remove it or choose another --out", w.path(dataLink), target)
		}
		w.oldData = target
	case errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, syscall.EINVAL):
		return fmt.Errorf("%s exists and is not a flinkpki symlink; remove it or choose another --out", w.path(dataLink))
	default:
		return fmt.Errorf("cannot use output directory %s: %v", w.dir, err)
	}
	for _, f := range w.set.Files {
		if err := checkName(f.Name); err != nil {
			return err
		}
		target, err := os.Readlink(w.path(f.Name))
		if errors.Is(err, fs.ErrNotExist) || (err == nil && target == linkTarget(f.Name)) {
			continue
		}
		if err != nil && !errors.Is(err, syscall.EINVAL) {
			return fmt.Errorf("cannot use output directory %s: %v", w.dir, err)
		}
		return fmt.Errorf("%s already exists and was not written by flinkpki; move it away or choose another --out", w.path(f.Name))
	}
	return nil
}

func checkName(name string) error {
	if name == "" || strings.HasPrefix(name, ".") || strings.ContainsRune(name, filepath.Separator) {
		return fmt.Errorf("credential file name %q is not a plain visible file name", name)
	}
	return nil
}

func linkTarget(name string) string { return filepath.Join(dataLink, name) }

// isTSDir reports whether name looks like a data directory of ours:
// ".." followed by a timestamp.
func isTSDir(name string) bool {
	return len(name) > 3 && strings.HasPrefix(name, tsPrefix) && name[2] >= '0' && name[2] <= '9' &&
		!strings.ContainsRune(name, '/')
}

// writeData writes every file into a fresh hidden directory and syncs it.
func (w *writer) writeData() error {
	ts, err := os.MkdirTemp(w.dir, tsPrefix+time.Now().UTC().Format(tsLayout))
	if err != nil {
		return fmt.Errorf("cannot write into %s: %w", w.dir, atomicfile.Cause(err))
	}
	w.tsDir = ts
	// Like the kubelet: the files' own modes protect the secrets, and a
	// sidecar of another user may need tls.crt and ca.crt.
	if err := os.Chmod(ts, 0o755); err != nil {
		return fmt.Errorf("cannot write into %s: %w", w.dir, atomicfile.Cause(err))
	}
	for _, f := range w.set.Files {
		if err := writeFile(filepath.Join(ts, f.Name), w.path(f.Name), f.Data, f.Mode); err != nil {
			return err
		}
	}
	if err := atomicfile.SyncDir(ts); err != nil {
		return fmt.Errorf("cannot sync the file set in %s: %w", w.dir, atomicfile.Cause(err))
	}
	return nil
}

// writeFile writes path, in the hidden data directory; errors name shown,
// the visible name the user knows, and say the cause once.
func writeFile(path, shown string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("cannot create %s: %w", shown, atomicfile.Cause(err))
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode) // the umask may have narrowed the mode
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", shown, atomicfile.Cause(err))
	}
	return nil
}

// linkNames creates the visible symlinks that do not exist yet. Until
// ..data exists (or contains the name) they dangle, which readers see as
// "no file".
func (w *writer) linkNames() error {
	for _, f := range w.set.Files {
		if _, err := os.Lstat(w.path(f.Name)); err == nil {
			continue
		}
		if err := os.Symlink(linkTarget(f.Name), w.path(f.Name)); err != nil {
			return fmt.Errorf("cannot create %s: %w", w.path(f.Name), atomicfile.Cause(err))
		}
		w.linked = append(w.linked, f.Name)
	}
	return nil
}

// swap points ..data at the new directory with one rename.
func (w *writer) swap() error {
	tmp := w.path(dataLinkTmp)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot remove stale %s: %w", tmp, atomicfile.Cause(err))
	}
	if err := os.Symlink(filepath.Base(w.tsDir), tmp); err != nil {
		return fmt.Errorf("cannot switch %s to the new credentials: %w", w.dir, atomicfile.Cause(err))
	}
	if err := os.Rename(tmp, w.path(dataLink)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("cannot switch %s to the new credentials: %w", w.dir, atomicfile.Cause(err))
	}
	w.linked = nil // the visible names now resolve; they are no longer ours to undo
	w.tsDir = ""
	return atomicfile.SyncDir(w.dir)
}

// cleanup removes the previous data directory, leftovers of interrupted
// writes, and visible symlinks the new set no longer has (a format change
// turns keystore.p12 into keystore.jks). Failures here leave only garbage
// that the next Write removes, never a broken set.
func (w *writer) cleanup() {
	current, _ := os.Readlink(w.path(dataLink))
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return
	}
	keep := map[string]bool{}
	for _, f := range w.set.Files {
		keep[f.Name] = true
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == dataLink || name == current:
		case e.IsDir() && isTSDir(name):
			_ = os.RemoveAll(w.path(name))
		case !keep[name] && e.Type()&fs.ModeSymlink != 0:
			if target, err := os.Readlink(w.path(name)); err == nil && target == linkTarget(name) {
				_ = os.Remove(w.path(name))
			}
		}
	}
}

// rollback undoes a failed write: the new data directory, the symlinks it
// created and the directories Write created (dir, missing parents).
func (w *writer) rollback(createdDirs []string) {
	for _, name := range w.linked {
		_ = os.Remove(w.path(name))
	}
	if w.tsDir != "" {
		_ = os.RemoveAll(w.tsDir)
	}
	atomicfile.RemoveDirs(createdDirs)
}
