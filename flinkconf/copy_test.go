package flinkconf

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeTree writes files (slash-separated relative path -> content) below dir.
func writeTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// makeReadOnly removes write bits below dir, as a ConfigMap mount has none,
// and restores them on cleanup so t.TempDir can remove the tree.
func makeReadOnly(t testing.TB, dir string) {
	t.Helper()
	chmodTree(t, dir, 0o444, 0o555)
	t.Cleanup(func() { chmodTree(t, dir, 0o644, 0o755) })
}

func chmodTree(t testing.TB, dir string, filePerm, dirPerm fs.FileMode) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		if d.IsDir() {
			return os.Chmod(p, dirPerm)
		}
		return os.Chmod(p, filePerm)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// kubeletMount lays out files the way the kubelet mounts a ConfigMap: the
// content in a "..<timestamp>" directory, "..data" pointing at it, and each
// user-visible name a symlink through "..data".
func kubeletMount(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	ts := "..2026_01_02_03_04_05.123456789"
	writeTree(t, filepath.Join(dir, ts), files)
	if err := os.Symlink(ts, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for rel := range files {
		top := strings.SplitN(rel, "/", 2)[0]
		link := filepath.Join(dir, top)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", top), link); err != nil {
			t.Fatal(err)
		}
	}
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func assertMode(t testing.TB, p string, want fs.FileMode) {
	t.Helper()
	info, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("mode of %s = %o, want %o", p, got, want)
	}
}

const nestedConfig = `# operator-rendered configuration
jobmanager:
  rpc:
    address: orders-jm
security:
  ssl:
    internal:
      enabled: false
taskmanager.numberOfTaskSlots: 2
`

func TestCopyAndMergeCopiesTheWholeDirectory(t *testing.T) {
	tests := []struct {
		name   string
		layout func(t testing.TB, dir string, files map[string]string)
	}{
		{"a read-only plain directory is copied whole", func(t testing.TB, dir string, files map[string]string) {
			writeTree(t, dir, files)
			makeReadOnly(t, dir)
		}},
		{"a kubelet-style symlinked ConfigMap mount is copied under the visible names", func(t testing.TB, dir string, files map[string]string) {
			kubeletMount(t, dir, files)
			makeReadOnly(t, dir)
		}},
	}
	files := map[string]string{
		"config.yaml":              nestedConfig,
		"log4j-console.properties": "rootLogger.level = INFO\n",
		"logback-console.xml":      "<configuration/>\n",
		"extra/notes.txt":          "nested file\n",
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "conf")
			out := filepath.Join(t.TempDir(), "flink-conf")
			tt.layout(t, src, files)
			kvs := testKeys(t, "/flink-tls")

			if err := CopyAndMerge(src, out, kvs); err != nil {
				t.Fatalf("CopyAndMerge: %v", err)
			}

			got := flattenYAML(t, readFile(t, filepath.Join(out, ConfigYAML)))
			assertMerged(t, got, kvs)
			if vs := got["jobmanager.rpc.address"]; len(vs) != 1 || vs[0] != "orders-jm" {
				t.Errorf("jobmanager.rpc.address = %q, want [orders-jm]", vs)
			}
			for _, kv := range kvs {
				if strings.HasSuffix(kv.Key, "store") && !filepath.IsAbs(got[kv.Key][0]) {
					t.Errorf("%s = %q, want an absolute path", kv.Key, got[kv.Key][0])
				}
			}
			for rel, content := range files {
				if rel == ConfigYAML {
					continue
				}
				p := filepath.Join(out, filepath.FromSlash(rel))
				if string(readFile(t, p)) != content {
					t.Errorf("%s was not copied verbatim", rel)
				}
				if info, err := os.Lstat(p); err != nil || !info.Mode().IsRegular() {
					t.Errorf("%s is not a regular file in the copy", rel)
				}
				assertMode(t, p, 0o644)
			}
			assertMode(t, filepath.Join(out, ConfigYAML), 0o600)
			assertMode(t, out, 0o700)
			entries, err := os.ReadDir(out)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ".") && e.Name() != manifestName {
					t.Errorf("the copy holds %s; kubelet bookkeeping and temp files must not appear", e.Name())
				}
			}
			if m := string(readFile(t, filepath.Join(out, manifestName))); !strings.Contains(m, ConfigYAML+"\n") {
				t.Errorf("the manifest of the copy's files lacks %s:\n%s", ConfigYAML, m)
			}
			if string(readFile(t, filepath.Join(src, ConfigYAML))) != nestedConfig {
				t.Error("the source config.yaml was modified")
			}
		})
	}
}

