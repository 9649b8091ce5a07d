package credentials_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/credentials"
	"github.com/flinkpki/flinkpki/flinkconf"
	"github.com/flinkpki/flinkpki/keystore"
)

func TestBuildProducesTheContractFileSet(t *testing.T) {
	c := newCluster(t, "orders", "ecdsa-p256", 10)
	m := c.material(t, "jobmanager", "ecdsa-p256", 0)
	for _, f := range []keystore.Format{keystore.PKCS12, keystore.JKS} {
		t.Run(string(f), func(t *testing.T) {
			dir := "/var/run/flinkpki"
			fs := build(t, m, f, dir)
			wantModes := map[string]os.FileMode{
				"keystore." + f.Ext(): 0o600, "truststore." + f.Ext(): 0o600,
				"keystore.password": 0o600, "truststore.password": 0o600,
				"tls.crt": 0o644, "tls.key": 0o600, "ca.crt": 0o644, "flink-ssl.yaml": 0o600,
			}
			if len(fs.Files) != len(wantModes) {
				t.Fatalf("set has %d files, want %d", len(fs.Files), len(wantModes))
			}
			for _, file := range fs.Files {
				if want, ok := wantModes[file.Name]; !ok || file.Mode != want {
					t.Errorf("file %s has mode %v (expected: %v, listed: %v)", file.Name, file.Mode, want, ok)
				}
			}
			ksPass := string(fs.File("keystore.password").Data)
			tsPass := string(fs.File("truststore.password").Data)
			for _, p := range []string{ksPass, tsPass} {
				if len(p) < 32 || strings.Trim(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != "" {
					t.Errorf("password %q is not at least 32 ASCII letters and digits without a newline", p)
				}
			}
			if ksPass == tsPass {
				t.Errorf("keystore and truststore share a password")
			}
			ks, err := keystore.DecodeKeyStore(f, fs.File("keystore."+f.Ext()).Data, ksPass, ksPass)
			if err != nil {
				t.Fatalf("decode keystore: %v", err)
			}
			if ks.Alias != "flink" || len(ks.Chain) != 2 || !ks.Chain[0].Equal(m.Chain[0]) || !ks.Chain[1].Equal(c.ca.Cert) {
				t.Errorf("keystore has alias %q and %d certificates, want flink with leaf then CA", ks.Alias, len(ks.Chain))
			}
			cas, err := keystore.DecodeTrustStore(f, fs.File("truststore."+f.Ext()).Data, tsPass)
			if err != nil || len(cas) != 1 || !cas[0].Equal(c.ca.Cert) {
				t.Errorf("truststore = %d certificates, %v; want the cluster CA", len(cas), err)
			}
			checkPEM(t, fs, m)
			checkFlinkSSL(t, fs, f, dir, ksPass, tsPass)
		})
	}
}

func checkPEM(t *testing.T, fs *credentials.FileSet, m credentials.Material) {
	t.Helper()
	chain := parseCerts(t, fs.File("tls.crt").Data)
	if len(chain) != 2 || !chain[0].Equal(m.Chain[0]) || !chain[1].Equal(m.Chain[1]) {
		t.Errorf("tls.crt holds %d certificates, want leaf then CA", len(chain))
	}
	if cas := parseCerts(t, fs.File("ca.crt").Data); len(cas) != 1 || !cas[0].Equal(m.Trusted[0]) {
		t.Errorf("ca.crt holds %d certificates, want the trusted CA", len(cas))
	}
	block, rest := pem.Decode(fs.File("tls.key").Data)
	if block == nil || block.Type != "PRIVATE KEY" || len(rest) != 0 {
		t.Fatalf("tls.key is not a single PKCS#8 PEM block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("tls.key: %v", err)
	}
	if !m.Chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.(crypto.Signer).Public()) {
		t.Errorf("tls.key does not match the leaf")
	}
}

func parseCerts(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return certs
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
}

func checkFlinkSSL(t *testing.T, fs *credentials.FileSet, f keystore.Format, dir, ksPass, tsPass string) {
	t.Helper()
	algs, _ := flinkconf.Algorithms(x509.ECDSA)
	want := []flinkconf.KV{
		{Key: "security.ssl.internal.enabled", Value: "true"},
		{Key: "security.ssl.internal.keystore", Value: filepath.Join(dir, "keystore."+f.Ext())},
		{Key: "security.ssl.internal.keystore-password", Value: ksPass},
		{Key: "security.ssl.internal.key-password", Value: ksPass},
		{Key: "security.ssl.internal.keystore-type", Value: f.StoreType()},
		{Key: "security.ssl.internal.truststore", Value: filepath.Join(dir, "truststore."+f.Ext())},
		{Key: "security.ssl.internal.truststore-password", Value: tsPass},
		{Key: "security.ssl.internal.truststore-type", Value: f.StoreType()},
		{Key: "security.ssl.protocol", Value: "TLSv1.2"},
		{Key: "security.ssl.algorithms", Value: algs},
	}
	if len(fs.SSL) != len(want) {
		t.Fatalf("SSL has %d keys, want %d: %v", len(fs.SSL), len(want), fs.SSL)
	}
	for i := range want {
		if fs.SSL[i] != want[i] {
			t.Errorf("SSL[%d] = %v, want %v", i, fs.SSL[i], want[i])
		}
	}
	if got := fs.File("flink-ssl.yaml").Data; !bytes.Equal(got, flinkconf.RenderFlat(want)) {
		t.Errorf("flink-ssl.yaml =\n%s\nwant\n%s", got, flinkconf.RenderFlat(want))
	}
}

func TestBuildWithLegacyStoreTypesLeavesOutTheTypeKeys(t *testing.T) {
	c := newCluster(t, "legacy", "rsa-2048", 10)
	fs := build(t, c.material(t, "taskmanager", "rsa-2048", 0), keystore.JKS, "/creds",
		func(o *credentials.Options) { o.LegacyStoreTypes = true })
	yaml := string(fs.File("flink-ssl.yaml").Data)
	if strings.Contains(yaml, "-type:") {
		t.Errorf("flink-ssl.yaml names store types although LegacyStoreTypes is set:\n%s", yaml)
	}
	algs, _ := flinkconf.Algorithms(x509.RSA)
	if !strings.Contains(yaml, "security.ssl.algorithms: "+algs+"\n") {
		t.Errorf("flink-ssl.yaml lacks the RSA cipher suites:\n%s", yaml)
	}
}

// TestBuildNamesTheStoresWhereTheyWillLive: an image build writes the set
// in one directory and copies it into the image at another; flink-ssl.yaml
// names the stores at the second.
func TestBuildNamesTheStoresWhereTheyWillLive(t *testing.T) {
	c := newCluster(t, "image", "ecdsa-p256", 10)
	m := c.material(t, "jobmanager", "ecdsa-p256", 0)
	for _, tt := range []struct {
		name, runtime, want string
	}{
		{"without a run-time directory, the output directory", "", "/build/out"},
		{"with one, the run-time directory", "/opt/flink/tls", "/opt/flink/tls"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := credentials.Build(m, credentials.Options{Dir: "/build/out", RuntimeDir: tt.runtime, Created: created})
			if err != nil {
				t.Fatal(err)
			}
			yaml := string(fs.File("flink-ssl.yaml").Data)
			for _, want := range []string{
				"security.ssl.internal.keystore: " + tt.want + "/keystore.p12\n",
				"security.ssl.internal.truststore: " + tt.want + "/truststore.p12\n",
			} {
				if !strings.Contains(yaml, want) {
					t.Errorf("flink-ssl.yaml lacks %q:\n%s", want, yaml)
				}
			}
			if tt.runtime != "" && strings.Contains(yaml, "/build/out") {
				t.Errorf("flink-ssl.yaml names the build directory:\n%s", yaml)
			}
		})
	}
}

