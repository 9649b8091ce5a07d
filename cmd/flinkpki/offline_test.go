package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flinkpki/flinkpki/enroll"
)

// secureDeployment is flinkconf's reference of a FlinkDeployment that
// follows every recommendation, flinkpki init container wiring included.
var secureDeployment = func() string {
	data, err := os.ReadFile(filepath.Join("..", "..", "flinkconf", "testdata", "lint", "secure-deployment.yaml"))
	if err != nil {
		panic(err)
	}
	return string(data)
}()

func TestFlinkLintExitCodes(t *testing.T) {
	t.Parallel()
	insecure := strings.Replace(secureDeployment, `security.ssl.internal.enabled: "true"`, `security.ssl.internal.enabled: "false"`, 1)
	tests := []struct {
		name       string
		file       string
		data       string
		wantCode   int
		wantStdout string
	}{
		{"a secure deployment passes", "orders.yaml", secureDeployment, 0, ""},
		{"disabled internal SSL fails with its finding on stdout", "orders.yaml", insecure, 1, "FP001 error:"},
		{"a file that is no Flink configuration fails", "notes.yaml", "- just\n- a list\n", 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, nil, "flink", "lint", writeFile(t, tt.file, tt.data))
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			if tt.wantStdout != "" && !strings.Contains(r.stdout, tt.wantStdout) {
				t.Errorf("stdout = %q, want a finding line with %q", r.stdout, tt.wantStdout)
			}
			if tt.wantCode == 0 && r.stdout != "" {
				t.Errorf("stdout = %q, want no finding", r.stdout)
			}
		})
	}
	r := runCLI(t, nil, "flink", "lint", filepath.Join(t.TempDir(), "missing.yaml"))
	if r.code != 1 {
		t.Errorf("lint of a missing file: exit %d, want 1", r.code)
	}
}