func TestCopyAndMergePicksTheConfigFile(t *testing.T) {
	tests := []struct {
		name   string
		files  map[string]string
		merged []string // files that must hold our keys
	}{
		{"a legacy flink-conf.yaml alone is merged line by line", map[string]string{LegacyYAML: "jobmanager.rpc.address: jm\nenv.java.opts: -Da=b: c\n"}, []string{LegacyYAML}},
		{"both files are merged when both exist", map[string]string{ConfigYAML: "a: 1\n", LegacyYAML: "a: 1\n"}, []string{ConfigYAML, LegacyYAML}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, out := t.TempDir(), filepath.Join(t.TempDir(), "out")
			writeTree(t, src, tt.files)
			kvs := testKeys(t, "/flink-tls")
			if err := CopyAndMerge(src, out, kvs); err != nil {
				t.Fatalf("CopyAndMerge: %v", err)
			}
			for _, name := range tt.merged {
				data := readFile(t, filepath.Join(out, name))
				got := map[string][]string{}
				if name == LegacyYAML {
					for _, kv := range ParseLegacy(data) {
						got[kv.Key] = append(got[kv.Key], kv.Value)
					}
					if vs := got["env.java.opts"]; len(tt.files) == 1 && (len(vs) != 1 || vs[0] != "-Da=b: c") {
						t.Errorf("env.java.opts = %q, want it kept", vs)
					}
				} else {
					got = flattenYAML(t, data)
				}
				assertMerged(t, got, kvs)
				assertMode(t, filepath.Join(out, name), 0o600)
			}
			if _, err := os.Stat(filepath.Join(out, ConfigYAML)); tt.merged[0] == LegacyYAML && err == nil {
				t.Error("a config.yaml was created beside the legacy flink-conf.yaml")
			}
		})
	}
}

func TestCopyAndMergeRefusesBadDirectories(t *testing.T) {
	tests := []struct {
		name    string
		dirs    func(t testing.TB) (src, out string)
		wantErr error
	}{
		{"a missing source is refused", func(t testing.TB) (string, string) {
			return filepath.Join(t.TempDir(), "missing"), t.TempDir()
		}, ErrConfDir},
		{"a source that is a file is refused", func(t testing.TB) (string, string) {
			dir := t.TempDir()
			writeTree(t, dir, map[string]string{"config.yaml": "a: 1\n"})
			return filepath.Join(dir, "config.yaml"), t.TempDir()
		}, ErrConfDir},
		{"an output that is an existing file is refused", func(t testing.TB) (string, string) {
			dir := t.TempDir()
			writeTree(t, dir, map[string]string{"file": "x"})
			return t.TempDir(), filepath.Join(dir, "file")
		}, ErrConfDir},
		{"an output equal to the source is refused", func(t testing.TB) (string, string) {
			dir := t.TempDir()
			return dir, dir + "/."
		}, ErrConfDir},
		{"an output inside the source is refused", func(t testing.TB) (string, string) {
			dir := t.TempDir()
			return dir, filepath.Join(dir, "copy")
		}, ErrConfDir},
		{"a broken config.yaml is refused before anything is written", func(t testing.TB) (string, string) {
			dir := t.TempDir()
			writeTree(t, dir, map[string]string{"config.yaml": "a: [1\n", "log4j.properties": "x=y\n"})
			return dir, filepath.Join(t.TempDir(), "out")
		}, ErrUnmergeable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, out := tt.dirs(t)
			err := CopyAndMerge(src, out, testKeys(t, "/flink-tls"))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CopyAndMerge error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == ErrUnmergeable {
				if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("the output %s exists after a failed merge", out)
				}
			}
		})
	}
}

// TestReadConfRefusesADanglingLinkInTheOutput: a symbolic link to nothing,
// as the output or where the copy needs a sub-directory, cannot be created
// by Stage's os.MkdirAll, so ReadConf, which runs before the caller
// enrolls, refuses it and names the link.
func TestReadConfRefusesADanglingLinkInTheOutput(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]string{ConfigYAML: "a: 1\n", "sub/log4j.properties": "x=y\n"})
	base := t.TempDir()
	asOut := filepath.Join(base, "conf")
	if err := os.Symlink(filepath.Join(base, "missing"), asOut); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(base, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	asSub := filepath.Join(out, "sub")
	if err := os.Symlink("missing", asSub); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ out, link string }{{asOut, asOut}, {out, asSub}} {
		_, err := ReadConf(src, tt.out)
		if !errors.Is(err, ErrConfDir) || !strings.Contains(err.Error(), tt.link+" is a symbolic link to ") {
			t.Errorf("ReadConf(%s) = %v, want ErrConfDir naming the link %s", tt.out, err, tt.link)
		}
	}
}

func TestCopyAndMergeReplacesAnEarlierCopy(t *testing.T) {
	src, out := t.TempDir(), filepath.Join(t.TempDir(), "out")
	writeTree(t, src, map[string]string{ConfigYAML: "a: 1\n"})
	first := testKeys(t, "/first")
	second := testKeys(t, "/second")
	for _, kvs := range [][]KV{first, second} {
		if err := CopyAndMerge(src, out, kvs); err != nil {
			t.Fatalf("CopyAndMerge: %v", err)
		}
	}
	got := flattenYAML(t, readFile(t, filepath.Join(out, ConfigYAML)))
	assertMerged(t, got, second)
}