func TestBuildRefusesBadInput(t *testing.T) {
	c := newCluster(t, "refuse", "ecdsa-p256", 10)
	good := c.material(t, "jobmanager", "ecdsa-p256", 0)
	tests := []struct {
		name string
		m    func() credentials.Material
		o    func(*credentials.Options)
		want error
	}{
		{"a relative directory is refused", nil, func(o *credentials.Options) { o.Dir = "creds" }, credentials.ErrInvalidOptions},
		{"a directory with a space is refused", nil, func(o *credentials.Options) { o.Dir = "/my creds" }, credentials.ErrInvalidOptions},
		{"a directory with a colon is refused", nil, func(o *credentials.Options) { o.Dir = "/a: b" }, credentials.ErrInvalidOptions},
		{"a relative run-time directory is refused", nil, func(o *credentials.Options) { o.RuntimeDir = "tls" }, credentials.ErrInvalidOptions},
		{"a run-time directory with a space is refused", nil, func(o *credentials.Options) { o.RuntimeDir = "/opt/my tls" }, credentials.ErrInvalidOptions},
		{"a zero creation time is refused", nil, func(o *credentials.Options) { o.Created = time.Time{} }, credentials.ErrInvalidOptions},
		{"an unknown format is refused", nil, func(o *credentials.Options) { o.Format = "pem" }, keystore.ErrUnknownFormat},
		{"an unknown profile is refused", nil, func(o *credentials.Options) { o.Profile = "modern2026" }, keystore.ErrUnknownProfile},
		{"an empty chain is refused", func() credentials.Material { m := good; m.Chain = nil; return m }, nil, keystore.ErrInvalidChain},
		{"an empty trust list is refused", func() credentials.Material { m := good; m.Trusted = nil; return m }, nil, keystore.ErrNoCertificates},
		{"a key of another leaf is refused", func() credentials.Material {
			m := good
			m.Key = c.material(t, "other", "ecdsa-p256", 1).Key
			return m
		}, nil, keystore.ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := good
			if tt.m != nil {
				m = tt.m()
			}
			o := credentials.Options{Dir: "/creds", Created: created}
			if tt.o != nil {
				tt.o(&o)
			}
			fs, err := credentials.Build(m, o)
			if !errors.Is(err, tt.want) || fs != nil {
				t.Fatalf("Build = %v, %v; want error %v", fs, err, tt.want)
			}
		})
	}
}