// flink lint --ignore drops the findings of the rules it names, counts them
// on stderr, and refuses a rule id that does not exist.
func TestFlinkLintIgnore(t *testing.T) {
	t.Parallel()
	native := writeFile(t, "native.yaml", strings.Replace(secureDeployment, "  mode: standalone\n", "  mode: native\n", 1))
	r := runCLI(t, nil, "flink", "lint", native)
	if r.code != 0 || !strings.Contains(r.stdout, "FP003 warning") {
		t.Fatalf("native mode without --ignore: exit %d, stdout %q", r.code, r.stdout)
	}
	r = runCLI(t, nil, "flink", "lint", native, "--ignore", "fp003")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "no errors (0 warning(s), 1 ignored)") {
		t.Errorf("--ignore fp003: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	insecure := writeFile(t, "insecure.yaml", strings.Replace(secureDeployment, `security.ssl.internal.enabled: "true"`, `security.ssl.internal.enabled: "false"`, 1))
	r = runCLI(t, nil, "flink", "lint", insecure, "--ignore", "FP010")
	if r.code != 1 || !strings.Contains(r.stdout, "FP001 error") {
		t.Errorf("--ignore of another rule keeps the error: exit %d, stdout %q", r.code, r.stdout)
	}
	r = runCLI(t, nil, "flink", "lint", native, "--ignore", "FP099")
	oneLineError(t, r, 2, "--ignore FP099: no such rule")
}

// flink lint - reads a manifest stream from standard input, as kustomize
// build prints it, and lints every FlinkDeployment in it.
func TestFlinkLintReadsStandardInput(t *testing.T) {
	t.Parallel()
	run := func(stdin string, args ...string) result {
		return runCLIStdin(t, nil, strings.NewReader(stdin), args...)
	}
	stream := "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: flink-orders\n---\n" + secureDeployment
	r := run(stream, "flink", "lint", "-")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "<stdin>: no errors") {
		t.Errorf("a secure stream: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	second := strings.NewReplacer("name: orders\n", "name: billing\n", `security.ssl.internal.enabled: "true"`, `security.ssl.internal.enabled: "false"`).Replace(secureDeployment)
	r = run(stream+"---\n"+second, "flink", "lint", "-", "-o", "json")
	if r.code != 1 || !strings.Contains(r.stdout, `"file": "<stdin>"`) || !strings.Contains(r.stdout, `FlinkDeployment \"billing\" disables internal SSL`) {
		t.Errorf("a stream with an insecure second deployment: exit %d\nstdout: %s", r.code, r.stdout)
	}
	// A configuration read from standard input is <stdin> in its findings
	// too, not "-".
	r = run("security.ssl.internal.enabled: false\n", "flink", "lint", "-")
	if r.code != 1 || !strings.HasPrefix(r.stdout, "FP001 error: <stdin> disables internal SSL") || strings.Contains(r.stdout, ": -") {
		t.Errorf("a configuration on stdin: exit %d\nstdout: %s", r.code, r.stdout)
	}
	// Nothing on standard input (an empty kustomize build, say) is no
	// configuration to hold to Flink's defaults.
	for _, empty := range []string{"", "\n", " \n\t\n", "# nothing yet\n", "---\n", "{}\n"} {
		r = run(empty, "flink", "lint", "-")
		oneLineError(t, r, 1, "flinkpki: no FlinkDeployment or Flink configuration keys in <stdin>\n")
		if r.stdout != "" {
			t.Errorf("stdin %q: stdout = %q, want no finding", empty, r.stdout)
		}
	}
}

// flink lint DIR checks a Flink configuration directory as init
// --flink-conf-src reads it: its config.yaml and its legacy flink-conf.yaml,
// each that is there, each finding naming its file; a directory with
// neither is refused in one line that names both. A symlinked file, as the
// kubelet mounts a ConfigMap's, counts.
// TestFlinkLintHoldsAConfigYAMLBesideAFlinkConfYAMLToFlink2: in a
// directory with both files, Flink 1.x reads flink-conf.yaml alone, so the
// config.yaml is linted as Flink 2 reads it, with no finding "on Flink 1.x
// only" about it; the flink-conf.yaml stays Flink 1.x's.
func TestFlinkLintHoldsAConfigYAMLBesideAFlinkConfYAMLToFlink2(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const legacyOn = "security.ssl.enabled: true\nsecurity.ssl.keystore: /k.p12\nsecurity.ssl.truststore: /t.p12\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\nrest.bind-address: ::1\n"
	for name, data := range map[string]string{"config.yaml": legacyOn + "security.ssl.protocol: TLSv1.2,TLSv1.3\n", "flink-conf.yaml": legacyOn} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := runCLI(t, nil, "flink", "lint", dir)
	if strings.Contains(r.stdout, "on Flink 1.x only") || !strings.Contains(r.stdout, "FP001 error: config.yaml") || !strings.Contains(r.stdout, "FP001 warning: flink-conf.yaml") {
		t.Errorf("flink lint of a directory with both files:\n%s%s", r.stdout, r.stderr)
	}
	// Told the version, lint holds both files to it.
	if r := runCLI(t, nil, "flink", "lint", "--flink-version", "1.20", dir); !strings.Contains(r.stdout, "FP006 error: config.yaml") {
		t.Errorf("flink lint --flink-version 1.20 of the directory:\n%s%s", r.stdout, r.stderr)
	}
}

func TestFlinkLintReadsAFlinkConfigurationDirectory(t *testing.T) {
	t.Parallel()
	const off = "security.ssl.internal.enabled: false\nrest.bind-address: 127.0.0.1\n"
	const listed = "security.ssl.internal.enabled: true\nsecurity.ssl.internal.keystore: /flink-tls/keystore.p12\nsecurity.ssl.internal.truststore: /flink-tls/truststore.p12\n" +
		"security.ssl.protocol: TLSv1.2,TLSv1.3\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_AES_128_GCM_SHA256\nrest.bind-address: 127.0.0.1\n"
	const legacyOn = "security.ssl.enabled: true\nsecurity.ssl.keystore: /k.p12\nsecurity.ssl.truststore: /t.p12\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\nrest.bind-address: ::1\n"
	const log4j = "rootLogger.level = INFO\n"
	tests := []struct {
		name     string
		files    map[string]string // name → content; "->X" makes a symlink to X
		wantCode int
		want     []string // lines of stdout start with each, or with refused the one line on stderr holds it
		refused  bool
	}{
		{"its config.yaml", map[string]string{"config.yaml": off, "log4j.properties": log4j}, 1, []string{"FP001 error: config.yaml disables internal SSL"}, false},
		{"its legacy flink-conf.yaml, read as Flink 1.x reads it", map[string]string{"flink-conf.yaml": legacyOn}, 0,
			[]string{"FP001 warning: flink-conf.yaml turns internal SSL on only through security.ssl.enabled"}, false},
		{"both, each under its name", map[string]string{"config.yaml": listed, "flink-conf.yaml": off}, 1,
			[]string{"FP006 error: config.yaml sets security.ssl.protocol to a list", "FP001 error: flink-conf.yaml disables internal SSL"}, false},
		{"a config.yaml symlinked as in a ConfigMap's mount", map[string]string{"..data/config.yaml": off, "config.yaml": "->..data/config.yaml"}, 1,
			[]string{"FP001 error: config.yaml disables internal SSL"}, false},
		{"neither is refused, naming both", map[string]string{"log4j.properties": log4j}, 1, []string{" holds neither config.yaml nor flink-conf.yaml"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, data := range tt.files {
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
					t.Fatal(err)
				}
				var err error
				if target, ok := strings.CutPrefix(data, "->"); ok {
					err = os.Symlink(target, p)
				} else {
					err = os.WriteFile(p, []byte(data), 0o600)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			r := runCLI(t, nil, "flink", "lint", dir)
			if tt.refused {
				oneLineError(t, r, tt.wantCode, dir+tt.want[0])
				return
			}
			if r.code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			lines := strings.Split(r.stdout, "\n")
			for _, w := range tt.want {
				if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, w) }) {
					t.Errorf("stdout = %q, want a line %q...", r.stdout, w)
				}
			}
		})
	}
}

