package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/token"
)

// privateKeyMarkers are DER prefixes that start a private key in the
// encodings Go and OpenSSL write.
var privateKeyMarkers = []struct {
	name string
	der  []byte
}{
	{"PKCS#8 EC private key", []byte{0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01}},
	{"PKCS#8 RSA private key", []byte{0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01}},
	{"SEC1 P-256 private key", []byte{0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20}},
	{"SEC1 P-384 private key", []byte{0x30, 0x81, 0xa4, 0x02, 0x01, 0x01, 0x04, 0x30}},
	{"SEC1 private key body (32-byte scalar)", []byte{0x02, 0x01, 0x01, 0x04, 0x20}},
	{"SEC1 private key body (48-byte scalar)", []byte{0x02, 0x01, 0x01, 0x04, 0x30}},
	{"PKCS#1 RSA private key", []byte{0x02, 0x01, 0x00, 0x02, 0x82}},
}

// base64Run finds the JSON string values that may be base64: records store
// []byte fields that way, so a plaintext key would not show as raw DER.
var base64Run = regexp.MustCompile(`[A-Za-z0-9+/]{24,}={0,2}`)

// keyHaystacks returns the raw file and every base64 run in it, decoded.
func keyHaystacks(db []byte) [][]byte {
	out := [][]byte{db}
	for _, m := range base64Run.FindAll(db, -1) {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
			if b, err := enc.DecodeString(string(m)); err == nil {
				out = append(out, b)
				break
			}
		}
	}
	return out
}

// secretsOf returns what must never be found of a server-made leaf key:
// its PKCS#8 DER and its secret number (the EC scalar, an RSA prime).
func secretsOf(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(raw)
	if b == nil {
		t.Fatalf("%s/tls.key holds no PEM block", dir)
	}
	key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{"the leaf key's PKCS#8 DER": b.Bytes}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		d, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		out["the leaf key's EC scalar"] = d
	case *rsa.PrivateKey:
		out["the leaf key's first RSA prime"] = k.Primes[0].Bytes()
	default:
		t.Fatalf("unexpected key type %T", key)
	}
	return out
}

// assertNoPlaintextKeys scans a database file for private keys in every
// form this code could have written them.
func assertNoPlaintextKeys(t testing.TB, dbFile string, secrets map[string][]byte) {
	t.Helper()
	db, err := os.ReadFile(dbFile)
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.Index(db, []byte("-----BEGIN")); i >= 0 {
		t.Errorf("the database holds a PEM block at offset %d: %q", i, db[i:min(len(db), i+40)])
	}
	hay := keyHaystacks(db)
	for _, h := range hay {
		for _, m := range privateKeyMarkers {
			if bytes.Contains(h, m.der) {
				t.Errorf("the database holds a %s", m.name)
			}
		}
		for name, s := range secrets {
			if bytes.Contains(h, s) {
				t.Errorf("the database holds %s", name)
			}
		}
	}
	for name, s := range secrets {
		if bytes.Contains(bytes.ToLower(db), []byte(hex.EncodeToString(s))) {
			t.Errorf("the database holds %s in hex", name)
		}
	}
	t.Logf("scanned %d bytes and %d decoded base64 values of %s", len(db), len(hay)-1, filepath.Base(dbFile))
}

