package keystore_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/flinkpki/flinkpki/internal/jdktest"
	"github.com/flinkpki/flinkpki/keystore"
)

// TestKeytoolReadsEveryFormatAndProfile round-trips the stores through the
// JDK: keytool must see one PrivateKeyEntry named flink with its chain, and
// every CA as a trustedCertEntry (a PKCS#12 truststore without the Java
// trusted-cert attribute would list as empty).
func TestKeytoolReadsEveryFormatAndProfile(t *testing.T) {
	m := newMaterial(t, "ecdsa-p256")
	for _, c := range combos {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ks := m.keyStore(c.profile)
			ts := m.trustStore(c.profile)
			ksPath := filepath.Join(dir, "keystore."+c.format.Ext())
			tsPath := filepath.Join(dir, "truststore."+c.format.Ext())
			writeFile(t, ksPath, mustEncodeKeyStore(t, c.format, ks))
			writeFile(t, tsPath, mustEncodeTrustStore(t, c.format, ts))

			keys := jdktest.KeytoolList(t, ksPath, c.format.StoreType(), ks.StorePassword)
			if len(keys) != 1 || keys[0].Alias != "flink" || keys[0].Type != "PrivateKeyEntry" || keys[0].ChainLength != 2 {
				t.Errorf("keytool lists the keystore as %+v, want one PrivateKeyEntry \"flink\" with a chain of 2", keys)
			}
			trusted := jdktest.KeytoolList(t, tsPath, c.format.StoreType(), ts.Password)
			if len(trusted) != len(m.cas) {
				t.Fatalf("keytool lists %d truststore entries, want %d: %+v", len(trusted), len(m.cas), trusted)
			}
			for _, e := range trusted {
				if e.Type != "trustedCertEntry" {
					t.Errorf("truststore entry %s has type %q, want trustedCertEntry", e.Alias, e.Type)
				}
			}
		})
	}
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDecodingRefusesAKeystoreOfTwoKeys: Flink's SunX509 key manager takes
// the first key entry of a matching type, so a keystore must hold exactly
// one; DecodeKeyStore, which the tests use to check the stores flinkpki
// writes, refuses one that keytool made with two key entries, in both
// formats.
func TestDecodingRefusesAKeystoreOfTwoKeys(t *testing.T) {
	keytool := jdktest.Tool(t, "keytool")
	for _, f := range []keystore.Format{keystore.JKS, keystore.PKCS12} {
		t.Run(string(f), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "two."+f.Ext())
			for _, alias := range []string{"first", "second"} {
				out, err := exec.Command(keytool, "-genkeypair", "-alias", alias, "-keyalg", "EC", "-groupname", "secp256r1",
					"-dname", "CN="+alias, "-keystore", path, "-storetype", f.StoreType(),
					"-storepass", "changeit", "-keypass", "changeit").CombinedOutput()
				if err != nil {
					t.Fatalf("keytool -genkeypair %s: %v\n%s", alias, err, out)
				}
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := keystore.DecodeKeyStore(f, data, "changeit", "changeit"); err == nil {
				t.Fatal("DecodeKeyStore took a keystore with two key entries")
			}
		})
	}
}