// TestASetBuiltWithTheEarlierPasswordsOpensWithThem: Options.Passwords
// takes the passwords of the set being replaced (ReadPasswords reads them
// from its directory), so a configuration that names them opens the new
// stores; passwords this package could not have made are refused, and a
// directory without a whole set has none to read.
func TestASetBuiltWithTheEarlierPasswordsOpensWithThem(t *testing.T) {
	c := newCluster(t, "again", "ecdsa-p256", 10)
	dir := filepath.Join(t.TempDir(), "tls")
	if credentials.ReadPasswords(dir) != nil {
		t.Fatal("ReadPasswords found passwords in a directory that does not exist")
	}
	first, err := credentials.Build(c.material(t, "taskmanager", "ecdsa-p256", 0), credentials.Options{Dir: dir, Created: created})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Write(dir); err != nil {
		t.Fatal(err)
	}
	pw := credentials.ReadPasswords(dir)
	if pw == nil || pw.Keystore != string(first.File("keystore.password").Data) || pw.Truststore != string(first.File("truststore.password").Data) {
		t.Fatalf("ReadPasswords = %+v, want the written set's passwords", pw)
	}
	second, err := credentials.Build(c.material(t, "taskmanager", "ecdsa-p256", 0), credentials.Options{Dir: dir, Created: created, Passwords: pw})
	if err != nil {
		t.Fatal(err)
	}
	if string(second.File("keystore.p12").Data) == string(first.File("keystore.p12").Data) {
		t.Fatal("the second set holds the first keystore")
	}
	if _, err := keystore.DecodeKeyStore(keystore.PKCS12, second.File("keystore.p12").Data, pw.Keystore, pw.Keystore); err != nil {
		t.Fatalf("the new keystore does not open with the earlier password: %v", err)
	}
	if _, err := keystore.DecodeTrustStore(keystore.PKCS12, second.File("truststore.p12").Data, pw.Truststore); err != nil {
		t.Fatalf("the new truststore does not open with the earlier password: %v", err)
	}
	for _, kv := range second.SSL {
		if kv.Key == "security.ssl.internal.keystore-password" && kv.Value != pw.Keystore {
			t.Errorf("flink-ssl.yaml names another keystore password")
		}
	}

	if _, err := credentials.Build(c.material(t, "taskmanager", "ecdsa-p256", 0), credentials.Options{Dir: dir, Created: created,
		Passwords: &credentials.Passwords{Keystore: "short", Truststore: pw.Truststore}}); !errors.Is(err, credentials.ErrInvalidOptions) {
		t.Errorf("Build with a password it could not have made = %v, want ErrInvalidOptions", err)
	}
	half := t.TempDir()
	os.WriteFile(filepath.Join(half, "keystore.password"), []byte(pw.Keystore), 0o600)
	if credentials.ReadPasswords(half) != nil {
		t.Error("ReadPasswords took a directory with a keystore password alone")
	}
	// A link put in place of a password file (by another container on the
	// same volume) is not followed: the passwords come from the set alone.
	gen, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(elsewhere, []byte(strings.Repeat("Z", 40)), 0o600)
	ts := filepath.Join(dir, gen, "truststore.password")
	if err := os.Remove(ts); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, ts); err != nil {
		t.Fatal(err)
	}
	if got := credentials.ReadPasswords(dir); got != nil {
		t.Errorf("ReadPasswords followed a link out of the set: %+v", got)
	}
}
