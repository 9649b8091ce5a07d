package credentials_test

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flinkpki/flinkpki/credentials"
	"github.com/flinkpki/flinkpki/flinkconf"
	"github.com/flinkpki/flinkpki/internal/jdktest"
	"github.com/flinkpki/flinkpki/keystore"
)

var formats = []keystore.Format{keystore.PKCS12, keystore.JKS}

// TestKeytoolReadsEveryKeyTypeInEveryFormat is an acceptance criterion:
// for every key type and format, keytool sees exactly one PrivateKeyEntry
// named flink in the keystore, and a non-empty truststore of
// trustedCertEntry only.
func TestKeytoolReadsEveryKeyTypeInEveryFormat(t *testing.T) {
	for _, kt := range jdktest.KeyTypes {
		c := newCluster(t, "kt-"+kt, kt, 10)
		m := c.material(t, "jobmanager", kt, 0)
		for _, f := range formats {
			t.Run(kt+"/"+string(f), func(t *testing.T) {
				t.Parallel()
				dir := filepath.Join(t.TempDir(), "creds")
				fs := buildAndWrite(t, m, f, dir)
				ksPass := string(fs.File(credentials.KeystorePasswordFile).Data)
				tsPass := string(fs.File(credentials.TruststorePasswordFile).Data)

				keys := jdktest.KeytoolList(t, filepath.Join(dir, credentials.KeystoreFile(f)), f.StoreType(), ksPass)
				if len(keys) != 1 || keys[0].Alias != "flink" || keys[0].Type != "PrivateKeyEntry" || keys[0].ChainLength != 2 {
					t.Errorf("keytool lists the keystore as %+v, want one PrivateKeyEntry flink with leaf and CA", keys)
				}
				trusted := jdktest.KeytoolList(t, filepath.Join(dir, credentials.TruststoreFile(f)), f.StoreType(), tsPass)
				if len(trusted) == 0 {
					t.Fatalf("keytool sees an empty truststore")
				}
				for _, e := range trusted {
					if e.Type != "trustedCertEntry" {
						t.Errorf("truststore entry %s is a %s, want trustedCertEntry", e.Alias, e.Type)
					}
				}
			})
		}
	}
}

// TestFlinkProcessesHandshakeOnlyWithinTheirCluster is the core acceptance
// criterion: a JobManager and a TaskManager of one cluster complete mutual
// TLS in both directions, with stores loaded as Flink loads them, in any
// mix of formats and with Flink < 1.20's missing store types; a process of
// another cluster is refused either way. All pairs run in one JVM.
func TestFlinkProcessesHandshakeOnlyWithinTheirCluster(t *testing.T) {
	type pair struct {
		name           string
		server, client string
		wantOK         bool
	}
	// Keys are reused across processes (slots 0 and 1) to keep RSA key
	// generation cheap; what separates the clusters is their CA.
	var pairs []pair
	for _, kt := range jdktest.KeyTypes {
		a := newCluster(t, "orders-"+kt, kt, 10)
		b := newCluster(t, "billing-"+kt, kt, 11)
		base := t.TempDir()
		dir := func(n string) string { return filepath.Join(base, n) }
		buildAndWrite(t, a.material(t, "jobmanager", kt, 0), keystore.PKCS12, dir("jm-a"))
		buildAndWrite(t, a.material(t, "taskmanager", kt, 1), keystore.JKS, dir("tm-a"))
		buildAndWrite(t, a.material(t, "taskmanager-2", kt, 1), keystore.PKCS12, dir("tm2-a"),
			func(o *credentials.Options) { o.Profile = keystore.LegacyDES })
		buildAndWrite(t, a.material(t, "taskmanager-3", kt, 1), keystore.JKS, dir("tm3-a"),
			func(o *credentials.Options) { o.LegacyStoreTypes = true })
		buildAndWrite(t, b.material(t, "jobmanager", kt, 0), keystore.PKCS12, dir("jm-b"))
		pairs = append(pairs,
			pair{kt + ": PKCS#12 JobManager accepts JKS TaskManager", dir("jm-a"), dir("tm-a"), true},
			pair{kt + ": JKS TaskManager accepts PKCS#12 JobManager", dir("tm-a"), dir("jm-a"), true},
			pair{kt + ": JobManager accepts a legacy-des PKCS#12 TaskManager", dir("jm-a"), dir("tm2-a"), true},
			pair{kt + ": a TaskManager without store types accepts the JobManager", dir("tm3-a"), dir("jm-a"), true},
			pair{kt + ": JobManager accepts a TaskManager without store types", dir("jm-a"), dir("tm3-a"), true},
			pair{kt + ": another cluster's JobManager refuses the TaskManager", dir("jm-b"), dir("tm-a"), false},
			pair{kt + ": the TaskManager refuses another cluster's JobManager", dir("tm-a"), dir("jm-b"), false},
		)
	}
	in := make([][2]string, len(pairs))
	for i, p := range pairs {
		in[i] = [2]string{p.server, p.client}
	}
	results := jdktest.HandshakeAll(t, in)
	for i, p := range pairs {
		err := results[i]
		switch {
		case p.wantOK && err != nil:
			t.Errorf("%s: %v", p.name, err)
		case !p.wantOK && err == nil:
			t.Errorf("%s: the handshake succeeded", p.name)
		case !p.wantOK && !isTrustFailure(err):
			t.Errorf("%s: failed for a reason other than trust: %v", p.name, err)
		case !p.wantOK && i == len(pairs)-1:
			t.Logf("%s, as expected: %v", p.name, err)
		}
	}
	t.Logf("%d handshakes checked", len(pairs))
}

