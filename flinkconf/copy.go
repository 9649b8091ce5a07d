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

// File names Flink looks for in FLINK_CONF_DIR.
const (
	ConfigYAML = "config.yaml"     // Flink 1.19+ standard YAML
	LegacyYAML = "flink-conf.yaml" // Flink before 1.19, line based
)

// ErrConfDir is returned when the source or output directory given to
// CopyAndMerge cannot be used.
var ErrConfDir = errors.New("unusable Flink configuration directory")

// confFiles are the files of a configuration directory that Flink reads.
// Flink 2 reads config.yaml only; Flink 1.19 and 1.20 read flink-conf.yaml
// where it is there, else config.yaml (GlobalConfiguration.
// loadConfiguration). So a copy merges each one that is there, and flink
// lint checks each one.
var confFiles = []string{ConfigYAML, LegacyYAML}

// errNoConfFile says that dir holds none of confFiles.
func errNoConfFile(dir string) error {
	return fmt.Errorf("%w: %s holds neither %s nor %s", ErrConfDir, dir, ConfigYAML, LegacyYAML)
}

// ConfDirFiles returns the paths of the confFiles in the directory dir, in
// that order: the files of a Flink configuration directory that flink lint
// checks, as init --flink-conf-src merges them. None is an ErrConfDir.
func ConfDirFiles(dir string) ([]string, error) {
	var out []string
	for _, name := range confFiles {
		p := filepath.Join(dir, name)
		st, err := os.Stat(p) // the kubelet's ConfigMap files are symlinks
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("%w: %v", ErrConfDir, err)
		case !st.Mode().IsRegular():
			return nil, fmt.Errorf("%w: %s is not a file", ErrConfDir, p)
		default:
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, errNoConfFile(dir)
	}
	return out, nil
}

// maxDirDepth bounds recursion into sub-directories, which also stops
// symlink loops.
const maxDirDepth = 8

// confFile is one file of the configuration directory, held in memory so
// that nothing is written before every file has been read and merged.
type confFile struct {
	rel  string // slash-separated path below the directory
	data []byte
	perm fs.FileMode
}

// CopyAndMerge copies the Flink configuration directory src (typically the
// operator's read-only ConfigMap mount) into out and merges kvs into its
// configuration, so that FLINK_CONF_DIR can point at out. Symlinks are
// followed, and the kubelet's "..data" and "..<timestamp>" entries are
// skipped, so out holds plain files under the names a user sees.
//
// config.yaml is merged when it exists, and a legacy flink-conf.yaml when
// it exists; if neither does, config.yaml is created. Merged files hold
// passwords and are written 0600; other files 0644, or 0600 (0640) where the
// source is not readable by others (and group); out is created 0700.
// Every file is read and merged before the first is written, and each is
// written to a temporary file and renamed, so a failure never leaves a
// half-written configuration.
func CopyAndMerge(src, out string, kvs []KV) error {
	c, err := ReadConf(src, out)
	if err != nil {
		return err
	}
	return c.Write(kvs)
}

// Conf is a Flink configuration directory read into memory, to be merged
// and written into its output directory (CopyAndMerge in two steps).
type Conf struct {
	out   string
	files []confFile
}