// TestACopyRemovesWhatItsSourceNoLongerHas: an output directory that
// outlived its pod (an emptyDir after a sandbox restart) keeps the earlier
// copy. The next copy removes the files the earlier one wrote and the
// source no longer has (a legacy flink-conf.yaml with the earlier run's
// passwords, which Flink 1.x would read first) and the temporary files of
// a killed run (its manifest's and its space probe's too), and keeps files
// it never wrote.
func TestACopyRemovesWhatItsSourceNoLongerHas(t *testing.T) {
	src1, src2, out := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "out")
	writeTree(t, src1, map[string]string{ConfigYAML: "a: 1\n", LegacyYAML: "a: 1\n", "log4j.properties": "x=y\n", "sub/extra.properties": "z=1\n"})
	writeTree(t, src2, map[string]string{ConfigYAML: "a: 2\n"})
	if err := CopyAndMerge(src1, out, testKeys(t, "/first")); err != nil {
		t.Fatal(err)
	}
	killed := map[string]string{"mine.txt": "not the copy's\n", "." + ConfigYAML + ".tmp-123": "old: password\n", "." + manifestName + ".tmp-456": ConfigYAML + "\n", ".flinkpki-probe-789/space": "\x00"}
	writeTree(t, out, killed)
	if err := CopyAndMerge(src2, out, testKeys(t, "/second")); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{LegacyYAML, "log4j.properties", "sub/extra.properties", "." + ConfigYAML + ".tmp-123", "." + manifestName + ".tmp-456", ".flinkpki-probe-789"} {
		if _, err := os.Lstat(filepath.Join(out, gone)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still in the output after a copy from a source without it (err %v)", gone, err)
		}
	}
	if string(readFile(t, filepath.Join(out, "mine.txt"))) != "not the copy's\n" {
		t.Error("the copy removed a file it never wrote")
	}
	assertMerged(t, flattenYAML(t, readFile(t, filepath.Join(out, ConfigYAML))), testKeys(t, "/second"))
}

// TestACopyThatCannotBeWrittenIsRefusedOrChangesNothing: a directory where
// a file of the copy goes is refused when the configuration is read (before
// init enrolls and spends a token); a failure while staging (a full disk,
// here the third temporary file) removes what it staged and leaves every
// file of the earlier copy as it was; nothing is in place before Commit.
func TestACopyThatCannotBeWrittenIsRefusedOrChangesNothing(t *testing.T) {
	src, out := t.TempDir(), filepath.Join(t.TempDir(), "out")
	writeTree(t, src, map[string]string{ConfigYAML: "a: 1\n", "log4j.properties": "x=y\n", "logback.xml": "<configuration/>\n"})
	if err := CopyAndMerge(src, out, testKeys(t, "/first")); err != nil {
		t.Fatal(err)
	}
	before := readTree(t, out)

	if err := os.Remove(filepath.Join(out, "logback.xml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(out, "logback.xml"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadConf(src, out); !errors.Is(err, ErrConfDir) || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("ReadConf with a directory where logback.xml goes: %v, want ErrConfDir naming it", err)
	}
	os.Remove(filepath.Join(out, "logback.xml"))
	if err := os.WriteFile(filepath.Join(out, "logback.xml"), []byte(before["logback.xml"]), 0o644); err != nil {
		t.Fatal(err)
	}

	c, err := ReadConf(src, out)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	stage := c.write.stage
	c.write.stage = func(dst string, data []byte, perm fs.FileMode) (string, error) {
		if calls++; calls == 3 {
			return "", errors.New("no space left on device")
		}
		return stage(dst, data, perm)
	}
	if _, err := c.Stage(testKeys(t, "/second")); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("Stage with a failing third file: %v, want the failure", err)
	}
	if after := readTree(t, out); !maps.Equal(after, before) {
		t.Errorf("a failed stage changed the output:\nbefore %v\nafter  %v", before, after)
	}
	c.write.stage = stage
	st, err := c.Stage(testKeys(t, "/second"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg := readTree(t, out)[ConfigYAML]; cfg != before[ConfigYAML] {
		t.Error("Stage put config.yaml in place before Commit")
	}
	if err := st.Commit(); err != nil {
		t.Fatal(err)
	}
	assertMerged(t, flattenYAML(t, readFile(t, filepath.Join(out, ConfigYAML))), testKeys(t, "/second"))
	for name := range readTree(t, out) {
		if strings.Contains(name, ".tmp-") {
			t.Errorf("a temporary file is left: %s", name)
		}
	}
}

// readTree maps each regular file below dir (slash paths) to its content.
func readTree(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(readFile(t, p))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestConfDirFilesAreTheOnesInitMerges: flink lint DIR checks the files of
// a configuration directory that ReadConf takes as its configuration (and
// refuses a directory without), in the same order: config.yaml, then
// flink-conf.yaml, each that is there at the top.
func TestConfDirFilesAreTheOnesInitMerges(t *testing.T) {
	for _, tt := range []struct {
		name  string
		files map[string]string
		want  []string // nil: refused
	}{
		{"config.yaml", map[string]string{ConfigYAML: "a: 1\n", "log4j.properties": "x=y\n"}, []string{ConfigYAML}},
		{"flink-conf.yaml", map[string]string{LegacyYAML: "a: 1\n"}, []string{LegacyYAML}},
		{"both", map[string]string{LegacyYAML: "a: 1\n", ConfigYAML: "a: 1\n"}, []string{ConfigYAML, LegacyYAML}},
		{"neither", map[string]string{"log4j.properties": "x=y\n"}, nil},
		{"one level down only", map[string]string{"conf/config.yaml": "a: 1\n"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, tt.files)
			got, err := ConfDirFiles(dir)
			_, readErr := ReadConf(dir, filepath.Join(t.TempDir(), "out"))
			if tt.want == nil {
				if !errors.Is(err, ErrConfDir) || err.Error() != "unusable Flink configuration directory: "+dir+" holds neither config.yaml nor flink-conf.yaml" || readErr == nil {
					t.Errorf("ConfDirFiles = %v, %v (ReadConf: %v); want both refused", got, err, readErr)
				}
				return
			}
			var want []string
			for _, name := range tt.want {
				want = append(want, filepath.Join(dir, name))
			}
			if err != nil || !slices.Equal(got, want) || readErr != nil {
				t.Errorf("ConfDirFiles = %v, %v (ReadConf: %v); want %v", got, err, readErr, want)
			}
		})
	}
}

// TestReadConfRefusesASourceWithoutAConfigurationFile: a source directory
// with neither config.yaml nor flink-conf.yaml is a ConfigMap mounted in
// the wrong place (or not at all): a copy of flinkpki's keys alone would
// start Flink on its defaults, so it is refused before anything is written.
func TestReadConfRefusesASourceWithoutAConfigurationFile(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"an empty directory":           {},
		"log4j alone":                  {"log4j-console.properties": "x=y\n"},
		"a config.yaml one level down": {"conf/config.yaml": "a: 1\n"},
	} {
		src, out := t.TempDir(), filepath.Join(t.TempDir(), "out")
		writeTree(t, src, files)
		_, err := ReadConf(src, out)
		if !errors.Is(err, ErrConfDir) || !strings.Contains(err.Error(), "holds neither config.yaml nor flink-conf.yaml") {
			t.Errorf("%s: ReadConf = %v, want it refused", name, err)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: the refused copy created %s", name, out)
		}
	}
}

// TestOverridesNamesWhatTheCopyReplaces: the keys the merge replaces with
// another value are named with both values, a password without either;
// keys the source sets to the same value, or not at all, are not.
func TestOverridesNamesWhatTheCopyReplaces(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]string{
		ConfigYAML: "security:\n  ssl:\n    protocol: TLSv1.3\n    internal:\n      keystore-password: old-secret\n      enabled: true\n",
		LegacyYAML: "security.ssl.protocol: TLSv1.3\nsecurity.ssl.algorithms: TLS_AES_128_GCM_SHA256\n",
	})
	c, err := ReadConf(src, filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Overrides([]KV{
		{Key: "security.ssl.protocol", Value: "TLSv1.2"},
		{Key: "security.ssl.internal.keystore-password", Value: "new-secret"},
		{Key: "security.ssl.internal.enabled", Value: "true"},
		{Key: "security.ssl.algorithms", Value: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
		{Key: "security.ssl.internal.truststore", Value: "/flink-tls/truststore.p12"},
	})
	want := []string{
		"security.ssl.protocol (TLSv1.3 -> TLSv1.2)",
		"security.ssl.internal.keystore-password (another password)",
		"security.ssl.algorithms (TLS_AES_128_GCM_SHA256 -> TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Overrides = %q, want %q", got, want)
	}
	for _, o := range got {
		if strings.Contains(o, "secret") {
			t.Errorf("an override shows a password: %q", o)
		}
	}
}

