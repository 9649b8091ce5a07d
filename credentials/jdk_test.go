package credentials_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flinkpki/flinkpki/credentials"
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
