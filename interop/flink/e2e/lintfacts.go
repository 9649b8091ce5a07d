//go:build flinke2e

package e2e

import (
	"context"
	"fmt"
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
// authentication is asked for, with a REST truststore of its own (without
// one Flink drops client authentication, and FP002 says so), so whether
// REST SSL is on, or REST binds to loopback, decides FP002.
var lintCases = []struct{ name, file, conf string }{
	{"security.ssl.enabled alone", "config.yaml", "security.ssl.enabled: true\nrest.bind-address: 0.0.0.0\n"},
	{"security.ssl.internal.enabled", "config.yaml", "security.ssl.internal.enabled: true\nsecurity.ssl.rest.enabled: true\nrest.bind-address: 0.0.0.0\n"},
	{"internal off, the legacy switch on", "config.yaml", "security.ssl.internal.enabled: false\nsecurity.ssl.enabled: true\nrest.bind-address: 0.0.0.0\n"},
	{"legacy file, security.ssl.internal.enabled", "flink-conf.yaml", "security.ssl.internal.enabled: true\nsecurity.ssl.rest.enabled: true\nrest.bind-address: 0.0.0.0\n"},
	{"legacy file, security.ssl.enabled alone", "flink-conf.yaml", "security.ssl.enabled: true\nrest.bind-address: 0.0.0.0\n"},
	{"REST on loopback through web.address", "config.yaml", "security.ssl.internal.enabled: true\nweb.address: 127.0.0.1\n"},
	// YAML 1.1's merge key, which Flink's YAML 1.2 loader reads as a key
	// named "<<": security.ssl.internal.<<.enabled.
	{"internal SSL through a YAML merge key", "config.yaml", "base: &base {enabled: true}\nsecurity.ssl.internal:\n  <<: *base\nsecurity.ssl.rest.enabled: true\nrest.bind-address: 0.0.0.0\n"},
}

const lintCommon = "security.ssl.rest.authentication-enabled: true\nsecurity.ssl.rest.truststore: /rest-tls/truststore.p12\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n"

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
		out, _, err := d.configTool("ConfigFacts", dir)
		if err != nil {
			t.Fatalf("%s: ConfigFacts: %v", c.name, err)
		}
		out = strings.TrimSpace(out)
		internal, rest := strings.Contains(out, "internal=true"), strings.Contains(out, "rest=true")
		loopback := strings.HasSuffix(out, " bind=127.0.0.1") || strings.HasSuffix(out, " bind=localhost")
		if !strings.HasPrefix(out, "unread: ") && !strings.HasPrefix(out, "internal=") {
			t.Fatalf("%s: ConfigFacts printed %q", c.name, out)
		}
		findings := lintOutput(t, p, d, file)
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

// checkYAMLLists proves that lint reads a YAML sequence given for a string
// option as this Flink version does: as its flow text, brackets and all
// ("[TLSv1.3]", which no JDK knows as a protocol), not as its items.
// ConfigValue prints what Flink hands security.ssl.protocol; the FP006
// error must quote exactly that, and the suites, written as a block
// sequence, must draw the FP005 error. Then a null value and a key written
// twice: Flink refuses to load the file, and lint must report FP016 and
// FP018.
func checkYAMLLists(t *testing.T, d *flinkDist, p *pki) {
	dir := filepath.Join(d.work, "lint", "yaml-lists")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "config.yaml")
	conf := "security.ssl.internal.enabled: true\nsecurity.ssl.protocol: [TLSv1.3]\n" +
		"security.ssl.algorithms:\n  - TLS_AES_128_GCM_SHA256\n  - TLS_AES_256_GCM_SHA384\nrest.bind-address: 127.0.0.1\n"
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := d.configTool("ConfigValue", dir, "security.ssl.protocol")
	if err != nil {
		t.Fatalf("ConfigValue: %v", err)
	}
	flinkValue, ok := strings.CutPrefix(strings.TrimSpace(out), "value=")
	if !ok {
		t.Fatalf("ConfigValue printed %q", out)
	}
	findings := lintOutput(t, p, d, file)
	t.Logf("security.ssl.protocol: [TLSv1.3]: Flink %s hands the option %q", d.version, flinkValue)
	if !strings.Contains(findings, fmt.Sprintf("FP006 error: config.yaml sets security.ssl.protocol to names the JDK does not enable (%q)", flinkValue)) {
		t.Errorf("flink lint does not report the protocol Flink %s reads, %q, as an FP006 error:\n%s", d.version, flinkValue, findings)
	}
	if !strings.Contains(findings, "FP005 error") {
		t.Errorf("flink lint reports no FP005 error for suites written as a YAML list:\n%s", findings)
	}

	// A null value: Flink refuses to load the whole file, lint says FP016.
	conf = "security.ssl.internal.enabled: true\nsecurity.ssl.protocol: TLSv1.3\nsecurity.ssl.algorithms: TLS_AES_128_GCM_SHA256\n" +
		"rest.bind-address: 127.0.0.1\ntaskmanager.numberOfTaskSlots:\n"
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := d.configTool("ConfigValue", dir, "taskmanager.numberOfTaskSlots")
	if err == nil || !strings.Contains(errOut, "Value must not be null") {
		t.Errorf("Flink %s loaded a config.yaml with a null value (%q, %v), or failed otherwise: %s", d.version, strings.TrimSpace(out), err, lastLines(errOut, 3))
	}
	if !lintFinds(t, p, d, file, "FP016 error") {
		t.Errorf("flink lint reports no FP016 error for a null value, which Flink %s refuses to load", d.version)
	}

	// A key written twice: Flink refuses to load the whole file too, lint
	// says FP018.
	conf = "security.ssl.internal.enabled: false\nsecurity.ssl.internal.enabled: true\nsecurity.ssl.protocol: TLSv1.3\n" +
		"security.ssl.algorithms: TLS_AES_128_GCM_SHA256\nrest.bind-address: 127.0.0.1\n"
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err = d.configTool("ConfigValue", dir, "security.ssl.internal.enabled")
	if err == nil || !strings.Contains(errOut, "duplicate key") {
		t.Errorf("Flink %s loaded a config.yaml with a key written twice (%q, %v), or failed otherwise: %s", d.version, strings.TrimSpace(out), err, lastLines(errOut, 3))
	}
	if !lintFinds(t, p, d, file, "FP018 error") {
		t.Errorf("flink lint reports no FP018 error for a key written twice, which Flink %s refuses to load", d.version)
	}
}