// TestACommitCutShortLeavesNoFileTheManifestForgets: the manifest lists a
// copy's new files before the first is moved into place, so a commit cut
// short among its renames (a kill, here a rename that fails) leaves every
// file it put in place on the list, and the next copy can remove those
// its source no longer has.
func TestACommitCutShortLeavesNoFileTheManifestForgets(t *testing.T) {
	src, out := t.TempDir(), filepath.Join(t.TempDir(), "out")
	writeTree(t, src, map[string]string{ConfigYAML: "a: 1\n", "old.txt": "x\n"})
	if err := CopyAndMerge(src, out, testKeys(t, "/tls")); err != nil {
		t.Fatal(err)
	}
	src2 := t.TempDir()
	writeTree(t, src2, map[string]string{"a-new.txt": "n\n", ConfigYAML: "a: 2\n", "z.txt": "z\n"})
	c, err := ReadConf(src2, out)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Stage(testKeys(t, "/tls"))
	if err != nil {
		t.Fatal(err)
	}
	// z.txt cannot be moved into place: a non-empty directory took it.
	if err := os.MkdirAll(filepath.Join(out, "z.txt", "busy"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(); err == nil {
		t.Fatal("Commit moved a file onto a non-empty directory")
	}
	if _, err := os.Stat(filepath.Join(out, "a-new.txt")); err != nil {
		t.Fatalf("the file renamed before the failure is not in place: %v", err)
	}
	m := string(readFile(t, filepath.Join(out, manifestName)))
	for _, want := range []string{"a-new.txt", "old.txt", ConfigYAML} {
		if !slices.Contains(strings.Split(m, "\n"), want) {
			t.Errorf("after the cut-short commit the manifest lacks %s:\n%s", want, m)
		}
	}
	// The next copy, from a source with config.yaml alone, removes both.
	os.RemoveAll(filepath.Join(out, "z.txt"))
	copyConfigAloneRemoves(t, out, "a-new.txt", "old.txt")
}

// copyConfigAloneRemoves copies a source holding config.yaml alone into
// out and checks that the files gone are: a copy removes what the copies
// before it wrote and its source no longer has.
func copyConfigAloneRemoves(t *testing.T, out string, gone ...string) {
	t.Helper()
	src := t.TempDir()
	writeTree(t, src, map[string]string{ConfigYAML: "a: 3\n"})
	if err := CopyAndMerge(src, out, testKeys(t, "/tls")); err != nil {
		t.Fatal(err)
	}
	for _, g := range gone {
		if _, err := os.Stat(filepath.Join(out, g)); !os.IsNotExist(err) {
			t.Errorf("%s outlived the copies whose sources dropped it", g)
		}
	}
}

// TestOverridesNeverShowASecretValue: init and bake print
// Overrides on stderr (the init container's log). A key that Flink itself
// treats as sensitive (secret, token, fs.azure.account.key, ...) must be
// named without its old or new value, as passwords are.
func TestOverridesNeverShowASecretValue(t *testing.T) {
	src, out := t.TempDir(), filepath.Join(t.TempDir(), "conf")
	if err := os.WriteFile(filepath.Join(src, ConfigYAML), []byte("s3.secret-key: OLD-SECRET-VALUE\nrest.port: 8081\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := ReadConf(src, out)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(c.Overrides([]KV{{Key: "s3.secret-key", Value: "NEW-SECRET-VALUE"}}), "; ")
	if strings.Contains(got, "SECRET-VALUE") || got != "s3.secret-key (another value)" {
		t.Errorf("Overrides = %q, want the key alone", got)
	}
}

// TestACopyRemovesWhatWouldUndoItsTLS: a source that keeps internal SSL on
// but turns TLS off for the RPC, the blob server or the data plane, or
// pins peer leaves by fingerprint (which makes Flink ignore the truststore
// the copy names, and refuse the next pod's new leaf), gets none of that
// into the copy, flat or nested, config.yaml or legacy file; the note
// names each removal with its value.
func TestACopyRemovesWhatWouldUndoItsTLS(t *testing.T) {
	src, out := t.TempDir(), filepath.Join(t.TempDir(), "conf")
	writeTree(t, src, map[string]string{
		ConfigYAML: "pekko.ssl.enabled: false\nblob.service.ssl.enabled: 'false'\n" +
			"taskmanager:\n  numberOfTaskSlots: 2\n  data:\n    ssl:\n      enabled: false\n" +
			"security:\n  ssl:\n    internal:\n      cert:\n        fingerprint: 'AA:BB'\n    rest:\n      cert.fingerprint: CC:DD\n",
		LegacyYAML: "akka.ssl.enabled: false\ntaskmanager.data.ssl.enabled: false\nsecurity.ssl.internal.cert.fingerprint: AA:BB\nparallelism.default: 3\n",
	})
	kvs := testKeys(t, "/tls")
	c, err := ReadConf(src, out)
	if err != nil {
		t.Fatal(err)
	}
	got := c.Overrides(kvs)
	want := []string{
		"pekko.ssl.enabled (false, removed)",
		"blob.service.ssl.enabled (false, removed)",
		"taskmanager.data.ssl.enabled (false, removed)",
		"security.ssl.internal.cert.fingerprint (AA:BB, removed)",
		"akka.ssl.enabled (false, removed)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Overrides = %q,\nwant %q", got, want)
	}
	if err := c.Write(kvs); err != nil {
		t.Fatal(err)
	}
	flat := flattenYAML(t, readFile(t, filepath.Join(out, ConfigYAML)))
	for _, k := range append(slices.Clone(TransportSSLKeys), "security.ssl.internal.cert.fingerprint") {
		if v, ok := flat[k]; ok {
			t.Errorf("config.yaml copy still sets %s: %q", k, v)
		}
	}
	if v := flat["taskmanager.numberOfTaskSlots"]; !slices.Equal(v, []string{"2"}) {
		t.Errorf("taskmanager.numberOfTaskSlots = %q, want the source's 2 kept", v)
	}
	// Internal keys alone leave REST's pinning to the REST material.
	if v := flat["security.ssl.rest.cert.fingerprint"]; !slices.Equal(v, []string{"CC:DD"}) {
		t.Errorf("security.ssl.rest.cert.fingerprint = %q, want it kept without REST keys", v)
	}
	legacy := confMap(ParseLegacy(readFile(t, filepath.Join(out, LegacyYAML))))
	for _, k := range []string{"akka.ssl.enabled", "taskmanager.data.ssl.enabled", "security.ssl.internal.cert.fingerprint"} {
		if v, ok := legacy[k]; ok {
			t.Errorf("flink-conf.yaml copy still sets %s: %q", k, v)
		}
	}
	if legacy["parallelism.default"] != "3" {
		t.Errorf("flink-conf.yaml copy lost parallelism.default: %v", legacy)
	}

	// REST material removes REST's fingerprint, and no internal switch.
	rest, err := InternalSSL{Keystore: "/r/k.p12", KeystorePassword: "p", KeyPassword: "p", KeystoreType: "PKCS12",
		Truststore: "/r/t.p12", TruststorePassword: "p", TruststoreType: "PKCS12", KeyAlgorithm: x509.ECDSA}.RESTKeys()
	if err != nil {
		t.Fatal(err)
	}
	if got := unset(rest); !slices.Equal(got, []string{"security.ssl.rest.cert.fingerprint"}) {
		t.Errorf("unset(REST keys) = %q, want the REST fingerprint alone", got)
	}
}

// TestALegacyCopyDropsTheSourcesStoreTypes: keys for Flink before 1.20
// (LegacyStoreTypes) name no store types, so a source's
// security.ssl.internal.keystore-type and truststore-type would describe
// the copy's stores, and Flink 1.20+ would open them as BCFKS and fail
// (found by the Flink review). The copy drops them, and says so; a
// REST type stays while the copy names no REST stores.
func TestALegacyCopyDropsTheSourcesStoreTypes(t *testing.T) {
	src, out := t.TempDir(), filepath.Join(t.TempDir(), "conf")
	writeTree(t, src, map[string]string{
		ConfigYAML: "security:\n  ssl:\n    internal:\n      keystore-type: BCFKS\n      truststore-type: BCFKS\n    rest:\n      keystore-type: JKS\n",
	})
	kvs, err := InternalSSL{Keystore: "/tls/keystore.p12", KeystorePassword: "p", KeyPassword: "p", KeystoreType: "PKCS12",
		Truststore: "/tls/truststore.p12", TruststorePassword: "p", TruststoreType: "PKCS12", KeyAlgorithm: x509.ECDSA, LegacyStoreTypes: true}.Keys()
	if err != nil {
		t.Fatal(err)
	}
	c, err := ReadConf(src, out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"security.ssl.internal.keystore-type (BCFKS, removed)", "security.ssl.internal.truststore-type (BCFKS, removed)"}
	if got := c.Overrides(kvs); !slices.Equal(got, want) {
		t.Errorf("Overrides = %q,\nwant %q", got, want)
	}
	if err := c.Write(kvs); err != nil {
		t.Fatal(err)
	}
	flat := flattenYAML(t, readFile(t, filepath.Join(out, ConfigYAML)))
	for _, k := range []string{"security.ssl.internal.keystore-type", "security.ssl.internal.truststore-type"} {
		if v, ok := flat[k]; ok {
			t.Errorf("the copy still sets %s: %q", k, v)
		}
	}
	if v := flat["security.ssl.rest.keystore-type"]; !slices.Equal(v, []string{"JKS"}) {
		t.Errorf("security.ssl.rest.keystore-type = %q, want the source's JKS kept without REST keys", v)
	}
}

// TestACopyKeepsWhatTheSourceKeepsPrivate: a file that the source keeps
// from other users (a Kerberos keytab, 0600) is not made world-readable in
// the copy, whatever the umask.
func TestACopyKeepsWhatTheSourceKeepsPrivate(t *testing.T) {
	src, out := t.TempDir(), filepath.Join(t.TempDir(), "conf")
	writeTree(t, src, map[string]string{ConfigYAML: "a: 1\n", "krb5.keytab": "secret\n", "group.txt": "g\n", "log4j.properties": "x\n"})
	for name, mode := range map[string]fs.FileMode{"krb5.keytab": 0o600, "group.txt": 0o640, "log4j.properties": 0o444} {
		if err := os.Chmod(filepath.Join(src, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := CopyAndMerge(src, out, testKeys(t, "/tls")); err != nil {
		t.Fatal(err)
	}
	assertMode(t, filepath.Join(out, "krb5.keytab"), 0o600)
	assertMode(t, filepath.Join(out, "group.txt"), 0o640)
	assertMode(t, filepath.Join(out, "log4j.properties"), 0o644)
}

// TestACopyTakesOthersWriteOffAnExistingOutput: whoever may write into the
// output could put a configuration of their own in place of the copy (its
// keystore paths, its passwords): a copy takes the write permission of
// group and others off an existing output directory of its own user, and
// leaves reading as it was.
func TestACopyTakesOthersWriteOffAnExistingOutput(t *testing.T) {
	src, out := t.TempDir(), filepath.Join(t.TempDir(), "conf")
	writeTree(t, src, map[string]string{ConfigYAML: "a: 1\n"})
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(out, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := CopyAndMerge(src, out, testKeys(t, "/tls")); err != nil {
		t.Fatal(err)
	}
	assertMode(t, out, 0o755)
}

// TestWithinResolvesLinksAndComparesWholeNames: Within compares paths by
// whole components after resolving the links that exist, so a sibling
// whose name starts like the directory's is not inside it, and a link to
// the directory is the directory.
func TestWithinResolvesLinksAndComparesWholeNames(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "conf")
	writeTree(t, conf, map[string]string{ConfigYAML: "a: 1\n"})
	link := filepath.Join(dir, "link")
	if err := os.Symlink(conf, link); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		p, dir string
		want   bool
	}{
		{"the directory itself is within", conf, conf, true},
		{"a missing path below it is within", filepath.Join(conf, "tls", "x"), conf, true},
		{"a path below a link to it is within", filepath.Join(link, "tls"), conf, true},
		{"a path below it is within a link to it", filepath.Join(conf, "tls"), link, true},
		{"a sibling with a longer name is not", conf + "-tls", conf, false},
		{"a sibling starting with two dots is not", filepath.Join(dir, "..conf"), conf, false},
		{"its parent is not", dir, conf, false},
		{"everything is within the root", conf, "/", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := Within(tt.p, tt.dir); err != nil || got != tt.want {
				t.Errorf("Within(%s, %s) = %v, %v; want %v", tt.p, tt.dir, got, err, tt.want)
			}
		})
	}
}

// TestAbortRemovesTheDirectoriesStageCreated: a copy staged and then
// aborted (the credential set could not be written, a later file could not
// be staged) leaves no empty output directory, sub-directory or missing
// parent behind, and removes nothing that was there before.
func TestAbortRemovesTheDirectoriesStageCreated(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]string{ConfigYAML: "a: 1\n", "sub/log4j.properties": "x=y\n", "zz.properties": "z=1\n"})
	t.Run("an aborted stage into a new output leaves nothing", func(t *testing.T) {
		base := t.TempDir()
		c, err := ReadConf(src, filepath.Join(base, "new", "conf"))
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.Stage(testKeys(t, "/tls"))
		if err != nil {
			t.Fatal(err)
		}
		st.Abort()
		if entries, _ := os.ReadDir(base); len(entries) != 0 {
			t.Errorf("Abort left %v in %s", entries, base)
		}
	})
	t.Run("a failed stage into a new output leaves nothing", func(t *testing.T) {
		base := t.TempDir()
		c, err := ReadConf(src, filepath.Join(base, "conf"))
		if err != nil {
			t.Fatal(err)
		}
		stage := c.write.stage
		c.write.stage = func(dst string, data []byte, perm fs.FileMode) (string, error) {
			if filepath.Base(dst) == "zz.properties" {
				return "", errors.New("no space left on device")
			}
			return stage(dst, data, perm)
		}
		if _, err := c.Stage(testKeys(t, "/tls")); err == nil {
			t.Fatal("Stage with a failing file succeeded")
		}
		if entries, _ := os.ReadDir(base); len(entries) != 0 {
			t.Errorf("a failed Stage left %v in %s", entries, base)
		}
	})
	t.Run("an aborted stage into an earlier copy keeps it", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "conf")
		if err := CopyAndMerge(src, out, testKeys(t, "/first")); err != nil {
			t.Fatal(err)
		}
		before := readTree(t, out)
		c, err := ReadConf(src, out)
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.Stage(testKeys(t, "/second"))
		if err != nil {
			t.Fatal(err)
		}
		st.Abort()
		if after := readTree(t, out); !maps.Equal(after, before) {
			t.Errorf("Abort changed the earlier copy:\nbefore %v\nafter  %v", before, after)
		}
	})
}

