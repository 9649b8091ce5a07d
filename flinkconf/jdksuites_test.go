package flinkconf

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flinkpki/flinkpki/internal/jdktest"
)

// TestJDKSuiteTableMatchesTheJDK compares jdkSuiteData with what the
// installed JDK's SSLEngine accepts, enables and disables (as
// testdata/jdk/JDKCipherSuites.java prints it). The one difference allowed
// is TLS_RSA_*, which JDK 17.0.18 and later disable: FP005 reports those
// suites whatever the JDK. The table is for JDK 17, which Flink's images
// run; on another JDK the test says so.
func TestJDKSuiteTableMatchesTheJDK(t *testing.T) {
	javac, java := jdktest.Tool(t, "javac"), jdktest.Tool(t, "java")
	classes := t.TempDir()
	src := filepath.Join("testdata", "jdk", "JDKCipherSuites.java")
	if out, err := exec.Command(javac, "-nowarn", "-d", classes, src).CombinedOutput(); err != nil {
		t.Fatalf("javac %s: %v: %s", src, err, out)
	}
	out, err := exec.Command(java, "--add-opens", "java.base/sun.security.ssl=ALL-UNNAMED", "-cp", classes, "JDKCipherSuites").CombinedOutput()
	if err != nil {
		t.Fatalf("java JDKCipherSuites: %v: %s", err, out)
	}
	version, _ := exec.Command(java, "-XshowSettings:properties", "-version").CombinedOutput()
	jdk := "unknown"
	for _, l := range strings.Split(string(version), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "java.version = "); ok {
			jdk = v
		}
	}
	got := map[string]string{}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, rest, _ := strings.Cut(l, " ")
		got[name] = rest
		lines = append(lines, l)
	}
	var diffs []string
	for name, s := range jdkSuites {
		rest := s.status
		if s.standard != name {
			rest += " " + s.standard
		}
		switch g, ok := got[name]; {
		case !ok:
			diffs = append(diffs, name+": in the table ("+rest+"), unknown to the JDK")
		case g == rest:
		case strings.HasPrefix(name, "TLS_RSA_") && rest == suiteEnabled && g == suiteDisabled:
			// JDK 17.0.18+ disables TLS_RSA_*.
		default:
			diffs = append(diffs, name+": the table says "+rest+", the JDK "+g)
		}
	}
	for name, g := range got {
		if _, ok := jdkSuites[name]; !ok {
			diffs = append(diffs, name+": the JDK says "+g+", the table lacks it")
		}
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		t.Errorf("the cipher suite table in jdksuites.go differs from JDK %s (it is JDK 17.0.15's; on another JDK 17, replace jdkSuiteData with the program's output below):\n  %s\nJDKCipherSuites printed:\n%s",
			jdk, strings.Join(diffs, "\n  "), strings.Join(lines, "\n"))
	}
	if len(got) < 30 {
		t.Errorf("JDK %s accepts only %d suite names: the program read the JDK wrongly", jdk, len(got))
	}
}

func TestSuiteKeyType(t *testing.T) {
	for suite, want := range map[string]string{
		"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDSA",
		"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256":   "RSA",
		"TLS_DHE_RSA_WITH_AES_128_GCM_SHA256":     "RSA",
		"TLS_RSA_WITH_AES_128_CBC_SHA":            "RSA",
		"SSL_RSA_WITH_3DES_EDE_CBC_SHA":           "RSA",
		"TLS_DHE_DSS_WITH_AES_128_GCM_SHA256":     "DSA",
		"TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256":  "EC",
		"TLS_ECDH_RSA_WITH_AES_128_GCM_SHA256":    "EC", // static ECDH: an EC key, whatever signed it
		"TLS_DH_anon_WITH_AES_128_GCM_SHA256":     "",
		"TLS_AES_128_GCM_SHA256":                  "",
		scsv:                                      "",
	} {
		if got := suiteKeyType(suite); got != want {
			t.Errorf("suiteKeyType(%s) = %q, want %q", suite, got, want)
		}
	}
}
