package flinkconf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// checkDirs refuses a missing source, an output that is a file, and an
// output equal to or inside the source (which would copy into itself).
func checkDirs(src, out string) error {
	info, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("%w: source %s cannot be read: %v", ErrConfDir, src, err)
	}
	if !info.IsDir() {
		return fmt.Errorf("%w: source %s is not a directory: pass the directory holding config.yaml", ErrConfDir, src)
	}
	if oi, err := os.Stat(out); err == nil {
		if !oi.IsDir() {
			return fmt.Errorf("%w: output %s is an existing file: pass a directory", ErrConfDir, out)
		}
		if os.SameFile(info, oi) {
			return fmt.Errorf("%w: output %s is the source directory: pass an empty directory such as an emptyDir mount", ErrConfDir, out)
		}
	}
	if _, err := filepath.EvalSymlinks(src); err != nil {
		return fmt.Errorf("%w: source %s cannot be resolved: %v", ErrConfDir, src, err)
	}
	in, err := Within(out, src)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrConfDir, err)
	}
	if in {
		return fmt.Errorf("%w: output %s lies inside the source %s: pass a directory outside it", ErrConfDir, out, src)
	}
	return nil
}

// Within reports whether the path p is the directory dir or lies below it,
// with the symbolic links in the longest existing prefix of each resolved:
// a copy's output, or a credential file set, inside the source would be
// copied along by the next run.
func Within(p, dir string) (bool, error) {
	absP, err1 := filepath.Abs(resolveExisting(p))
	absDir, err2 := filepath.Abs(resolveExisting(dir))
	if err := errors.Join(err1, err2); err != nil {
		return false, err
	}
	rel, err := filepath.Rel(absDir, absP)
	if err != nil {
		return false, err
	}
	return rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)), nil
}

// resolveExisting resolves symlinks in the longest existing prefix of p.
func resolveExisting(p string) string {
	p = filepath.Clean(p)
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	parent := filepath.Dir(p)
	if parent == p {
		return p
	}
	return filepath.Join(resolveExisting(parent), filepath.Base(p))
}

// maxDirDepth bounds recursion into sub-directories, which also stops
// symlink loops.
const maxDirDepth = 8

// readConfDir reads the regular files of dir (following symlinks) into
// memory. Names starting with ".." are the kubelet's atomic-update
// bookkeeping and are skipped.
func readConfDir(dir, rel string, depth int) ([]confFile, error) {
	if depth > maxDirDepth {
		return nil, fmt.Errorf("%w: %s nests more than %d directories deep (a symlink loop?)", ErrConfDir, dir, maxDirDepth)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %v", ErrConfDir, dir, err)
	}
	var files []confFile
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "..") {
			continue
		}
		p := filepath.Join(dir, name)
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %s cannot be read (a dangling symlink?): %v", ErrConfDir, p, err)
		}
		r := joinRel(rel, name)
		switch {
		case info.IsDir():
			sub, err := readConfDir(p, r, depth+1)
			if err != nil {
				return nil, err
			}
			files = append(files, sub...)
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("%w: read %s: %v", ErrConfDir, p, err)
			}
			// Readable by group and others only where the source is: a
			// keytab kept 0600 in the source stays so in the copy.
			files = append(files, confFile{rel: r, data: data, perm: 0o600 | info.Mode().Perm()&0o044})
		}
	}
	return files, nil
}

func joinRel(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}
