// Package k8stest mints real Kubernetes service-account tokens for tests, so
// that code which accepts them (k8sauth, the API server, the CLI) is tested
// against the same bytes a kube-apiserver produces, signed with a real key
// and checked against a real JWKS, never against a mock verifier.
//
// Typical use:
//
//	iss := k8stest.NewIssuer(t, "https://kubernetes.default.svc")
//	jwksFile := k8stest.JWKSFile(t, iss)        // for --k8s-jwks-file
//	tok := iss.Mint(k8stest.Claims{Namespace: "flink", ServiceAccount: "jm", Pod: "jm-0"})
//
// It is test support only: it imports "testing" and fails the test on error.
package k8stest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// Issuer plays the kube-apiserver's service-account token signer: one key,
// one key id, one issuer URL.
type Issuer struct {
	// URL is the issuer ("iss") stamped on tokens whose Claims leave Issuer
	// empty, like the apiserver's --service-account-issuer.
	URL string

	tb     testing.TB
	key    crypto.Signer
	alg    jose.SignatureAlgorithm
	keyID  string
	public jose.JSONWebKey
}

// NewIssuer returns an issuer with a fresh RSA-2048 key signing RS256, which
// is what kube-apiserver uses with its default service-account key.
func NewIssuer(tb testing.TB, url string) *Issuer {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatalf("k8stest: generating RSA key: %v", err)
	}
	return newIssuer(tb, url, key, jose.RS256)
}

// NewECIssuer returns an issuer with a fresh P-256 key signing ES256, which
// kube-apiserver uses when its service-account key is an EC key. It is much
// faster to create than NewIssuer.
func NewECIssuer(tb testing.TB, url string) *Issuer {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("k8stest: generating P-256 key: %v", err)
	}
	return newIssuer(tb, url, key, jose.ES256)
}

func newIssuer(tb testing.TB, url string, key crypto.Signer, alg jose.SignatureAlgorithm) *Issuer {
	tb.Helper()
	kid, err := keyID(key.Public())
	if err != nil {
		tb.Fatalf("k8stest: computing key id: %v", err)
	}
	return &Issuer{
		URL:    url,
		tb:     tb,
		key:    key,
		alg:    alg,
		keyID:  kid,
		public: jose.JSONWebKey{Key: key.Public(), KeyID: kid, Algorithm: string(alg), Use: "sig"},
	}
}

// keyID derives the key id the way kube-apiserver does: the unpadded
// base64url SHA-256 of the public key's PKIX DER encoding.
func keyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// KeyID returns the "kid" header this issuer puts on its tokens.
func (i *Issuer) KeyID() string { return i.keyID }

// Algorithm returns the JWS algorithm this issuer signs with: "RS256" or "ES256".
func (i *Issuer) Algorithm() string { return string(i.alg) }

// PublicKey returns the issuer's public key, for tests that forge tokens with
// it (for example an HS256 token keyed with the public key bytes).
func (i *Issuer) PublicKey() crypto.PublicKey { return i.key.Public() }

// JWKS returns this issuer's public key as a JWK set, byte for byte in the
// shape the apiserver serves at /openid/v1/jwks.
func (i *Issuer) JWKS() []byte { return JWKS(i.tb, i) }

// JWKS returns one JWK set holding the public keys of all the issuers, as
// during a key rotation when the apiserver trusts several keys at once.
func JWKS(tb testing.TB, issuers ...*Issuer) []byte {
	tb.Helper()
	set := jose.JSONWebKeySet{}
	for _, iss := range issuers {
		set.Keys = append(set.Keys, iss.public)
	}
	b, err := json.Marshal(set)
	if err != nil {
		tb.Fatalf("k8stest: encoding JWKS: %v", err)
	}
	return b
}

// JWKSFile writes the issuers' JWK set to a file in tb.TempDir() and returns
// its path, ready for --k8s-jwks-file.
func JWKSFile(tb testing.TB, issuers ...*Issuer) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "jwks.json")
	if err := os.WriteFile(path, JWKS(tb, issuers...), 0o600); err != nil {
		tb.Fatalf("k8stest: writing JWKS file: %v", err)
	}
	return path
}

// Mint returns a signed token with the claims c, completed with the
// apiserver's defaults (see Claims).
func (i *Issuer) Mint(c Claims) string {
	i.tb.Helper()
	return i.Sign(i.Payload(c))
}

// MintFile mints a token and writes it to a file in tb.TempDir() the way
// the kubelet projects it (no trailing newline), returning the path for
// --token-file.
func (i *Issuer) MintFile(c Claims) string {
	i.tb.Helper()
	path := filepath.Join(i.tb.TempDir(), "token")
	if err := os.WriteFile(path, []byte(i.Mint(c)), 0o600); err != nil {
		i.tb.Fatalf("k8stest: writing token file: %v", err)
	}
	return path
}

// Sign signs an arbitrary JSON payload with the issuer's key and kid, for
// tests that need claims Claims cannot express (a string "aud", a missing
// "exp", a wrong type).
func (i *Issuer) Sign(payload []byte) string {
	i.tb.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{
		Algorithm: i.alg,
		Key:       jose.JSONWebKey{Key: i.key, KeyID: i.keyID},
	}, nil)
	if err != nil {
		i.tb.Fatalf("k8stest: creating signer: %v", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		i.tb.Fatalf("k8stest: signing token: %v", err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		i.tb.Fatalf("k8stest: serialising token: %v", err)
	}
	return s
}