// TestFlinkLintHelpNamesOnlyFilesOfTheRepo: every path flink lint --help
// shows, its examples' included, is a file or directory of this
// repository, so that each example runs as written from its root.
func TestFlinkLintHelpNamesOnlyFilesOfTheRepo(t *testing.T) {
	t.Parallel()
	r := runCLI(t, nil, "flink", "lint", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "Examples:") {
		t.Fatalf("exit %d, stdout %q", r.code, r.stdout)
	}
	var paths []string
	for _, word := range strings.Fields(r.stdout) {
		if word = strings.Trim(word, "`'\"(),.;:"); strings.Contains(word, "/") {
			paths = append(paths, word)
		}
	}
	if len(paths) == 0 {
		t.Fatal("the help names no file: this test no longer finds them")
	}
	for _, p := range paths {
		if _, err := os.Stat(filepath.Join("..", "..", p)); filepath.IsAbs(p) || err != nil {
			t.Errorf("flink lint --help names %s, which is not in the repository", p)
		}
	}
}

// flink lint --flink-version decides what security.ssl.enabled alone means
// in a config.yaml: Flink 1.x reads it, Flink 2 does not.
func TestFlinkLintVersion(t *testing.T) {
	t.Parallel()
	conf := writeFile(t, "config.yaml", "security.ssl.enabled: true\nsecurity.ssl.keystore: /flink-tls/keystore.p12\nsecurity.ssl.truststore: /flink-tls/truststore.p12\n"+
		"security.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\nrest.bind-address: 127.0.0.1\n")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"without a version it is an error", nil, 1, "FP001 error: config.yaml turns internal SSL on only through security.ssl.enabled, which Flink 2 no longer reads", ""},
		{"on Flink 1.20 it is a warning", []string{"--flink-version", "1.20"}, 0, "FP001 warning:", "no errors (1 warning(s))"},
		{"on Flink 2.2 it is an error", []string{"--flink-version", "v2_2"}, 1, "FP001 error: config.yaml is for Flink 2", ""},
		{"an unknown version is a usage error", []string{"--flink-version", "3.0"}, 2, "", `--flink-version: flink version "3.0": want a Flink 1.x or 2.x version`},
	}
	t.Run("-o json carries the findings and the same exit code", func(t *testing.T) {
		t.Parallel()
		r := runCLI(t, nil, "flink", "lint", conf, "--flink-version", "2.2", "-o", "json")
		var got struct {
			File     string
			Findings []struct{ Rule, Severity, Message, Fix string }
		}
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
		}
		if r.code != 1 || got.File != conf || len(got.Findings) != 1 || got.Findings[0].Rule != "FP001" || got.Findings[0].Severity != "error" || got.Findings[0].Fix == "" {
			t.Errorf("exit %d, %+v", r.code, got)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, nil, append([]string{"flink", "lint", conf}, tt.args...)...)
			if r.code != tt.wantCode || !strings.Contains(r.stdout, tt.wantStdout) || !strings.Contains(r.stderr, tt.wantStderr) {
				t.Errorf("exit %d, want %d\nstdout: %s (want %q)\nstderr: %s (want %q)", r.code, tt.wantCode, r.stdout, tt.wantStdout, r.stderr, tt.wantStderr)
			}
		})
	}
}

