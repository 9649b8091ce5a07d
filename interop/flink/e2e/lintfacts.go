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

// lintCases are configuration files whose SSL switches and REST binding
// Flink versions read differently or through fallback keys:
// security.ssl.enabled (Flink 1.x only), a legacy flink-conf.yaml (Flink
// 1.x only), and rest.bind-address's fallback web.address. Client
// authentication is asked for, so whether REST SSL is on, or REST binds to
// loopback, decides FP002.
var lintCases = []struct{ name, file, conf string }{
	{"security.ssl.enabled alone", "config.yaml", "security.ssl.enabled: true\nrest.bind-address: 0.0.0.0\n"},
	{"security.ssl.internal.enabled", "config.yaml", "security.ssl.internal.enabled: true\nsecurity.ssl.rest.enabled: true\nrest.bind-address: 0.0.0.0\n"},
	{"internal off, the legacy switch on", "config.yaml", "security.ssl.internal.enabled: false\nsecurity.ssl.enabled: true\nrest.bind-address: 0.0.0.0\n"},
	{"legacy file, security.ssl.internal.enabled", "flink-conf.yaml", "security.ssl.internal.enabled: true\nsecurity.ssl.rest.enabled: true\nrest.bind-address: 0.0.0.0\n"},
	{"legacy file, security.ssl.enabled alone", "flink-conf.yaml", "security.ssl.enabled: true\nrest.bind-address: 0.0.0.0\n"},
	{"REST on loopback through web.address", "config.yaml", "security.ssl.internal.enabled: true\nweb.address: 127.0.0.1\n"},
}

const lintCommon = "security.ssl.rest.authentication-enabled: true\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n"

// checkLintFacts proves that flinkpki flink lint --flink-version VERSION
// reads each case as this Flink version does: FP001 is an error exactly when
// Flink leaves internal SSL off (or does not read the file), and FP002
// exactly when Flink leaves REST SSL off and binds REST beyond loopback.
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
		loopback := strings.HasSuffix(out, " bind=127.0.0.1") || strings.HasSuffix(out, " bind=localhost")
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
		if open := !rest && !loopback; !strings.HasPrefix(out, "unread: ") && fp002 != open {
			t.Errorf("%s: Flink %s has REST SSL %v and binds REST to loopback %v (%s) but flink lint --flink-version %s reports FP002 error %v:\n%s", c.name, d.version, rest, loopback, out, d.version, fp002, findings)
		}
	}
}
