package k8sauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/flinkpki/flinkpki/k8sauth/k8stest"
)

// with returns validClaims changed by edit.
func with(edit func(*k8stest.Claims)) k8stest.Claims {
	c := validClaims()
	edit(&c)
	return c
}

// tamper replaces the payload of a signed token, keeping its header and
// signature.
func tamper(tb testing.TB, token string, payload []byte) string {
	tb.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		tb.Fatalf("token has %d segments", len(parts))
	}
	return parts[0] + "." + b64(payload) + "." + parts[2]
}

func TestVerifyRefuses(t *testing.T) {
	iss := k8stest.NewIssuer(t, testIssuer)
	stranger := k8stest.NewIssuer(t, testIssuer)
	otherCluster := k8stest.NewECIssuer(t, "https://other-cluster.example")
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384Key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, iss.JWKS())
	valid := iss.Payload(validClaims())
	std := map[string]any{
		"iss": testIssuer, "sub": "system:serviceaccount:flink-orders:flink", "aud": []string{"flinkpki"},
		"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	without := func(key string) []byte {
		m := map[string]any{"kubernetes.io": map[string]any{
			"namespace": "flink-orders", "serviceaccount": map[string]string{"name": "flink", "uid": "u"},
		}}
		for k, val := range std {
			m[k] = val
		}
		delete(m, key)
		return jsonOf(t, m)
	}

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"a token from another issuer signed with a trusted key", iss.Mint(with(func(c *k8stest.Claims) { c.Issuer = "https://other-cluster.example" })), ErrIssuer},
		{"a token of another cluster with its own key", otherCluster.Mint(validClaims()), ErrUnknownKey},
		{"a token for another audience", iss.Mint(with(func(c *k8stest.Claims) { c.Audience = []string{"vault"} })), ErrAudience},
		{"a token with no audience", iss.Mint(with(func(c *k8stest.Claims) { c.Audience = []string{} })), ErrAudience},
		{"a token whose audience only contains the expected one", iss.Mint(with(func(c *k8stest.Claims) { c.Audience = []string{"flinkpki-staging"} })), ErrAudience},
		{"a token expired just beyond the leeway", iss.Mint(with(func(c *k8stest.Claims) {
			c.IssuedAt, c.Expiry = now.Add(-time.Hour), now.Add(-DefaultLeeway-time.Second)
		})), ErrExpired},
		{"an unexpired token issued more than a day ago (a copy: the kubelet renews a pod's token within a day)", iss.Mint(with(func(c *k8stest.Claims) {
			c.IssuedAt, c.NotBefore, c.Expiry = now.Add(-DefaultMaxAge-DefaultLeeway-time.Minute), now.Add(-30*time.Hour), now.Add(365*24*time.Hour)
		})), ErrExpired},
		{"a token whose nbf is beyond the leeway", iss.Mint(with(func(c *k8stest.Claims) {
			c.IssuedAt, c.NotBefore = now.Add(-time.Minute), now.Add(DefaultLeeway+time.Second)
		})), ErrNotYetValid},
		{"a token issued in the future", iss.Mint(with(func(c *k8stest.Claims) {
			c.IssuedAt, c.NotBefore = now.Add(5*time.Minute), now.Add(-time.Minute)
		})), ErrNotYetValid},
		{"a token without exp", iss.Sign(without("exp")), ErrClaims},
		{"a token without iat (no age bound would hold)", iss.Sign(without("iat")), ErrClaims},
		{"a token signed by a key outside the JWKS", stranger.Mint(validClaims()), ErrUnknownKey},
		{"a token whose claims were changed after signing", tamper(t, iss.Mint(validClaims()),
			iss.Payload(with(func(c *k8stest.Claims) { c.Namespace = "kube-system" }))), ErrSignature},
		{"an unsigned token with alg none", unsignedToken(t, iss.KeyID(), valid), ErrSignature},
		{"an HS256 token keyed with the public key", hmacToken(t, iss.KeyID(), iss.PublicKey(), valid), ErrSignature},
		{"an ES256 token naming the RS256 key", signJWS(t, jose.ES256, ecKey, iss.KeyID(), valid), ErrSignature},
		{"a token naming a huge unknown key id", signJWS(t, jose.ES256, ecKey, strings.Repeat("k", 4000), valid), ErrUnknownKey},
		{"a token with a huge algorithm name", b64([]byte(`{"alg":"`+strings.Repeat("X", 4000)+`"}`)) + "." + b64(valid) + ".c2ln", ErrSignature},
		{"an ES384 token", signJWS(t, jose.ES384, p384Key, "", valid), ErrSignature},
		{"a token without the kubernetes.io claim", iss.Sign(without("kubernetes.io")), ErrClaims},
		{"a legacy secret-based token", iss.Mint(k8stest.Claims{Legacy: true, Namespace: "flink-orders", ServiceAccount: "flink"}), ErrLegacyToken},
		{"a legacy token claiming the configured issuer", iss.Mint(k8stest.Claims{Legacy: true, Issuer: testIssuer}), ErrLegacyToken},
		{"a subject in another namespace", iss.Mint(with(func(c *k8stest.Claims) { c.Subject = "system:serviceaccount:kube-system:flink" })), ErrClaims},
		{"a subject naming another service account", iss.Mint(with(func(c *k8stest.Claims) { c.Subject = "system:serviceaccount:flink-orders:admin" })), ErrClaims},
		{"a subject that is not a service account", iss.Mint(with(func(c *k8stest.Claims) { c.Subject = "system:node:worker-3" })), ErrClaims},
		{"a subject with extra parts", iss.Mint(with(func(c *k8stest.Claims) { c.Subject = "system:serviceaccount:flink-orders:flink:x" })), ErrClaims},
		{"a kubernetes.io claim without a service account", iss.Sign(jsonOf(t, map[string]any{
			"iss": testIssuer, "sub": "system:serviceaccount:flink-orders:flink", "aud": "flinkpki",
			"exp": now.Add(time.Hour).Unix(), "kubernetes.io": map[string]any{"namespace": "flink-orders"},
		})), ErrClaims},
		{"an empty string", "", ErrMalformed},
		{"white space", " \n", ErrMalformed},
		{"a flinkpki token", "fpe_aeaqcaibaeaqcaibaeaqcaibae_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE", ErrMalformed},
		{"two segments", "eyJhbGciOiJSUzI1NiJ9.eyJ9", ErrMalformed},
		{"four segments", iss.Mint(validClaims()) + ".x", ErrMalformed},
		{"a header that is not JSON", "bm90IGpzb24." + b64(valid) + ".c2ln", ErrMalformed},
		{"segments that are not base64url", "eyJ*.eyJ*.c2ln", ErrMalformed},
		{"an oversized token", strings.Repeat("a", MaxTokenBytes+1), ErrMalformed},
		{"signed claims that are not JSON", iss.Sign([]byte("not json")), ErrMalformed},
		{"signed claims with a numeric audience", iss.Sign(jsonOf(t, map[string]any{"iss": testIssuer, "aud": 7})), ErrMalformed},
		{"signed claims with a textual exp", iss.Sign(jsonOf(t, map[string]any{"iss": testIssuer, "aud": "flinkpki", "exp": "tomorrow"})), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := v.Verify(context.Background(), tt.token)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			t.Logf("refused: %v", err)
			if id != nil {
				t.Fatalf("Verify returned an identity with an error: %+v", id)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || len(msg) > 400 {
				t.Fatalf("error is not one short line: %q", msg)
			}
		})
	}
}
