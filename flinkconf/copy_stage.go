package flinkconf

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/flinkpki/flinkpki/internal/atomicfile"
)

// manifestName lists, in the output directory, the files the last copy
// wrote, one slash-separated path per line, so that the next copy removes
// those its source no longer has (a legacy flink-conf.yaml holding the
// previous run's passwords, say) and nothing a copy did not write.
const manifestName = ".flinkpki-conf-files"

// IsPodLocalCopy reports whether the configuration file at path is one a
// copy (init's --flink-conf-out, bake's) wrote: the manifest beside it
// lists it.
func IsPodLocalCopy(path string) bool {
	return slices.Contains(readManifest(filepath.Dir(path)), filepath.Base(path))
}

// Staged is a merged copy written to temporary files beside their places
// in the output directory, none of them in place yet: Commit renames them
// all, Abort removes them. A caller that must also write other files (the
// credential set) stages first, so that a full disk or a broken output
// shows before anything is replaced.
type Staged struct {
	out     string
	files   []stagedFile
	created []string // directories Stage created, outermost first
	write   writes
}

type stagedFile struct{ rel, tmp string }

// writes is how a copy writes its files: tests make one fail.
type writes struct {
	// stage writes data beside dst (atomicfile.Stage) and returns the
	// temporary file's name.
	stage func(dst string, data []byte, perm fs.FileMode) (string, error)
	// manifest writes the manifest (atomicfile.Write).
	manifest func(path string, data []byte, perm fs.FileMode) error
	// remove removes a file the previous copy wrote (os.Remove).
	remove func(path string) error
	// sync makes a directory's entries durable (atomicfile.SyncDir).
	sync func(dir string) error
}

// fileWrites are the writes a copy makes.
var fileWrites = writes{
	stage: func(dst string, data []byte, perm fs.FileMode) (string, error) {
		tmp, _, err := atomicfile.Stage(dst, perm, func(w io.Writer) error {
			_, err := w.Write(data)
			return err
		})
		return tmp, err
	},
	manifest: atomicfile.Write,
	remove:   os.Remove,
	sync:     atomicfile.SyncDir,
}

// Stage merges kvs and writes every file of the copy to a synced temporary
// file beside its place; on failure it removes what it wrote and nothing
// in the output has changed.
func (c *Conf) Stage(kvs []KV) (_ *Staged, err error) {
	files, err := mergeFiles(slices.Clone(c.files), kvs)
	if err != nil {
		return nil, err
	}
	st := &Staged{out: c.out, write: c.write}
	defer func() {
		if err != nil {
			st.Abort()
		}
	}()
	// Before anything is staged in it: whoever may write into an existing
	// output could swap a staged file for one of their own.
	atomicfile.CloseToOthers(c.out)
	if err := st.mkdirs(c.out); err != nil {
		return nil, fmt.Errorf("create Flink configuration output %s: %w", c.out, err)
	}
	ours := readManifest(c.out)
	for _, f := range files {
		if err := c.checkDest(f.rel, c.source(f.rel), ours); err != nil {
			return nil, err
		}
		dst := filepath.Join(c.out, filepath.FromSlash(f.rel))
		if err := st.mkdirs(filepath.Dir(dst)); err != nil {
			return nil, fmt.Errorf("create %s: %w", filepath.Dir(dst), err)
		}
		tmp, err := c.write.stage(dst, f.data, f.perm)
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", dst, atomicfile.Cause(err))
		}
		st.files = append(st.files, stagedFile{rel: f.rel, tmp: tmp})
	}
	return st, nil
}

// mkdirs creates dir, 0700, and records what it created for Abort.
func (s *Staged) mkdirs(dir string) error {
	created, err := atomicfile.MkdirAll(dir, 0o700)
	s.created = append(s.created, created...)
	return atomicfile.Cause(err)
}

// Abort removes the staged files and the directories Stage created (an
// output directory, a sub-directory of the copy); the output is as it was.
func (s *Staged) Abort() {
	for _, f := range s.files {
		os.Remove(f.tmp)
	}
	s.files = nil
	atomicfile.RemoveDirs(s.created)
	s.created = nil
}