// isTrustFailure tells a refused peer certificate from a broken setup.
func isTrustFailure(err error) bool {
	msg := fmt.Sprint(err)
	return !strings.Contains(msg, "setup:") &&
		(strings.Contains(msg, "certification path") || strings.Contains(msg, "PKIX") ||
			strings.Contains(msg, "certificate_unknown") || strings.Contains(msg, "bad_certificate"))
}

// TestLintAgreesWithTheJDKOnProtocolsAndSuites ties flink lint's FP005 and
// FP006 to the JDK: for each pairing of security.ssl.protocol and
// security.ssl.algorithms (the two options Flink sets on every engine), a
// JobManager and a TaskManager complete mutual TLS exactly when lint, told
// the cluster's key type, reports no FP005 or FP006 error. TLS 1.3 runs only
// on its own suites, which work with any key; TLS 1.2 only on the others,
// which must match the key. The JDK knows protocol names only as written,
// so a lower-case name or "TLS" fails, and so do suites written in lower
// case or with a space after a comma; so does a protocol list, which the harness
// asks the JDK for as one protocol name (Flink's RPC does not even start
// with one: the Flink interop suite shows it).
func TestLintAgreesWithTheJDKOnProtocolsAndSuites(t *testing.T) {
	const (
		ecdsa12 = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
		rsa12   = "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
		tls13   = "TLS_AES_256_GCM_SHA384,TLS_AES_128_GCM_SHA256"
	)
	type setting struct{ protocol, algorithms string }
	settings := []setting{
		{"TLSv1.2", ecdsa12}, {"TLSv1.2", rsa12}, {"TLSv1.2", tls13}, {"TLSv1.2", ecdsa12 + "," + tls13},
		{"TLSv1.3", tls13}, {"TLSv1.3", ecdsa12}, {"TLSv1.3", rsa12}, {"TLSv1.3", rsa12 + "," + tls13},
		{"tlsv1.3", tls13}, {"TLSv1.2,TLSv1.3", tls13}, {"TLS", tls13},
		{"TLSv1.3", "TLS_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256"}, {"TLSv1.3", "tls_aes_128_gcm_sha256"}, {"TLSv1.3", tls13 + ","},
	}
	type run struct {
		name    string
		dirs    [2]string
		lintErr bool
	}
	var runs []run
	for _, kt := range []string{"ecdsa-p256", "rsa-2048"} {
		c := newCluster(t, "proto-"+kt, kt, 10)
		alg := x509.ECDSA
		if strings.HasPrefix(kt, "rsa") {
			alg = x509.RSA
		}
		for i, st := range settings {
			var dirs [2]string
			for j, role := range []string{"jobmanager", "taskmanager"} {
				dirs[j] = filepath.Join(t.TempDir(), fmt.Sprintf("%s-%d-%s", kt, i, role))
				buildAndWrite(t, c.material(t, role, kt, j), keystore.PKCS12, dirs[j])
				setSSLOptions(t, dirs[j], st.protocol, st.algorithms)
			}
			conf, err := os.ReadFile(filepath.Join(dirs[0], jdktest.SSLConfFile))
			if err != nil {
				t.Fatal(err)
			}
			findings, err := flinkconf.LintWith(conf, "config.yaml", flinkconf.LintOptions{KeyAlgorithm: alg})
			if err != nil {
				t.Fatal(err)
			}
			lintErr := slices.ContainsFunc(findings, func(f flinkconf.Finding) bool {
				return (f.Rule == flinkconf.RuleCipherSuites || f.Rule == flinkconf.RuleProtocol) && f.Severity == flinkconf.SeverityError
			})
			runs = append(runs, run{fmt.Sprintf("%s key, %s, %s", kt, st.protocol, st.algorithms), dirs, lintErr})
		}
	}
	pairs := make([][2]string, len(runs))
	for i, r := range runs {
		pairs[i] = r.dirs
	}
	failures := 0
	for i, err := range jdktest.HandshakeAll(t, pairs) {
		if err != nil {
			failures++
		}
		if (err != nil) != runs[i].lintErr {
			t.Errorf("%s: the JDK handshake gives %v, but lint reports an FP005 or FP006 error: %v", runs[i].name, err, runs[i].lintErr)
		}
	}
	if failures == 0 || failures == len(runs) {
		t.Errorf("%d of %d handshakes failed: the cases do not tell the two apart", failures, len(runs))
	}
}