// TestACopyNeverReplacesAFileItDidNotWrite: an output directory holding
// files no copy wrote (an image's own /opt/flink/conf, a file someone put
// there) is refused when the configuration is read, naming the file,
// before anything is written; a file that holds what the source does may
// be replaced (nothing is lost), and so may the files an earlier copy
// wrote (the manifest lists them).
func TestACopyNeverReplacesAFileItDidNotWrite(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]string{ConfigYAML: "a: 1\n", "log4j.properties": "x=y\n"})
	for _, tt := range []struct {
		name, file, content string
		refused             bool
	}{
		{"another configuration", ConfigYAML, "my: own\n", true},
		{"another log4j file", "log4j.properties", "MY OWN\n", true},
		{"the source's own log4j file", "log4j.properties", "x=y\n", false},
		{"the source's own configuration", ConfigYAML, "a: 1\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			writeTree(t, out, map[string]string{tt.file: tt.content})
			_, err := ReadConf(src, out)
			if !tt.refused {
				if err != nil {
					t.Fatalf("ReadConf refused an output whose %s holds the source's own content: %v", tt.file, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), filepath.Join(out, tt.file)+" already exists and was not written by flinkpki (.flinkpki-conf-files does not list it)") {
				t.Fatalf("ReadConf over a foreign %s: err %v, want a refusal naming it", tt.file, err)
			}
			if got := string(readFile(t, filepath.Join(out, tt.file))); got != tt.content {
				t.Errorf("the refused copy changed %s: %q", tt.file, got)
			}
			if names, _ := os.ReadDir(out); len(names) != 1 {
				t.Errorf("the refused copy left %d entries in the output, want the one file", len(names))
			}
		})
	}
	// A second copy replaces what the first wrote.
	out := filepath.Join(t.TempDir(), "out")
	for i := range 2 {
		if err := CopyAndMerge(src, out, testKeys(t, fmt.Sprintf("/tls-%d", i))); err != nil {
			t.Fatalf("copy %d into an output only copies wrote: %v", i, err)
		}
	}
}