// rotateKEK runs "admin rotate-kek", or the command itself while the CLI
// does not offer it yet.
func rotateKEK(t testing.TB, dir, oldKEK, newKEK string) result {
	t.Helper()
	args := []string{"--data-dir", dir, "--kek-file", oldKEK, "--new-kek-file", newKEK}
	root := (&app{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, now: time.Now}).newRootCmd()
	if c, _, err := root.Find([]string{"admin", "rotate-kek"}); err == nil && c.Name() == "rotate-kek" {
		return runCLI(t, nil, append([]string{"admin", "rotate-kek"}, args...)...)
	}
	var out, errb bytes.Buffer
	cmd := newAdminRotateKEKCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	code := 0
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		code = exitCode(markOperation(err))
		errb.WriteString("flinkpki: " + oneLine(err.Error()) + "\n")
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// TestCAAndBakedKeysAreNeverStoredInTheClear issues for an EC and an RSA
// cluster (a prepared next CA included) and scans the database file for
// private keys in any encoding, and for the exact keys bake returned.
func TestCAAndBakedKeysAreNeverStoredInTheClear(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	secrets := map[string][]byte{}
	for _, kt := range []string{"ecdsa-p256", "rsa-2048"} {
		cluster := "rest-" + strings.ReplaceAll(kt, "-", "")
		s.cli(t, s.admin, "cluster", "create", cluster, "--key-type", kt).ok(t)
		s.cli(t, s.admin, "ca", "prepare", "--cluster", cluster).ok(t)
		baked := filepath.Join(t.TempDir(), "baked")
		s.cli(t, s.admin, "bake", "--cluster", cluster, "--role", "jobmanager", "--holder", "jm-0", "--out", baked).ok(t)
		for name, v := range secretsOf(t, baked) {
			secrets[kt+": "+name] = v
		}
		s.cli(t, "", "init", "--cluster", cluster, "--role", "taskmanager", "--holder", "tm-0",
			"--out", filepath.Join(t.TempDir(), "init"), "--token-file", s.tokenFor(t, cluster, "taskmanager")).ok(t)
	}
	// Token secrets too, as text and decoded: only their hashes are stored.
	// An administrator token, and an enrollment token still unspent.
	for name, file := range map[string]string{"the administrator token's secret": s.admin, "an enrollment token's secret": s.tokenFor(t, "rest-ecdsap256", "taskmanager", "--uses", "3")} {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := token.Parse(strings.TrimSpace(string(raw)))
		if err != nil {
			t.Fatal(err)
		}
		secrets[name] = []byte(tok.Secret)
		dec, err := base64.RawURLEncoding.DecodeString(tok.Secret)
		if err != nil {
			t.Fatal(err)
		}
		secrets[name+", decoded"] = dec
	}
	s.stop(t)
	assertNoPlaintextKeys(t, filepath.Join(dir, "flinkpki.db"), secrets)
}

// TestTheScanFindsAPlaintextKey keeps the scan honest: a key written the
// way a careless store would (JSON-encoded PKCS#8) must be found.
func TestTheScanFindsAPlaintextKey(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, filepath.Join(dir, "data"))
	out := filepath.Join(dir, "baked")
	s.cli(t, s.admin, "cluster", "create", "honest").ok(t)
	s.cli(t, s.admin, "bake", "--cluster", "honest", "--role", "jobmanager", "--holder", "jm-0", "--out", out).ok(t)
	secrets := secretsOf(t, out)
	leaky := filepath.Join(dir, "leaky.db")
	os.WriteFile(leaky, []byte(`{"key":"`+base64.StdEncoding.EncodeToString(secrets["the leaf key's PKCS#8 DER"])+`"}`), 0o600)
	ft := &fakeTB{TB: t}
	assertNoPlaintextKeys(ft, leaky, secrets)
	if ft.errors < 2 {
		t.Errorf("the scan found %d problems in a file holding a plaintext key, want the PKCS#8 marker and the key itself", ft.errors)
	}
}

// fakeTB counts Errorf calls instead of failing.
type fakeTB struct {
	testing.TB
	errors int
}

func (f *fakeTB) Errorf(string, ...any) { f.errors++ }