// setSSLOptions rewrites security.ssl.protocol and security.ssl.algorithms
// in a credential directory's flink-ssl.yaml.
func setSSLOptions(t *testing.T, dir, protocol, algorithms string) {
	t.Helper()
	path := filepath.Join(dir, jdktest.SSLConfFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if !strings.HasPrefix(l, "security.ssl.protocol:") && !strings.HasPrefix(l, "security.ssl.algorithms:") {
			lines = append(lines, l)
		}
	}
	lines = append(lines, "security.ssl.protocol: "+protocol, "security.ssl.algorithms: "+algorithms)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTLS13FileSetsHandshakeWithEachOtherOnly: file sets written with
// --tls-protocol TLSv1.3 carry TLS 1.3 and its own suites, which serve
// ECDSA and RSA keys alike, and a process configured for TLS 1.2 cannot
// reach one configured for TLS 1.3 either way (so switching a cluster
// restarts all of it).
func TestTLS13FileSetsHandshakeWithEachOtherOnly(t *testing.T) {
	var pairs [][2]string
	var names []string
	var want []bool
	for _, kt := range []string{"ecdsa-p256", "rsa-2048"} {
		c := newCluster(t, "tls13-"+kt, kt, 10)
		base := t.TempDir()
		dir := func(n string) string { return filepath.Join(base, n) }
		tls13 := func(o *credentials.Options) { o.TLS13 = true }
		buildAndWrite(t, c.material(t, "jobmanager", kt, 0), keystore.PKCS12, dir("jm13"), tls13)
		buildAndWrite(t, c.material(t, "taskmanager", kt, 1), keystore.JKS, dir("tm13"), tls13)
		buildAndWrite(t, c.material(t, "taskmanager-2", kt, 1), keystore.PKCS12, dir("tm12"))
		conf, err := os.ReadFile(filepath.Join(dir("jm13"), jdktest.SSLConfFile))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(conf), "security.ssl.protocol: TLSv1.3\n") || !strings.Contains(string(conf), "security.ssl.algorithms: TLS_AES_256_GCM_SHA384,TLS_AES_128_GCM_SHA256\n") {
			t.Fatalf("a TLS 1.3 file set's flink-ssl.yaml:\n%s", conf)
		}
		for _, p := range []struct {
			name   string
			s, c   string
			wantOK bool
		}{
			{"TLS 1.3 JobManager, TLS 1.3 TaskManager", "jm13", "tm13", true},
			{"TLS 1.3 TaskManager, TLS 1.3 JobManager", "tm13", "jm13", true},
			{"TLS 1.3 JobManager, TLS 1.2 TaskManager", "jm13", "tm12", false},
			{"TLS 1.2 TaskManager, TLS 1.3 JobManager", "tm12", "jm13", false},
		} {
			pairs = append(pairs, [2]string{dir(p.s), dir(p.c)})
			names = append(names, kt+": "+p.name)
			want = append(want, p.wantOK)
		}
	}
	for i, err := range jdktest.HandshakeAll(t, pairs) {
		if (err == nil) != want[i] {
			t.Errorf("%s: handshake error %v, want success %v", names[i], err, want[i])
		}
	}
}