// TestACommitWhoseLastManifestWriteFailsIsDone: once every file is in
// place, a failure to narrow the manifest to this copy's files (a disk that
// filled meanwhile) is no failure of the copy: the manifest written before
// the renames lists them all, so the next copy still removes exactly what
// copies wrote. Commit succeeded; init and bake said the copy was not there.
func TestACommitWhoseLastManifestWriteFailsIsDone(t *testing.T) {
	src, out := t.TempDir(), filepath.Join(t.TempDir(), "out")
	writeTree(t, src, map[string]string{ConfigYAML: "a: 1\n", "old.txt": "x\n"})
	if err := CopyAndMerge(src, out, testKeys(t, "/tls")); err != nil {
		t.Fatal(err)
	}
	src2 := t.TempDir()
	writeTree(t, src2, map[string]string{ConfigYAML: "a: 2\n", "new.txt": "n\n"})
	c, err := ReadConf(src2, out)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	c.write.manifest = func(path string, data []byte, perm fs.FileMode) error {
		if calls++; calls == 2 {
			return errors.New("no space left on device")
		}
		return fileWrites.manifest(path, data, perm)
	}
	if err := c.Write(testKeys(t, "/tls-2")); err != nil {
		t.Fatalf("a copy whose files are all in place failed: %v", err)
	}
	if calls != 2 {
		t.Fatalf("the manifest was written %d times, want 2 (the union, then the narrowed list)", calls)
	}
	assertMerged(t, flattenYAML(t, readFile(t, filepath.Join(out, ConfigYAML))), testKeys(t, "/tls-2"))
	if _, err := os.Stat(filepath.Join(out, "new.txt")); err != nil {
		t.Errorf("new.txt is not in place: %v", err)
	}
	if m := strings.Split(string(readFile(t, filepath.Join(out, manifestName))), "\n"); !slices.Contains(m, "new.txt") || !slices.Contains(m, ConfigYAML) {
		t.Errorf("the manifest left in place lacks a file of the copy: %q", m)
	}
	copyConfigAloneRemoves(t, out, "new.txt", "old.txt")
}

