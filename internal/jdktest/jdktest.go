// Package jdktest runs real JDK tools against credentials in tests: a
// mutual-TLS handshake harness that loads stores exactly as Flink's SSLUtils
// does, and a keytool listing parser.
//
// The harness is compiled with javac once per source and JDK, into a
// directory of the system's temporary directory that later test processes
// reuse (compileHarness). HandshakeAll
// runs many pairs in one JVM, because a JVM start costs far more than a
// handshake.
package jdktest

import (
	"crypto/sha256"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

//go:embed FlinkSSLHarness.java
var harnessSource []byte

const installHint = "install a JDK 17 (apt-get install openjdk-17-jdk-headless)"

// SSLConfFile is the flat Flink configuration file inside a credentials
// directory that the harness reads.
const SSLConfFile = "flink-ssl.yaml"

var compiled struct {
	once sync.Once
	dir  string
	err  error
}

// Tool returns the absolute path of a JDK tool, failing the test with an
// install hint when it is missing.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found on PATH: %s", name, installHint)
	}
	return p
}

func harnessClasses(t testing.TB) string {
	t.Helper()
	javac := Tool(t, "javac")
	Tool(t, "java")
	compiled.once.Do(func() { compiled.dir, compiled.err = compileHarness(javac) })
	if compiled.err != nil {
		t.Fatalf("compile the Java TLS harness: %v", compiled.err)
	}
	return compiled.dir
}

// Handshake runs one mutual-TLS handshake between the credentials in
// serverDir and clientDir (directories holding flink-ssl.yaml). nil means
// both sides authenticated each other and exchanged a byte.
func Handshake(t testing.TB, serverDir, clientDir string) error {
	t.Helper()
	return HandshakeAll(t, [][2]string{{serverDir, clientDir}})[0]
}

// HandshakeAll runs every pair {serverDir, clientDir} in one JVM and returns
// one result per pair, in order. Setup problems of the harness itself fail
// the test.
func HandshakeAll(t testing.TB, pairs [][2]string) []error {
	t.Helper()
	classes := harnessClasses(t)
	var b strings.Builder
	for _, p := range pairs {
		for _, d := range p {
			if strings.ContainsAny(d, "\t\n") {
				t.Fatalf("credentials directory %q contains a tab or newline", d)
			}
		}
		fmt.Fprintf(&b, "%s\t%s\n", filepath.Join(p[0], SSLConfFile), filepath.Join(p[1], SSLConfFile))
	}
	list := filepath.Join(t.TempDir(), "pairs.txt")
	if err := os.WriteFile(list, []byte(b.String()), 0o600); err != nil {
		t.Fatalf("write pairs file: %v", err)
	}
	start := time.Now()
	cmd := exec.Command(Tool(t, "java"), "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
		"-cp", classes, "FlinkSSLHarness", list)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("java FlinkSSLHarness: %v: %s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != len(pairs) {
		t.Fatalf("java FlinkSSLHarness printed %d result lines for %d pairs: %q; stderr: %s",
			len(lines), len(pairs), out, stderr.String())
	}
	t.Logf("ran %d TLS handshakes in one JVM in %v", len(pairs), time.Since(start).Round(time.Millisecond))
	errs := make([]error, len(pairs))
	for i, l := range lines {
		switch {
		case l == "OK":
		case strings.HasPrefix(l, "FAIL"):
			errs[i] = fmt.Errorf("handshake %s -> %s failed:%s", pairs[i][1], pairs[i][0], strings.TrimPrefix(l, "FAIL"))
		default:
			t.Fatalf("java FlinkSSLHarness printed an unexpected line %q", l)
		}
	}
	return errs
}

// compileHarness compiles the harness with javac into a directory named by
// a hash of its source and of javac, so every test process of a run,
// and of later runs, reuses one compilation instead of leaving a directory
// each. A process compiles into a directory of its own and renames it into
// place; when another got there first, it uses that one.
func compileHarness(javac string) (string, error) {
	resolved, err := filepath.EvalSymlinks(javac)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return "", err
	}
	// javac's path, size and time: another JDK installed at the same
	// path (an image's /opt/java/openjdk) compiles afresh.
	id := fmt.Sprintf("%s\x00%d\x00%d\x00", resolved, fi.Size(), fi.ModTime().UnixNano())
	sum := sha256.Sum256(append([]byte(id), harnessSource...))
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("flinkpki-jdktest-%d-%x", os.Geteuid(), sum[:8]))
	class := filepath.Join(dir, "FlinkSSLHarness.class")
	if ownDir(dir) {
		if _, err := os.Stat(class); err == nil {
			return dir, nil
		}
	}
	tmp, err := os.MkdirTemp("", "flinkpki-jdktest-build-")
	if err != nil {
		return "", err
	}
	src := filepath.Join(tmp, "FlinkSSLHarness.java")
	if err := os.WriteFile(src, harnessSource, 0o644); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if out, err := exec.Command(javac, "-nowarn", "-d", tmp, src).CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("javac FlinkSSLHarness.java: %v: %s", err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(class); serr == nil && ownDir(dir) {
			os.RemoveAll(tmp)
			return dir, nil
		}
		return tmp, nil // another user's, or half made: this process's own
	}
	return dir, nil
}

// ownDir reports whether dir is this user's and nobody else may write in
// it: classes another local user could have put there are not run.
func ownDir(dir string) bool {
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}
