package x509der

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"
)

// The byte-for-byte comparisons with crypto/x509 live with the callers
// (ca's leaves, enroll's CSRs); this checks which keys take this path.
func TestNewSignerTakesOnlyP256AndP384(t *testing.T) {
	ec := func(c elliptic.Curve) crypto.Signer {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for name, tc := range map[string]struct {
		key  crypto.Signer
		want bool
	}{
		"P-256":   {ec(elliptic.P256()), true},
		"P-384":   {ec(elliptic.P384()), true},
		"P-521":   {ec(elliptic.P521()), false},
		"RSA":     {rsaKey, false},
		"Ed25519": {edKey, false},
	} {
		if _, ok := NewSigner(tc.key); ok != tc.want {
			t.Errorf("%s: NewSigner ok = %v, want %v", name, ok, tc.want)
		}
	}
}

// TestNotAfterReadsWhatCryptoX509Reads: for certificates whose validity
// ends in UTCTime (before 2050) or GeneralizedTime (from 2050), with RSA and
// ECDSA keys and with names that shift every offset, NotAfter reads what a
// full parse reads; what is not a whole certificate is an error.
func TestNotAfterReadsWhatCryptoX509Reads(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		key      crypto.Signer
		cn       string
		notAfter time.Time
	}{
		{ecKey, "internal-1", time.Date(2027, 3, 4, 5, 6, 7, 0, time.UTC)},
		{ecKey, strings.Repeat("long name ", 20), time.Date(2049, 12, 31, 23, 59, 59, 0, time.UTC)},
		{rsaKey, "rest-7", time.Date(2050, 1, 1, 0, 0, 0, 0, time.UTC)},
		{rsaKey, "", time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
	} {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 1)), Subject: pkix.Name{CommonName: c.cn},
			NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: c.notAfter,
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, c.key.Public(), c.key)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		got, err := NotAfter(der)
		if err != nil || !got.Equal(parsed.NotAfter) || !got.Equal(c.notAfter) {
			t.Errorf("NotAfter of a certificate valid until %v = %v, %v; crypto/x509 reads %v", c.notAfter, got, err, parsed.NotAfter)
		}
		for _, bad := range [][]byte{nil, der[:len(der)/3], der[4:], []byte("not DER")} {
			if na, err := NotAfter(bad); err == nil {
				t.Errorf("NotAfter of %d bytes that are not a certificate = %v, want an error", len(bad), na)
			}
		}
	}
}