// Without a version, flink lint holds a config.yaml to Flink 1.x too: a
// protocol list, which Flink 1.x's RPC cannot parse with internal SSL on
// through security.ssl.enabled and the shared stores, is the FP006 error
// that --flink-version 1.20 finds, and says it holds on Flink 1.x only.
func TestFlinkLintWithoutAVersionHoldsTheFileToFlink1Too(t *testing.T) {
	t.Parallel()
	conf := writeFile(t, "q.yaml", "security.ssl.enabled: true\nsecurity.ssl.keystore: /flink-tls/keystore.p12\nsecurity.ssl.truststore: /flink-tls/truststore.p12\n"+
		"security.ssl.keystore-password: changeme1\nsecurity.ssl.truststore-password: changeme1\nsecurity.ssl.protocol: TLSv1.2,TLSv1.3\n"+
		"security.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\nrest.bind-address: 127.0.0.1\n")
	tests := []struct {
		name   string
		args   []string
		want   string // a line of stdout starts with it, "" for none
		marked bool   // and says it holds on Flink 1.x only
	}{
		{"without a version", nil, "FP006 error: q.yaml sets security.ssl.protocol to a list", true},
		{"on Flink 1.20", []string{"--flink-version", "1.20"}, "FP006 error: q.yaml sets security.ssl.protocol to a list", false},
		{"on Flink 2.2, which does not read security.ssl.enabled", []string{"--flink-version", "2.2"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, nil, append([]string{"flink", "lint", conf}, tt.args...)...)
			var fp006 []string
			for _, line := range strings.Split(r.stdout, "\n") {
				if strings.HasPrefix(line, "FP006") {
					fp006 = append(fp006, line)
				}
			}
			switch {
			case tt.want == "" && len(fp006) > 0:
				t.Errorf("want no FP006 finding, got %q", fp006)
			case tt.want != "" && (len(fp006) != 1 || !strings.HasPrefix(fp006[0], tt.want)):
				t.Errorf("want one FP006 finding %q..., stdout:\n%s", tt.want, r.stdout)
			case tt.want != "" && tt.marked != strings.Contains(fp006[0], "(on Flink 1.x only;"):
				t.Errorf("says it holds on Flink 1.x only: %v, want %v: %s", !tt.marked, tt.marked, fp006[0])
			}
			if r.code != 1 {
				t.Errorf("exit %d, want 1 (FP001 or FP006)", r.code)
			}
		})
	}
}

// newStoreFile creates a flinkpki bbolt store, as a server leaves it, and
// returns its path.
func newStoreFile(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "backup.db")
	newStoreAt(t, path, writeKEK(t, dir, "kek"))
	return path
}

