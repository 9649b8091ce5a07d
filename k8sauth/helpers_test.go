package k8sauth

import (
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/flinkpki/flinkpki/k8sauth/k8stest"
)

// testIssuer is the service-account issuer of the cluster under test.
const testIssuer = "https://kubernetes.default.svc.cluster.local"

// now is the fixed time every test verifier sees.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newVerifier builds a verifier for testIssuer over jwks with a fixed clock;
// edit adjusts the Config first.
func newVerifier(tb testing.TB, jwks []byte, edit ...func(*Config)) *Verifier {
	tb.Helper()
	cfg := Config{Issuer: testIssuer, JWKS: jwks, Clock: func() time.Time { return now }}
	for _, e := range edit {
		e(&cfg)
	}
	v, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return v
}

// validClaims is a pod-bound token as the kubelet would mount it, issued a
// minute before now.
func validClaims() k8stest.Claims {
	return k8stest.Claims{
		Namespace:      "flink-orders",
		ServiceAccount: "flink",
		Pod:            "orders-jobmanager-0",
		Node:           "worker-3",
		IssuedAt:       now.Add(-time.Minute),
		Expiry:         now.Add(time.Hour),
	}
}

// b64 is unpadded base64url, the encoding of every JWS segment.
func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jsonOf marshals v or fails the test.
func jsonOf(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatalf("json.Marshal: %v", err)
	}
	return b
}

// unsignedToken builds an alg "none" token naming kid.
func unsignedToken(tb testing.TB, kid string, payload []byte) string {
	tb.Helper()
	return b64(jsonOf(tb, map[string]string{"alg": "none", "kid": kid})) + "." + b64(payload) + "."
}

// hmacToken builds the classic algorithm-confusion forgery: an HS256 token
// keyed with the bytes of the issuer's public key.
func hmacToken(tb testing.TB, kid string, pub crypto.PublicKey, payload []byte) string {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatalf("MarshalPKIXPublicKey: %v", err)
	}
	input := b64(jsonOf(tb, map[string]string{"alg": "HS256", "kid": kid})) + "." + b64(payload)
	mac := hmac.New(sha256.New, der)
	mac.Write([]byte(input))
	return input + "." + b64(mac.Sum(nil))
}

// signJWS signs payload with any key and header kid ("" for none), for
// tokens k8stest deliberately cannot make.
func signJWS(tb testing.TB, alg jose.SignatureAlgorithm, key crypto.Signer, kid string, payload []byte) string {
	tb.Helper()
	var signingKey any = key
	if kid != "" {
		signingKey = jose.JSONWebKey{Key: key, KeyID: kid}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: signingKey}, nil)
	if err != nil {
		tb.Fatalf("NewSigner: %v", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		tb.Fatalf("Sign: %v", err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		tb.Fatalf("CompactSerialize: %v", err)
	}
	return s
}

// jwksOf encodes public keys as a JWK set with the given kids.
func jwksOf(tb testing.TB, keys ...jose.JSONWebKey) []byte {
	tb.Helper()
	return jsonOf(tb, jose.JSONWebKeySet{Keys: keys})
}
