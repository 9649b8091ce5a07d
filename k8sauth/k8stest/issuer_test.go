package k8stest

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// decodeSegment decodes one base64url JWS segment as a JSON object.
func decodeSegment(tb testing.TB, seg string) map[string]any {
	tb.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		tb.Fatalf("segment is not base64url: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatalf("segment is not a JSON object: %v", err)
	}
	return m
}

// sortedKeys lists the keys of m in order.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestMintProducesTheApiserverClaimShape(t *testing.T) {
	iss := NewECIssuer(t, "https://kubernetes.default.svc")
	iat := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tok := iss.Mint(Claims{
		Namespace: "flink", ServiceAccount: "jm", Pod: "jm-0", Node: "node-1",
		IssuedAt: iat, WarnAfter: iat.Add(3607 * time.Second),
	})
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments, want 3", len(parts))
	}
	header := decodeSegment(t, parts[0])
	if got := sortedKeys(header); !slices.Equal(got, []string{"alg", "kid"}) || header["alg"] != "ES256" || header["kid"] != iss.KeyID() {
		t.Fatalf("header = %v; want exactly alg ES256 and kid %s", header, iss.KeyID())
	}
	claims := decodeSegment(t, parts[1])
	if got, want := sortedKeys(claims), []string{"aud", "exp", "iat", "iss", "jti", "kubernetes.io", "nbf", "sub"}; !slices.Equal(got, want) {
		t.Fatalf("claims %v, want %v", got, want)
	}
	checks := map[string]any{
		"iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:flink:jm",
		"iat": float64(iat.Unix()), "nbf": float64(iat.Unix()), "exp": float64(iat.Add(DefaultLifetime).Unix()),
	}
	for k, want := range checks {
		if claims[k] != want {
			t.Errorf("claim %s = %v, want %v", k, claims[k], want)
		}
	}
	if aud, ok := claims["aud"].([]any); !ok || len(aud) != 1 || aud[0] != "flinkpki" {
		t.Errorf(`aud = %v, want ["flinkpki"] as an array`, claims["aud"])
	}
	k8s := claims["kubernetes.io"].(map[string]any)
	if got, want := sortedKeys(k8s), []string{"namespace", "node", "pod", "serviceaccount", "warnafter"}; !slices.Equal(got, want) {
		t.Fatalf("kubernetes.io keys %v, want %v", got, want)
	}
	if k8s["namespace"] != "flink" || k8s["warnafter"] != float64(iat.Unix()+3607) {
		t.Errorf("kubernetes.io = %v", k8s)
	}
	for field, name := range map[string]string{"pod": "jm-0", "serviceaccount": "jm", "node": "node-1"} {
		r := k8s[field].(map[string]any)
		if r["name"] != name || len(r["uid"].(string)) != 36 {
			t.Errorf("kubernetes.io.%s = %v; want name %q and a UUID", field, r, name)
		}
	}
}

func TestMintOmitsPodAndNodeWhenUnbound(t *testing.T) {
	iss := NewECIssuer(t, "https://kubernetes.default.svc")
	claims := decodeSegment(t, strings.Split(iss.Mint(Claims{}), ".")[1])
	k8s := claims["kubernetes.io"].(map[string]any)
	if got := sortedKeys(k8s); !slices.Equal(got, []string{"namespace", "serviceaccount"}) {
		t.Fatalf("kubernetes.io keys %v; want only namespace and serviceaccount", got)
	}
	if claims["sub"] != "system:serviceaccount:default:default" {
		t.Fatalf("sub = %v", claims["sub"])
	}
}

func TestMintLegacyProducesTheSecretTokenShape(t *testing.T) {
	iss := NewECIssuer(t, "https://kubernetes.default.svc")
	claims := decodeSegment(t, strings.Split(iss.Mint(Claims{Legacy: true, Namespace: "ns", ServiceAccount: "sa"}), ".")[1])
	want := []string{
		"iss",
		"kubernetes.io/serviceaccount/namespace",
		"kubernetes.io/serviceaccount/secret.name",
		"kubernetes.io/serviceaccount/service-account.name",
		"kubernetes.io/serviceaccount/service-account.uid",
		"sub",
	}
	if got := sortedKeys(claims); !slices.Equal(got, want) {
		t.Fatalf("legacy claims %v, want %v", got, want)
	}
	if claims["iss"] != LegacyIssuer || claims["sub"] != "system:serviceaccount:ns:sa" {
		t.Fatalf("legacy iss/sub = %v/%v", claims["iss"], claims["sub"])
	}
}

func TestJWKSMatchesTheApiserverFormat(t *testing.T) {
	rsaIss := NewIssuer(t, "https://kubernetes.default.svc")
	ecIss := NewECIssuer(t, "https://kubernetes.default.svc")
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	data, err := os.ReadFile(JWKSFile(t, rsaIss, ecIss))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &set); err != nil {
		t.Fatalf("JWKS file is not JSON: %v", err)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("JWKS has %d keys, want 2", len(set.Keys))
	}
	for i, want := range []struct{ kty, alg, kid string }{
		{"RSA", "RS256", rsaIss.KeyID()},
		{"EC", "ES256", ecIss.KeyID()},
	} {
		k := set.Keys[i]
		if k["kty"] != want.kty || k["alg"] != want.alg || k["kid"] != want.kid || k["use"] != "sig" {
			t.Errorf("key %d = %v; want kty %s alg %s kid %s use sig", i, k, want.kty, want.alg, want.kid)
		}
		if _, private := k["d"]; private {
			t.Errorf("key %d carries private material", i)
		}
	}
}

func TestKeyIDIsTheApiserverDerivation(t *testing.T) {
	iss := NewECIssuer(t, "https://kubernetes.default.svc")
	der, err := x509.MarshalPKIXPublicKey(iss.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	if want := base64.RawURLEncoding.EncodeToString(sum[:]); iss.KeyID() != want {
		t.Fatalf("KeyID = %s, want %s", iss.KeyID(), want)
	}
}

func TestMintFileWritesTheTokenWithoutNewline(t *testing.T) {
	iss := NewECIssuer(t, "https://kubernetes.default.svc")
	b, err := os.ReadFile(iss.MintFile(Claims{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(strings.Split(string(b), ".")) != 3 || strings.HasSuffix(string(b), "\n") {
		t.Fatalf("token file content %q is not one bare JWT", b)
	}
}