// ReadConf checks src and out and reads src, writing nothing, so that a
// caller can refuse an unusable directory before it asks for anything.
func ReadConf(src, out string) (*Conf, error) {
	if err := checkDirs(src, out); err != nil {
		return nil, err
	}
	files, err := readConfDir(src, "", 0)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(files, func(f confFile) bool { return slices.Contains(confFiles, f.rel) }) {
		// A copy made of flinkpki's keys alone would start Flink on its
		// defaults (no jobmanager.rpc.address, no memory settings).
		return nil, fmt.Errorf("%w: is the Flink configuration mounted there? (the operator's ConfigMap, or an image's /opt/flink/conf)", errNoConfFile(src))
	}
	// Room for the whole copy, and as much again for the merged keys and
	// the files' replacement beside the old ones.
	var size int64
	for _, f := range files {
		size += int64(len(f.data))
	}
	if err := atomicfile.CheckDirRoom(out, 2*size); err != nil {
		return nil, fmt.Errorf("%w: output: %v", ErrConfDir, err)
	}
	c := &Conf{out: out, files: files}
	for _, f := range files {
		if err := c.checkDest(f.rel); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// checkDest refuses a file of the copy whose place in the output is taken
// by a directory, or below a path that is a file or a dangling symbolic
// link: its write would fail only after the caller had enrolled.
func (c *Conf) checkDest(rel string) error {
	dst := filepath.Join(c.out, filepath.FromSlash(rel))
	if st, err := os.Lstat(dst); err == nil && st.IsDir() {
		return fmt.Errorf("%w: output: %s is a directory where the copy's %s goes: remove it", ErrConfDir, dst, rel)
	}
	for d := filepath.Dir(dst); d != filepath.Clean(c.out) && d != filepath.Dir(d); d = filepath.Dir(d) {
		if st, err := os.Stat(d); err == nil && !st.IsDir() {
			return fmt.Errorf("%w: output: %s is a file where the copy needs a directory for %s: remove it", ErrConfDir, d, rel)
		}
		if err := atomicfile.DanglingLink(d); err != nil {
			return fmt.Errorf("%w: output: %v", ErrConfDir, err)
		}
	}
	return nil
}

// Check merges kvs in memory only: an error says Write would fail to merge
// keys of the same names.
func (c *Conf) Check(kvs []KV) error {
	_, err := mergeFiles(slices.Clone(c.files), kvs)
	return err
}

// Overrides names the keys of kvs that the source configuration sets to
// another value, each as "KEY (VALUE -> NEW)" for the security.ssl.* keys
// that hold no secret, else "KEY (another password)" or "KEY (another
// value)", whose values are not shown (they go to a pod's log): the copy replaces them, and
// a caller says so (the source may have asked for TLSv1.3, say). The keys
// the copy removes because they would undo its TLS (a transport's TLS
// switch, a certificate fingerprint) follow as "KEY (VALUE, removed)". A
// file that does not parse has no overrides to show; Check refuses it.
func (c *Conf) Overrides(kvs []KV) []string {
	var out []string
	seen := map[string]bool{}
	drop := unset(kvs)
	for _, f := range c.files {
		var cur []KV
		switch f.rel {
		case ConfigYAML:
			if root, err := parseSingleDocument(f.data); err == nil {
				cur, _ = Flatten(root)
			}
		case LegacyYAML:
			cur = ParseLegacy(f.data)
		default:
			continue
		}
		have := confMap(cur)
		for _, kv := range kvs {
			v, ok := have[kv.Key]
			if !ok || v == kv.Value || seen[kv.Key] {
				continue
			}
			seen[kv.Key] = true
			switch {
			case strings.Contains(kv.Key, "password"):
				out = append(out, kv.Key+" (another password)")
			case strings.HasPrefix(kv.Key, "security.ssl."):
				// Paths, store types, the protocol and suites: no secret.
				out = append(out, fmt.Sprintf("%s (%s -> %s)", kv.Key, v, kv.Value))
			default:
				// --flink-conf-set may set anything, a secret included
				// (s3.secret-key): the key alone goes to the log.
				out = append(out, kv.Key+" (another value)")
			}
		}
		for _, k := range drop {
			// Booleans and certificate fingerprints: no secret.
			if v, ok := have[k]; ok && !seen[k] {
				seen[k] = true
				out = append(out, fmt.Sprintf("%s (%s, removed)", k, v))
			}
		}
	}
	return out
}

// Write merges kvs and writes the configuration into the output directory
// (Stage, then Commit).
func (c *Conf) Write(kvs []KV) error {
	st, err := c.Stage(kvs)
	if err != nil {
		return err
	}
	return st.Commit()
}

// manifestName lists, in the output directory, the files the last copy
// wrote, one slash-separated path per line, so that the next copy removes
// those its source no longer has (a legacy flink-conf.yaml holding the
// previous run's passwords, say) and nothing a copy did not write.
const manifestName = ".flinkpki-conf-files"

// IsPodLocalCopy reports whether the configuration file at path is one a
// copy (init's --flink-conf-out, bake's) wrote: the manifest beside it
// lists it.
func IsPodLocalCopy(path string) bool {
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(path), manifestName))
	if err != nil {
		return false
	}
	return slices.Contains(strings.Split(string(raw), "\n"), filepath.Base(path))
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
}

