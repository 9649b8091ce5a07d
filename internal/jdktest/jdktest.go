// Package jdktest runs real JDK tools against credentials in tests: a
// mutual-TLS handshake harness that loads stores exactly as Flink's SSLUtils
// does, and a keytool listing parser.
//
// The harness is compiled with javac once per test process. HandshakeAll
// runs many pairs in one JVM, because a JVM start costs far more than a
// handshake.
package jdktest

import (
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
	compiled.once.Do(func() {
		dir, err := os.MkdirTemp("", "flinkpki-jdktest-")
		if err != nil {
			compiled.err = err
			return
		}
		src := filepath.Join(dir, "FlinkSSLHarness.java")
		if err := os.WriteFile(src, harnessSource, 0o644); err != nil {
			compiled.err = err
			return
		}
		out, err := exec.Command(javac, "-nowarn", "-d", dir, src).CombinedOutput()
		if err != nil {
			compiled.err = fmt.Errorf("javac FlinkSSLHarness.java: %v: %s", err, out)
			return
		}
		compiled.dir = dir
	})
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
