package k8sauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/flinkpki/flinkpki/k8sauth/k8stest"
)

func TestNewRefusesAnUnusableConfig(t *testing.T) {
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := k8stest.NewECIssuer(t, testIssuer).JWKS()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"an empty issuer", Config{JWKS: good}},
		{"a blank issuer", Config{Issuer: "  ", JWKS: good}},
		{"a negative leeway", Config{Issuer: testIssuer, JWKS: good, Leeway: -time.Second}},
		{"no JWKS", Config{Issuer: testIssuer}},
		{"a JWKS that is not JSON", Config{Issuer: testIssuer, JWKS: []byte("-----BEGIN PUBLIC KEY-----")}},
		{"a JWKS with an empty key list", Config{Issuer: testIssuer, JWKS: []byte(`{"keys":[]}`)}},
		{"the discovery document instead of the JWKS", Config{Issuer: testIssuer,
			JWKS: []byte(`{"issuer":"https://kubernetes.default.svc","jwks_uri":"https://x/openid/v1/jwks"}`)}},
		{"a JWKS key of an unknown type", Config{Issuer: testIssuer, JWKS: []byte(`{"keys":[{"kty":"XYZ","kid":"k"}]}`)}},
		{"a JWKS holding only a symmetric key", Config{Issuer: testIssuer,
			JWKS: jwksOf(t, jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "hmac"})}},
		{"a JWKS holding only a 1024-bit RSA key", Config{Issuer: testIssuer,
			JWKS: jwksOf(t, jose.JSONWebKey{Key: rsa1024.Public(), KeyID: "small"})}},
		{"a JWKS holding only a P-384 key", Config{Issuer: testIssuer,
			JWKS: jwksOf(t, jose.JSONWebKey{Key: p384.Public(), KeyID: "p384"})}},
		{"a JWKS whose only key is for encryption", Config{Issuer: testIssuer,
			JWKS: jwksOf(t, jose.JSONWebKey{Key: p256.Public(), KeyID: "enc", Use: "enc"})}},
		{"a JWKS whose only key is pinned to another algorithm", Config{Issuer: testIssuer,
			JWKS: jwksOf(t, jose.JSONWebKey{Key: p256.Public(), KeyID: "es512", Algorithm: "ES512"})}},
		{"a JWKS holding a private key", Config{Issuer: testIssuer,
			JWKS: jwksOf(t, jose.JSONWebKey{Key: p256, KeyID: "leaked"})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := New(tt.cfg)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("New: err = %v, want ErrConfig", err)
			}
			t.Logf("refused: %v", err)
			if v != nil {
				t.Fatalf("New returned a verifier with an error")
			}
		})
	}
}

func TestNewKeepsOnlyUsableKeys(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss := k8stest.NewECIssuer(t, testIssuer)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(iss.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	set.Keys = append(set.Keys,
		jose.JSONWebKey{Key: p384.Public(), KeyID: "p384"},
		jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "hmac"})
	v := newVerifier(t, jwksOf(t, set.Keys...))
	if keys := *v.keys.Load(); len(keys) != 1 || keys[0].kid != iss.KeyID() || keys[0].alg != jose.ES256 {
		t.Fatalf("kept keys %+v; want only the ES256 key %s", *v.keys.Load(), iss.KeyID())
	}
	if _, err := v.Verify(context.Background(), iss.Mint(validClaims())); err != nil {
		t.Fatalf("Verify with the usable key: %v", err)
	}
}

func TestNewAppliesDefaults(t *testing.T) {
	v, err := New(Config{Issuer: testIssuer, JWKS: k8stest.NewECIssuer(t, testIssuer).JWKS()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if v.audience != DefaultAudience || v.leeway != DefaultLeeway || v.clock == nil {
		t.Fatalf("defaults not applied: audience %q, leeway %v, clock set %v", v.audience, v.leeway, v.clock != nil)
	}
}