// Commit moves every staged file into place, records them in the
// manifest, and removes the files the previous copy wrote that this one
// does not have, and temporary files a killed run left beside either or
// beside the manifest.
func (s *Staged) Commit() error {
	prev := readManifest(s.out)
	// The manifest lists the new files before any is in place, so that a
	// run killed among the renames leaves none the manifest forgets (a
	// file its source dropped would then stay in the copy for good).
	union := slices.Clone(prev)
	for _, f := range s.files {
		if !slices.Contains(union, f.rel) {
			union = append(union, f.rel)
		}
	}
	if len(union) > len(prev) {
		if err := s.write.manifest(filepath.Join(s.out, manifestName), []byte(strings.Join(union, "\n")+"\n"), 0o600); err != nil {
			s.Abort()
			return fmt.Errorf("record the copy's files in %s: %w", s.out, atomicfile.Cause(err))
		}
	}
	created := s.created
	s.created = nil // from here on the files are in place in them
	now, err := s.rename()
	if err != nil {
		return err
	}
	if err := s.syncDirs(now, created); err != nil {
		return err
	}
	kept, err := s.removeDropped(prev, now)
	// Narrowed to this copy's files (and those of the previous copy it
	// could not remove) only now: a run killed before this point leaves
	// the longer list, whose files the next copy removes. When this write
	// fails (a full disk), the longer list stays, and nothing is wrong but
	// its length.
	_ = s.write.manifest(filepath.Join(s.out, manifestName), []byte(strings.Join(append(now, kept...), "\n")+"\n"), 0o600)
	return err
}

// rename moves the staged files into place, in order, and returns their
// paths below the output.
func (s *Staged) rename() ([]string, error) {
	var now []string
	for i, f := range s.files {
		dst := filepath.Join(s.out, filepath.FromSlash(f.rel))
		if err := os.Rename(f.tmp, dst); err != nil {
			for _, rest := range s.files[i:] {
				os.Remove(rest.tmp)
			}
			s.files = nil
			return nil, fmt.Errorf("write %s: move into place: %w", dst, atomicfile.Cause(err))
		}
		now = append(now, f.rel)
	}
	s.files = nil
	// Only once every file is in place: a staged file of this copy waiting
	// for its rename would match the leftovers of another (a source with
	// both a and a.tmp-x).
	for _, rel := range now {
		s.removeLeftovers(rel, now)
	}
	return now, nil
}

// removeLeftovers removes the temporary files a killed run left beside
// rel (atomicfile.RemoveLeftovers), but none that is a file of this copy
// (now): a source may hold a hidden .a.tmp-x beside a.
func (s *Staged) removeLeftovers(rel string, now []string) {
	atomicfile.RemoveLeftoversExcept(filepath.Join(s.out, filepath.FromSlash(rel)), func(p string) bool {
		r, err := filepath.Rel(s.out, p)
		return err != nil || slices.Contains(now, filepath.ToSlash(r))
	})
}

// syncDirs syncs every directory a file of the copy was renamed into, and
// the parent of every directory Stage created, so that the copy outlasts
// a power loss.
func (s *Staged) syncDirs(now, created []string) error {
	dirs := map[string]bool{}
	for _, rel := range now {
		dirs[filepath.Dir(filepath.Join(s.out, filepath.FromSlash(rel)))] = true
	}
	for _, d := range created {
		dirs[filepath.Dir(d)] = true
	}
	for d := range dirs {
		if err := s.write.sync(d); err != nil {
			return fmt.Errorf("the Flink configuration copy is in place in %s, but %w", s.out, err)
		}
	}
	return nil
}

// removeDropped removes the files the previous copy wrote (prev) that this
// one (now) does not have, and returns those it could not remove with the
// first failure.
func (s *Staged) removeDropped(prev, now []string) (kept []string, err error) {
	for _, rel := range prev {
		if slices.Contains(now, rel) {
			continue
		}
		dst := filepath.Join(s.out, filepath.FromSlash(rel))
		st, lerr := os.Lstat(dst)
		var rerr error
		switch {
		case lerr == nil && st.Mode().IsRegular():
			rerr = s.write.remove(dst)
		case lerr != nil && !errors.Is(lerr, fs.ErrNotExist):
			rerr = lerr // it may be there: keep it listed
		}
		if rerr != nil {
			kept = append(kept, rel)
			if err == nil {
				err = fmt.Errorf("remove %s, which the previous copy wrote and this source no longer has: %w", dst, rerr)
			}
			continue
		}
		s.removeLeftovers(rel, now)
	}
	return kept, err
}

// readManifest lists the files the previous copy into dir wrote; paths
// that would leave the directory are ignored.
func readManifest(dir string) []string {
	data, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || !fs.ValidPath(line) || line == manifestName {
			continue
		}
		out = append(out, line)
	}
	return out
}