func TestAdminRestore(t *testing.T) {
	t.Parallel()
	backup := newStoreFile(t)
	t.Run("restores into a missing directory with mode 0600", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "data")
		r := runCLI(t, nil, "admin", "restore", backup, "--data-dir", dir)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		got, err := os.ReadFile(filepath.Join(dir, "flinkpki.db"))
		want, _ := os.ReadFile(backup)
		if err != nil || string(got) != string(want) {
			t.Errorf("restored file differs from the backup (%v)", err)
		}
		fi, err := os.Stat(filepath.Join(dir, "flinkpki.db"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("restored file mode = %v (%v), want 0600", fi.Mode().Perm(), err)
		}
		if names := entries(t, dir); len(names) != 1 {
			t.Errorf("data dir holds %v, want only flinkpki.db", names)
		}
	})
	t.Run("restores from standard input, and refuses junk there before touching the directory", func(t *testing.T) {
		t.Parallel()
		raw, err := os.ReadFile(backup)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "data")
		r := runCLIStdin(t, nil, bytes.NewReader(raw), "admin", "restore", "-", "--data-dir", dir)
		if r.code != 0 || !strings.Contains(r.stderr, "restored the backup from standard input") {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if got, err := os.ReadFile(filepath.Join(dir, "flinkpki.db")); err != nil || !bytes.Equal(got, raw) {
			t.Errorf("restored file differs from the backup (%v)", err)
		}
		junkDir := filepath.Join(t.TempDir(), "junk")
		r = runCLIStdin(t, nil, strings.NewReader(strings.Repeat("junk", 2000)), "admin", "restore", "-", "--data-dir", junkDir)
		if r.code != 1 || !strings.Contains(r.stderr, "the backup from standard input is not a usable flinkpki database") || strings.Contains(r.stderr, "flinkpki-restore-") ||
			strings.Contains(r.stderr, "store the backup") {
			t.Errorf("junk on stdin: exit %d, %q", r.code, r.stderr)
		}
		if _, err := os.Stat(junkDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a refused restore created the data directory (%v)", err)
		}
	})
	t.Run("restores into the root of a fresh volume, which holds lost+found", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "lost+found"), 0o700); err != nil {
			t.Fatal(err)
		}
		if r := runCLI(t, nil, "admin", "restore", backup, "--data-dir", dir); r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if names := entries(t, dir); !slices.Equal(names, []string{"flinkpki.db", "lost+found"}) {
			t.Errorf("data dir holds %v, want flinkpki.db beside lost+found", names)
		}
	})
	t.Run("refuses a non-empty directory and changes nothing", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "kek"), []byte("k"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, nil, "admin", "restore", backup, "--data-dir", dir)
		if r.code != 1 || !strings.Contains(r.stderr, "is not empty") {
			t.Errorf("exit %d, stderr %q; want exit 1 about the non-empty directory", r.code, r.stderr)
		}
		if names := entries(t, dir); len(names) != 1 || names[0] != "kek" {
			t.Errorf("data dir now holds %v, want only kek", names)
		}
	})
	t.Run("refuses a file that is no flinkpki database and writes nothing", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "data")
		r := runCLI(t, nil, "admin", "restore", writeFile(t, "junk.db", strings.Repeat("junk", 2000)), "--data-dir", dir)
		if r.code != 1 || !strings.Contains(r.stderr, "not a usable flinkpki database") || !strings.Contains(r.stderr, "use another backup") || strings.Contains(r.stderr, "admin restore") {
			t.Errorf("exit %d, stderr %q; want exit 1 about the file, advising another backup (not a restore)", r.code, r.stderr)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("data dir was created (%v), want nothing written", err)
		}
	})
	t.Run("refuses a backup with damaged pages, without a panic, and writes nothing", func(t *testing.T) {
		t.Parallel()
		raw, err := os.ReadFile(backup)
		if err != nil {
			t.Fatal(err)
		}
		// The meta pages stay intact (what opening a store checks); every
		// other page is overwritten behind its header.
		const page = 4096
		for off := 2 * page; off+page <= len(raw); off += page {
			for i := off + 16; i < off+page; i++ {
				raw[i] = 0xAB
			}
		}
		dir := filepath.Join(t.TempDir(), "data")
		r := runCLI(t, nil, "admin", "restore", writeFile(t, "damaged.db", string(raw)), "--data-dir", dir)
		if r.code != 1 || !strings.Contains(r.stderr, "not a usable flinkpki database") || !strings.Contains(r.stderr, "damaged") || strings.Contains(r.stderr, "panic") {
			t.Errorf("exit %d, stderr %q; want exit 1 saying the backup is damaged", r.code, r.stderr)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("data dir was created (%v), want nothing written", err)
		}
	})
	t.Run("needs --data-dir", func(t *testing.T) {
		t.Parallel()
		if r := runCLI(t, nil, "admin", "restore", backup); r.code != 2 {
			t.Errorf("exit %d, want 2", r.code)
		}
	})
}

// TestAdminRestoreFromAStdinThatNeverEndsGivesUpOnASignal: restore - waits
// on standard input (kubectl attach); a signal then (the context's end)
// ends it at once, with its temporary copy removed and the data directory
// untouched, rather than wait for an input that may never end.
func TestAdminRestoreFromAStdinThatNeverEndsGivesUpOnASignal(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	stdin, feed := io.Pipe()
	defer feed.Close()
	go feed.Write([]byte("the start of a backup"))
	var out, errb bytes.Buffer
	a := &app{stdin: stdin, stdout: &out, stderr: &errb, getenv: func(string) string { return "" }, now: time.Now}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	dir := filepath.Join(t.TempDir(), "data")
	done := make(chan int, 1)
	go func() { done <- a.run(ctx, []string{"admin", "restore", "-", "--data-dir", dir}) }()
	select {
	case code := <-done:
		if code != 1 || errb.String() != "flinkpki: interrupted: read the backup from standard input\n" {
			t.Errorf("restore - ended by a signal: exit %d, %q", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("restore - still waits on standard input 10 s after the signal")
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "flinkpki-restore-*")); len(left) > 0 {
		t.Errorf("the temporary copy was left behind: %v", left)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the data directory was touched (%v)", err)
	}
}

func TestAdminBackupRefusesAnExistingFileBeforeConnecting(t *testing.T) {
	t.Parallel()
	addr, accepted := countingListener(t)
	out := writeFile(t, "old.db", "old")
	r := runCLI(t, nil, "admin", "backup", "--out", out, "--server", addr, "--token-file", writeFile(t, "t", "fpa_x"))
	if r.code != 1 || !strings.Contains(r.stderr, "already exists") || accepted.Load() != 0 {
		t.Errorf("exit %d, stderr %q, %d connections; want exit 1 about the existing file and none", r.code, r.stderr, accepted.Load())
	}
}

func TestServerCAPrintsTheTrustAnchorOffline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pemData := selfSignedPEM(t)
	if err := os.WriteFile(filepath.Join(dir, "server-ca.crt"), pemData, 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, nil, "server-ca", "--data-dir", dir)
	if r.code != 0 || r.stdout != string(pemData) {
		t.Errorf("exit %d, stdout %q; want 0 and the file's PEM", r.code, r.stdout)
	}
	if !strings.Contains(r.stderr, "SHA-256") {
		t.Errorf("stderr = %q, want the fingerprint", r.stderr)
	}
	if r := runCLI(t, nil, "server-ca", "--data-dir", t.TempDir()); r.code != 1 {
		t.Errorf("without server-ca.crt: exit %d, want 1", r.code)
	}
}

