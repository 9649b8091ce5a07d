package flinkconf

import (
	"bytes"
	"errors"
	"fmt"
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
	write writes
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
	c := &Conf{out: out, files: files, write: fileWrites}
	ours := readManifest(out)
	for _, f := range files {
		if err := c.checkDest(f.rel, f.data, ours); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// checkDest refuses a file of the copy whose place in the output is taken
// by a directory, or below a path that is a file or a dangling symbolic
// link: its write would fail only after the caller had enrolled. It also
// refuses to replace a file that no earlier copy wrote (ours, the output's
// manifest, does not list it) unless it holds what the source does: the
// copy would silently lose what someone else put there. src is the
// source's file of that name, unmerged.
func (c *Conf) checkDest(rel string, src []byte, ours []string) error {
	dst := filepath.Join(c.out, filepath.FromSlash(rel))
	st, err := os.Lstat(dst)
	if err == nil && st.IsDir() {
		return fmt.Errorf("%w: output: %s is a directory where the copy's %s goes: remove it", ErrConfDir, dst, rel)
	}
	if err == nil && !slices.Contains(ours, rel) && !sameContent(dst, st, src) {
		return fmt.Errorf("%w: output: %s already exists and was not written by flinkpki (%s does not list it); move it away or choose another --flink-conf-out", ErrConfDir, dst, manifestName)
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

// source is the source's file rel as read, or nil.
func (c *Conf) source(rel string) []byte {
	for _, f := range c.files {
		if f.rel == rel {
			return f.data
		}
	}
	return nil
}

// sameContent reports whether the regular file dst (st its Lstat) holds
// data: replacing it loses nothing.
func sameContent(dst string, st fs.FileInfo, data []byte) bool {
	if !st.Mode().IsRegular() || st.Size() != int64(len(data)) {
		return false
	}
	have, err := os.ReadFile(dst)
	return err == nil && bytes.Equal(have, data)
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
// switch, a certificate fingerprint) or describe other stores (a store
// type the copy leaves unset) follow as "KEY (VALUE, removed)". A
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
			// Booleans, certificate fingerprints, store types: no secret.
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