// configTool runs one of the interop jar's configuration readers
// (io.flinkpki.interop.NAME) on this Flink version's classpath.
func (d *flinkDist) configTool(name string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := filepath.Join(d.work, strings.ToLower(name)+".log")
	argv := append(d.javaArgs(log, []string{"-Xmx128m"}, d.classpath+":"+d.jobJar), append([]string{"io.flinkpki.interop." + name}, args...)...)
	return runCmd(ctx, nil, argv...)
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// checkProtocolList proves on real JobManagers how FP006 reads a list in
// security.ssl.protocol with internal SSL on. Flink's SSLUtils splits the
// value at commas (Java's String.split, which drops trailing empty
// entries), but PekkoUtils writes it unquoted into the RPC's HOCON
// configuration: "TLSv1.2," parses (the comma separates fields) and the
// JobManager serves mutual TLS on its RPC and blob ports, while
// "TLSv1.2,TLSv1.3" does not parse and the JobManager exits at start. Lint
// must report the FP006 error for the second and not for the first.
func checkProtocolList(t *testing.T, dist *flinkDist, p *pki, name, keyType string) {
	c, holder, conf := enrolledJobManager(t, dist, p, name, keyType)
	own, err := loadMaterial(c.tlsDir(holder))
	if err != nil {
		t.Fatal(err)
	}
	const accepted = "TLSv1.2,"
	replaceConfLine(t, conf, "security.ssl.protocol", accepted)
	if lintFinds(t, p, dist, conf, "FP006 error") {
		t.Errorf("flink lint reports an FP006 error for security.ssl.protocol: %s, which Flink %s starts with", accepted, dist.version)
	}
	jm := dist.startJobManager(t, name+"-"+holder, c.confDir(holder))
	ports := map[string]string{"blob server": fmt.Sprintf("127.0.0.1:%d", c.blobPort), "RPC": fmt.Sprintf("127.0.0.1:%d", c.rpcPort)}
	err = waitFor(90*time.Second, 500*time.Millisecond, func() error {
		if !jm.alive() {
			return fmt.Errorf("the JobManager exited: %v", jm.err)
		}
		for what, addr := range ports {
			if err := handshake(addr, own.cert, own.roots); err != nil {
				return fmt.Errorf("%w: %s: %v", errNotYet, what, err)
			}
		}
		return nil
	})
	jm.stop(t)
	if err != nil {
		t.Fatalf("security.ssl.protocol: %s: no mutual TLS on the RPC and blob ports: %v (logs in %s)", accepted, err, dist.work)
	}
	t.Logf("security.ssl.protocol: %s: the JobManager serves mutual TLS on its RPC and blob ports", accepted)

	const list = "TLSv1.2,TLSv1.3"
	replaceConfLine(t, conf, "security.ssl.protocol", list)
	if !lintFinds(t, p, dist, conf, "FP006 error") {
		t.Errorf("flink lint reports no FP006 error for security.ssl.protocol: %s with internal SSL on", list)
	}
	// "Could not create actor system", caused by the HOCON parse.
	jmRefuses(t, dist, name+"-"+holder+"-list", c.confDir(holder), "ConfigException$Parse")
}

// checkSSLProvider proves FP014 on real JobManagers: Flink knows the SSL
// providers JDK and OPENSSL only, and OPENSSL needs netty-tcnative, which
// Flink's distribution (and this classpath) leaves out; either way the
// JobManager, whose REST endpoint serves TLS, exits at start. Then FP015:
// with a backslash, then a tab, in the internal keystore password the
// RPC's configuration does not parse and the JobManager exits too.
func checkSSLProvider(t *testing.T, dist *flinkDist, p *pki, name, keyType string) {
	c, holder, conf := enrolledJobManager(t, dist, p, name, keyType)
	for _, tc := range []struct{ provider, finding, refused string }{
		{"OPENSSL", "FP014 warning", "openSSL not available"},
		{"BoringSSL", "FP014 error", "Unknown SSL provider"},
	} {
		appendConfLine(t, conf, "security.ssl.provider", tc.provider)
		if !lintFinds(t, p, dist, conf, tc.finding) {
			t.Errorf("flink lint reports no %s for security.ssl.provider: %s", tc.finding, tc.provider)
		}
		jmRefuses(t, dist, name+"-"+holder+"-"+strings.ToLower(tc.provider), c.confDir(holder), tc.refused)
	}

	// FP015: a backslash in an internal store password, which PekkoUtils
	// writes between double quotes, unescaped, into the RPC's HOCON.
	appendConfLine(t, conf, "security.ssl.provider", "JDK")
	appendConfLine(t, conf, "security.ssl.internal.keystore-password", `'a\qb'`)
	if !lintFinds(t, p, dist, conf, "FP015 error") {
		t.Errorf("flink lint reports no FP015 error for a backslash in security.ssl.internal.keystore-password")
	}
	jmRefuses(t, dist, name+"-"+holder+"-backslash", c.confDir(holder), "ConfigException$Parse")
	// And a tab (a control character), which the HOCON parser refuses
	// unescaped in a quoted string.
	replaceConfLine(t, conf, "security.ssl.internal.keystore-password", `"a\tb"`)
	if !lintFinds(t, p, dist, conf, "FP015 error") {
		t.Errorf("flink lint reports no FP015 error for a tab in security.ssl.internal.keystore-password")
	}
	jmRefuses(t, dist, name+"-"+holder+"-tab", c.confDir(holder), "ConfigException$Parse")
}

// enrolledJobManager creates a flinkpki cluster and enrolls its JobManager
// holder with init, starting nothing: the phases above edit the
// configuration copy (conf, a flat config.yaml) before each start.
func enrolledJobManager(t testing.TB, dist *flinkDist, p *pki, name, keyType string) (c *flinkCluster, holder, conf string) {
	t.Helper()
	c = newFlinkCluster(t, dist, p, name, keyType)
	holder = "jm-0"
	p.initHolder(t, name, "jobmanager", holder, c.jmToken, c.jmBase, c.tlsDir(holder), c.confDir(holder))
	return c, holder, filepath.Join(c.confDir(holder), "config.yaml")
}

// lintFinds reports whether flink lint, told this Flink version, reports
// finding ("FP006 error") for the configuration file.
func lintFinds(t testing.TB, p *pki, dist *flinkDist, conf, finding string) bool {
	t.Helper()
	return strings.Contains(lintOutput(t, p, dist, conf), finding+":")
}

// lintOutput is what flink lint, told this Flink version, prints for the
// configuration file; it fails the test when lint fails without a finding.
func lintOutput(t testing.TB, p *pki, dist *flinkDist, conf string) string {
	t.Helper()
	findings, err := p.run("flink", "lint", "--flink-version", dist.version, conf)
	if err != nil && !strings.Contains(findings, " error: ") {
		t.Fatalf("flink lint of %s failed without a finding: %v", conf, err)
	}
	return findings
}

// jmRefuses starts a JobManager from confDir and requires it to exit with
// refused in its log.
func jmRefuses(t testing.TB, dist *flinkDist, name, confDir, refused string) {
	t.Helper()
	log := filepath.Join(dist.work, name+".log")
	jm := dist.startJobManager(t, name, confDir)
	defer jm.stop(t)
	err := waitFor(90*time.Second, 500*time.Millisecond, func() error {
		if b, _ := os.ReadFile(log); jm.alive() || !strings.Contains(string(b), refused) {
			return fmt.Errorf("%w: the JobManager runs (%v) or its log lacks %q", errNotYet, jm.alive(), refused)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v (log %s)", name, err, log)
	}
	b, _ := os.ReadFile(log)
	t.Logf("%s: the JobManager exited: %s", name, lineAround(b, strings.Index(string(b), refused)))
}

// replaceConfLine sets key in a flat config.yaml that already has it.
func replaceConfLine(t testing.TB, path, key, value string) { setConfLine(t, path, key, value, false) }

// appendConfLine sets key in a flat config.yaml, adding the line when the
// file lacks it.
func appendConfLine(t testing.TB, path, key, value string) { setConfLine(t, path, key, value, true) }

// setConfLine rewrites every line of key in a flat config.yaml; a file
// without one gets the line when add, or fails the test.
func setConfLine(t testing.TB, path, key, value string, add bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	found := false
	for i, l := range lines {
		if strings.HasPrefix(l, key+":") {
			lines[i], found = key+": "+value, true
		}
	}
	switch {
	case !found && !add:
		t.Fatalf("%s has no %s line", path, key)
	case !found:
		lines = append(lines, key+": "+value)
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}