func selfSignedPEM(t testing.TB) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test serving CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestHumanize(t *testing.T) {
	t.Parallel()
	a := &app{target: "pki:7443"}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"an unreachable server names the address and the cause",
			status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 10.0.0.1:7443: connect: connection refused"`),
			"cannot reach flinkpki at pki:7443: connection refused (is the server running, and is --server, or FLINKPKI_SERVER, its gRPC address?)"},
		{"a server that answers it cannot serve now is not called unreachable",
			status.Error(codes.Unavailable, "transaction kept conflicting with concurrent writers after 20 attempts: store unavailable: retry the request"),
			"flinkpki at pki:7443 cannot serve the request now: transaction kept conflicting with concurrent writers after 20 attempts: store unavailable: retry the request"},
		{"nor is one whose store is down",
			status.Error(codes.Unavailable, "store unavailable: etcd at https://etcd-0:2379 unreachable: read cluster: context deadline exceeded"),
			"flinkpki at pki:7443 cannot serve the request now: store unavailable: etcd at https://etcd-0:2379 unreachable: read cluster: context deadline exceeded"},
		{"nor one whose TokenReview did not answer",
			status.Error(codes.Unavailable, "the Kubernetes API server did not answer the TokenReview: retry later"),
			"flinkpki at pki:7443 cannot serve the request now: the Kubernetes API server did not answer the TokenReview: retry later"},
		{"a refusal keeps the server's sentence",
			status.Error(codes.FailedPrecondition, "CA activation refused: 2 live holders do not trust the prepared CA yet: jm-0, tm-3"),
			"CA activation refused: 2 live holders do not trust the prepared CA yet: jm-0, tm-3"},
		{"a bad token points at --token-file",
			status.Error(codes.Unauthenticated, "unknown or expired token"),
			"unknown or expired token (check --token-file)"},
		{"a slow server is named",
			status.Error(codes.DeadlineExceeded, "context deadline exceeded"),
			"flinkpki at pki:7443 did not answer in time"},
		{"a wrapped status error still reads as the server's sentence",
			fmt.Errorf("list: %w", status.Error(codes.NotFound, `cluster "orders" not found`)),
			`cluster "orders" not found`},
		{"a local error is kept", errors.New("read token file: permission denied"), "read token file: permission denied"},
		{"giving up keeps the retry sentence",
			fmt.Errorf("%w after 3 attempts in 2m0s: flinkpki at pki:7443 not reachable yet (connection refused)", enroll.ErrTimeout),
			"gave up after 3 attempts in 2m0s: flinkpki at pki:7443 not reachable yet (connection refused)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := a.humanize(tt.err); got != tt.want {
				t.Errorf("humanize() = %q, want %q", got, tt.want)
			}
		})
	}
	// A command that dialled no flinkpki server (admin commands on an
	// etcd store) keeps its whole sentence around etcd's status.
	local := &app{}
	etcdErr := fmt.Errorf("rotate key-encryption key of etcd x: etcd commit: %w; servers refuse the store until this command, run again, finishes it",
		status.Error(codes.PermissionDenied, "etcdserver: permission denied"))
	if got := local.humanize(etcdErr); got != etcdErr.Error() {
		t.Errorf("humanize() of a store command's etcd error = %q, want it whole", got)
	}
}
