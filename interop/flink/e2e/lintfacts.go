//go:build flinke2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// lintCases are configuration files whose SSL switches Flink versions read
// differently: security.ssl.enabled (Flink 1.x only) and a legacy
// flink-conf.yaml (Flink 1.x only). REST is open on every interface with
// client authentication asked for, so whether REST SSL is on decides FP002.
var lintCases = []struct{ name, file, conf string }{
	{"security.ssl.enabled alone", "config.yaml", "security.ssl.enabled: true\n"},
	{"security.ssl.internal.enabled", "config.yaml", "security.ssl.internal.enabled: true\nsecurity.ssl.rest.enabled: true\n"},
	{"internal off, the legacy switch on", "config.yaml", "security.ssl.internal.enabled: false\nsecurity.ssl.enabled: true\n"},
	{"legacy file, security.ssl.internal.enabled", "flink-conf.yaml", "security.ssl.internal.enabled: true\nsecurity.ssl.rest.enabled: true\n"},
	{"legacy file, security.ssl.enabled alone", "flink-conf.yaml", "security.ssl.enabled: true\n"},
}

const lintCommon = "security.ssl.rest.authentication-enabled: true\nrest.bind-address: 0.0.0.0\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n"

// checkLintFacts proves that flinkpki flink lint --flink-version VERSION
// reads each case as this Flink version does: FP001 is an error exactly when
// Flink leaves internal SSL off (or does not read the file), and FP002
// exactly when it leaves REST SSL off.
func checkLintFacts(t *testing.T, d *flinkDist, p *pki) {
	for i, c := range lintCases {
		dir := filepath.Join(d.work, "lint", string(rune('a'+i)))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, c.file)
		if err := os.WriteFile(file, []byte(c.conf+lintCommon), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, _, err := runCmd(ctx, nil, append(d.javaArgs(filepath.Join(d.work, "configfacts.log"), []string{"-Xmx128m"}, d.classpath+":"+d.jobJar),
			"io.flinkpki.interop.ConfigFacts", dir)...)
		cancel()
		if err != nil {
			t.Fatalf("%s: ConfigFacts: %v", c.name, err)
		}
		out = strings.TrimSpace(out)
		internal, rest := strings.Contains(out, "internal=true"), strings.Contains(out, "rest=true")
		if !strings.HasPrefix(out, "unread: ") && !strings.HasPrefix(out, "internal=") {
			t.Fatalf("%s: ConfigFacts printed %q", c.name, out)
		}
		findings, err := p.run("flink", "lint", "--flink-version", d.version, file)
		if err != nil && !strings.Contains(findings, " error: ") {
			t.Fatalf("%s: flink lint failed without a finding: %v", c.name, err)
		}
		fp001 := strings.Contains(findings, "FP001 error")
		fp002 := strings.Contains(findings, "FP002 error")
		t.Logf("%s (%s): Flink %s reads %q; lint: FP001 error %v, FP002 error %v", c.name, c.file, d.version, out, fp001, fp002)
		if fp001 == internal {
			t.Errorf("%s: Flink %s has internal SSL %v (%s) but flink lint --flink-version %s reports FP001 error %v:\n%s", c.name, d.version, internal, out, d.version, fp001, findings)
		}
		if !strings.HasPrefix(out, "unread: ") && fp002 == rest {
			t.Errorf("%s: Flink %s has REST SSL %v (%s) but flink lint --flink-version %s reports FP002 error %v:\n%s", c.name, d.version, rest, out, d.version, fp002, findings)
		}
	}
}