// TestAFileACopyCouldNotRemoveStaysItsOwn: a file the previous copy wrote
// and the new source dropped, which the copy fails to remove, stays listed
// in the manifest: the copy says it failed, and a later copy whose source
// has that name again replaces it, as its own, instead of refusing it as a
// file no copy wrote.
func TestAFileACopyCouldNotRemoveStaysItsOwn(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	src1, src2, src3 := t.TempDir(), t.TempDir(), t.TempDir()
	writeTree(t, src1, map[string]string{ConfigYAML: "a: 1\n", "log4j.properties": "l1\n"})
	writeTree(t, src2, map[string]string{ConfigYAML: "a: 2\n"})
	writeTree(t, src3, map[string]string{ConfigYAML: "a: 3\n", "log4j.properties": "l3\n"})
	if err := CopyAndMerge(src1, out, testKeys(t, "/tls")); err != nil {
		t.Fatal(err)
	}
	c, err := ReadConf(src2, out)
	if err != nil {
		t.Fatal(err)
	}
	c.write.remove = func(string) error { return errors.New("operation not permitted") }
	if err := c.Write(testKeys(t, "/tls")); err == nil || !strings.Contains(err.Error(), "remove "+filepath.Join(out, "log4j.properties")) {
		t.Fatalf("a copy that could not remove a dropped file: %v, want the failure", err)
	}
	if m := strings.Split(string(readFile(t, filepath.Join(out, manifestName))), "\n"); !slices.Contains(m, "log4j.properties") {
		t.Fatalf("the manifest forgot the file the copy could not remove: %q", m)
	}
	if err := CopyAndMerge(src3, out, testKeys(t, "/tls")); err != nil {
		t.Fatalf("a copy over a file an earlier copy wrote: %v", err)
	}
	if got := string(readFile(t, filepath.Join(out, "log4j.properties"))); got != "l3\n" {
		t.Errorf("log4j.properties holds %q, want the new source's", got)
	}
}