type stagedFile struct{ rel, tmp string }

// stageFile writes data beside dst (atomicfile.Stage); tests replace it
// to fail.
var stageFile = func(dst string, data []byte, perm fs.FileMode) (string, error) {
	tmp, _, err := atomicfile.Stage(dst, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	return tmp, err
}

// Stage merges kvs and writes every file of the copy to a synced temporary
// file beside its place; on failure it removes what it wrote and nothing
// in the output has changed.
func (c *Conf) Stage(kvs []KV) (_ *Staged, err error) {
	files, err := mergeFiles(slices.Clone(c.files), kvs)
	if err != nil {
		return nil, err
	}
	st := &Staged{out: c.out}
	defer func() {
		if err != nil {
			st.Abort()
		}
	}()
	if err := st.mkdirs(c.out); err != nil {
		return nil, fmt.Errorf("create Flink configuration output %s: %w", c.out, err)
	}
	for _, f := range files {
		if err := c.checkDest(f.rel); err != nil {
			return nil, err
		}
		dst := filepath.Join(c.out, filepath.FromSlash(f.rel))
		if err := st.mkdirs(filepath.Dir(dst)); err != nil {
			return nil, fmt.Errorf("create %s: %w", filepath.Dir(dst), err)
		}
		tmp, err := stageFile(dst, f.data, f.perm)
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
	prev := s.readManifest()
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
		if err := atomicfile.Write(filepath.Join(s.out, manifestName), []byte(strings.Join(union, "\n")+"\n"), 0o600); err != nil {
			s.Abort()
			return fmt.Errorf("record the copy's files in %s: %w", s.out, atomicfile.Cause(err))
		}
	}
	s.created = nil // from here on the files are in place in them
	now := map[string]bool{}
	var list strings.Builder
	for i, f := range s.files {
		dst := filepath.Join(s.out, filepath.FromSlash(f.rel))
		if err := os.Rename(f.tmp, dst); err != nil {
			for _, rest := range s.files[i:] {
				os.Remove(rest.tmp)
			}
			return fmt.Errorf("write %s: move into place: %w", dst, atomicfile.Cause(err))
		}
		now[f.rel] = true
		list.WriteString(f.rel + "\n")
	}
	s.files = nil
	if err := atomicfile.Write(filepath.Join(s.out, manifestName), []byte(list.String()), 0o600); err != nil {
		return fmt.Errorf("record the copy's files in %s: %w", s.out, atomicfile.Cause(err))
	}
	for rel := range now {
		atomicfile.RemoveLeftovers(filepath.Join(s.out, filepath.FromSlash(rel)))
	}
	for _, rel := range prev {
		if now[rel] {
			continue
		}
		dst := filepath.Join(s.out, filepath.FromSlash(rel))
		if st, err := os.Lstat(dst); err == nil && st.Mode().IsRegular() {
			if err := os.Remove(dst); err != nil {
				return fmt.Errorf("remove %s, which the previous copy wrote and this source no longer has: %w", dst, err)
			}
		}
		atomicfile.RemoveLeftovers(dst)
	}
	return nil
}

// readManifest lists the files the previous copy wrote; paths that would
// leave the output directory are ignored.
func (s *Staged) readManifest() []string {
	data, err := os.ReadFile(filepath.Join(s.out, manifestName))
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

// mergeFiles merges kvs into config.yaml and flink-conf.yaml where present
// (both, when both exist, so the keys hold whichever one the Flink version
// reads), or adds a new config.yaml.
func mergeFiles(files []confFile, kvs []KV) ([]confFile, error) {
	drop := unset(kvs)
	merged := false
	for i := range files {
		var (
			data []byte
			err  error
		)
		switch files[i].rel {
		case ConfigYAML:
			data, err = mergeConfigYAML(files[i].data, kvs, drop)
		case LegacyYAML:
			data, err = mergeLegacy(files[i].data, kvs, drop)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("merge %s: %w", files[i].rel, err)
		}
		files[i].data, files[i].perm, merged = data, 0o600, true
	}
	if !merged {
		data, err := MergeConfigYAML(nil, kvs)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", ConfigYAML, err)
		}
		files = append(files, confFile{rel: ConfigYAML, data: data, perm: 0o600})
	}
	return files, nil
}