// TestRotatingTheKEKReencryptsEveryKeyAndRefusesTheOldOne rotates the
// key-encryption key offline: the old key must then be refused without a
// change to the file, and the new one must sign with the very same CAs.
func TestRotatingTheKEKReencryptsEveryKeyAndRefusesTheOldOne(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	db := filepath.Join(dir, "flinkpki.db")
	oldKEK := filepath.Join(dir, "kek")
	s := startServer(t, dir)
	s.cli(t, s.admin, "cluster", "create", "kr-ec").ok(t)
	s.cli(t, s.admin, "cluster", "create", "kr-rsa", "--key-type", "rsa-2048").ok(t)
	s.cli(t, s.admin, "ca", "prepare", "--cluster", "kr-ec").ok(t)
	clusters := s.cli(t, s.admin, "cluster", "list", "-o", "json").ok(t).stdout
	s.stop(t)

	newKEK := filepath.Join(t.TempDir(), "new-kek")
	os.WriteFile(newKEK, bytes.Repeat([]byte{0x5a}, 32), 0o600)
	short := filepath.Join(t.TempDir(), "short-kek")
	os.WriteFile(short, []byte("too short"), 0o600)
	unchanged, _ := os.ReadFile(db)
	rotateKEK(t, dir, short, newKEK).refused(t, "key-encryption key must be 32")
	rotateKEK(t, dir, newKEK, newKEK).refused(t, "does not open")
	if now, _ := os.ReadFile(db); !bytes.Equal(now, unchanged) {
		t.Fatal("a refused rotate-kek changed the database file")
	}
	underOld := sealedKeysIn(t, db)
	if len(underOld) < 6 {
		t.Fatalf("found %d sealed CA keys in the database, want at least 6: is the scan still right?", len(underOld))
	}
	r := rotateKEK(t, dir, oldKEK, newKEK).ok(t)
	// bbolt frees a replaced record's page without clearing it: the
	// rotation must leave no key sealed under the old KEK in the file (nor
	// in the backups copied from it), for whoever holds that key.
	underNew := sealedKeysIn(t, db)
	for k := range underOld {
		if underNew[k] {
			t.Errorf("a CA key sealed under the old KEK is still in the database file after the rotation")
		}
	}
	if len(underNew) != 6 {
		t.Errorf("the database holds %d sealed CA keys after the rotation, want the 6 re-encrypted ones", len(underNew))
	}
	if stale, _ := filepath.Glob(filepath.Join(dir, ".flinkpki-*")); len(stale) > 0 {
		t.Errorf("the rotation left %v beside the database", stale)
	}
	if !strings.Contains(r.stderr, "re-encrypted 6 CA keys") || strings.Count(r.stderr, "re-encrypted") != 1 {
		t.Errorf("rotate-kek reported %q, want 6 CA keys (2 clusters x 2 lineages, 1 prepared, the serving CA), once", r.stderr)
	}
	// The same command again (its first run was killed after the commit,
	// say): the store is under the new key, and the command says so.
	done, _ := os.ReadFile(db)
	if r := rotateKEK(t, dir, oldKEK, newKEK).ok(t); !strings.Contains(r.stderr, "the store is under --new-kek-file "+newKEK+" already") || !strings.Contains(r.stderr, "nothing was changed") {
		t.Errorf("rotate-kek run again: %q, want it to say the store is under the new key already and nothing was changed", r.stderr)
	}
	if now, _ := os.ReadFile(db); !bytes.Equal(now, done) {
		t.Fatal("rotate-kek run again changed the database file")
	}

	before, _ := os.ReadFile(db)
	runCLI(t, nil, "serve", "--dev", "--data-dir", dir, "--listen", freeAddr(t)).refused(t, "key-encryption key")
	if after, _ := os.ReadFile(db); !bytes.Equal(after, before) {
		t.Fatal("starting with the old key-encryption key changed the database file")
	}

	s = startServer(t, dir, "--kek-file", newKEK)
	if got := s.cli(t, s.admin, "cluster", "list", "-o", "json").ok(t).stdout; got != clusters {
		t.Errorf("the CAs changed across a KEK rotation:\nbefore %s\nafter  %s", clusters, got)
	}
	for _, c := range []string{"kr-ec", "kr-rsa"} {
		out := filepath.Join(t.TempDir(), "out")
		s.cli(t, s.admin, "bake", "--cluster", c, "--role", "jobmanager", "--holder", "jm-0", "--out", out).ok(t)
		assertSignedByActiveCA(t, s, c, out)
	}
}

// sealedKeysIn returns every sealed CA key in the bytes of the database
// file, live or in a freed page.
func sealedKeysIn(t testing.TB, db string) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, m := range regexp.MustCompile(`"sealed_key":"([A-Za-z0-9+/=]+)"`).FindAllSubmatch(raw, -1) {
		keys[string(m[1])] = true
	}
	return keys
}

// assertSignedByActiveCA checks that the leaf in out was signed by the
// cluster's active internal CA, by signature and by fingerprint.
func assertSignedByActiveCA(t testing.TB, s *testServer, cluster, out string) {
	t.Helper()
	var c struct {
		CAs []struct {
			Purpose, State string
			PEM            string `json:"certificate_pem"`
		} `json:"cas"`
	}
	r := s.cli(t, s.admin, "cluster", "get", cluster, "-o", "json").ok(t)
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(out, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(raw)
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, ca := range c.CAs {
		if ca.Purpose != "internal" || ca.State != "active" {
			continue
		}
		cb, _ := pem.Decode([]byte(ca.PEM))
		if cb == nil {
			t.Fatalf("cluster get -o json has no certificate_pem for the active CA")
		}
		caCert, err := x509.ParseCertificate(cb.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if err := leaf.CheckSignatureFrom(caCert); err != nil {
			t.Errorf("cluster %s: the leaf is not signed by the active CA: %v", cluster, err)
		}
		return
	}
	t.Errorf("cluster %s has no active internal CA", cluster)
}
