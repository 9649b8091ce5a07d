package x509der

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"
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