// TestACopyKeepsSourceFilesNamedLikeLeftovers: the clean-up of what a
// killed run left beside a file (.a.tmp-*) runs only once every file of
// the copy is in place, and spares the copy's own files: a source holding
// a beside a.tmp-x (whose staged file is .a.tmp-x.tmp-N), or a hidden
// .a.tmp-x beside a, is copied whole.
func TestACopyKeepsSourceFilesNamedLikeLeftovers(t *testing.T) {
	src, out := t.TempDir(), filepath.Join(t.TempDir(), "out")
	files := map[string]string{ConfigYAML: "a: 1\n", "a": "one\n", "a.tmp-x": "two\n", ".a.tmp-y": "three\n"}
	writeTree(t, src, files)
	for i := range 2 { // into a new output, then over the first copy
		if err := CopyAndMerge(src, out, testKeys(t, "/tls")); err != nil {
			t.Fatalf("copy %d: %v", i, err)
		}
		for name, want := range files {
			if name == ConfigYAML {
				continue
			}
			if got, err := os.ReadFile(filepath.Join(out, name)); err != nil || string(got) != want {
				t.Errorf("copy %d: %s holds %q (%v), want %q", i, name, got, err, want)
			}
		}
	}
}

// TestACommitSyncsWhatItRenamedAndCreated: the renames of a copy outlast a
// power loss only once the directories they went into are synced, and a
// directory Stage created only once its parent is.
func TestACommitSyncsWhatItRenamedAndCreated(t *testing.T) {
	src, base := t.TempDir(), t.TempDir()
	out := filepath.Join(base, "conf")
	writeTree(t, src, map[string]string{ConfigYAML: "a: 1\n", "sub/deep/x.properties": "x=1\n"})
	c, err := ReadConf(src, out)
	if err != nil {
		t.Fatal(err)
	}
	var synced []string
	c.write.sync = func(dir string) error {
		synced = append(synced, dir)
		return fileWrites.sync(dir)
	}
	if err := c.Write(testKeys(t, "/tls")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{base, out, filepath.Join(out, "sub"), filepath.Join(out, "sub", "deep")} {
		if !slices.Contains(synced, want) {
			t.Errorf("the copy did not sync %s (synced %v)", want, synced)
		}
	}
}
