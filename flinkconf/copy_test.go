package flinkconf

import (
	"crypto/x509"
	"errors"
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
