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

func TestVerifyAcceptsProjectedTokens(t *testing.T) {
	rsaIss := k8stest.NewIssuer(t, testIssuer)
	ecIss := k8stest.NewECIssuer(t, testIssuer)
	for _, iss := range []*k8stest.Issuer{rsaIss, ecIss} {
		v := newVerifier(t, iss.JWKS())
		tests := []struct {
			name  string
			token func() string
		}{
			{"a pod-bound token", func() string { return iss.Mint(validClaims()) }},
			{"a token file ending in a newline", func() string { return iss.Mint(validClaims()) + "\n" }},
			{"a token for several audiences", func() string {
				c := validClaims()
				c.Audience = []string{"vault", "flinkpki"}
				return iss.Mint(c)
			}},
			{"a token expired less than the leeway ago", func() string {
				c := validClaims()
				c.IssuedAt, c.Expiry = now.Add(-time.Hour), now.Add(-DefaultLeeway)
				return iss.Mint(c)
			}},
			{"a token not valid before a time within the leeway", func() string {
				c := validClaims()
				c.IssuedAt, c.NotBefore = now.Add(DefaultLeeway), now.Add(DefaultLeeway)
				return iss.Mint(c)
			}},
			{"a token the kubelet is about to renew, a day old", func() string {
				c := validClaims()
				c.IssuedAt, c.Expiry = now.Add(-24*time.Hour), now.Add(24*time.Hour)
				return iss.Mint(c)
			}},
			{"a token with warnafter, as extended kubelet tokens have", func() string {
				c := validClaims()
				c.WarnAfter = now.Add(time.Minute)
				return iss.Mint(c)
			}},
		}
		for _, tt := range tests {
			t.Run(iss.Algorithm()+"/"+tt.name, func(t *testing.T) {
				id, err := v.Verify(context.Background(), tt.token())
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if id.Namespace != "flink-orders" || id.ServiceAccount != "flink" || id.Pod != "orders-jobmanager-0" || id.Node != "worker-3" {
					t.Fatalf("identity = %+v; want flink-orders/flink on pod orders-jobmanager-0, node worker-3", id)
				}
				if id.Subject != "system:serviceaccount:flink-orders:flink" {
					t.Fatalf("Subject = %q", id.Subject)
				}
				if id.PodUID == "" || id.ServiceAccountUID == "" || id.PodUID == id.ServiceAccountUID {
					t.Fatalf("identity UIDs not carried over: %+v", id)
				}
			})
		}
	}
}

func TestVerifyReportsTheTokenExpiry(t *testing.T) {
	iss := k8stest.NewECIssuer(t, testIssuer)
	c := validClaims()
	c.Expiry = now.Add(42 * time.Minute)
	id, err := newVerifier(t, iss.JWKS()).Verify(context.Background(), iss.Mint(c))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !id.Expiry.Equal(c.Expiry) {
		t.Fatalf("Expiry = %v, want %v", id.Expiry, c.Expiry)
	}
}

func TestVerifyAcceptsATokenNotBoundToAPod(t *testing.T) {
	iss := k8stest.NewECIssuer(t, testIssuer)
	c := validClaims()
	c.Pod, c.Node = "", ""
	id, err := newVerifier(t, iss.JWKS()).Verify(context.Background(), iss.Mint(c))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if id.Pod != "" || id.PodUID != "" || id.Node != "" {
		t.Fatalf("identity names a pod or node the token did not: %+v", id)
	}
}

func TestVerifyHonoursConfiguredAudienceAndLeeway(t *testing.T) {
	iss := k8stest.NewECIssuer(t, testIssuer)
	c := validClaims()
	c.Audience = []string{"flinkpki-prod"}
	c.IssuedAt, c.Expiry = now.Add(-time.Hour), now.Add(-5*time.Minute)
	tok := iss.Mint(c)

	strict := newVerifier(t, iss.JWKS(), func(cfg *Config) { cfg.Audience = "flinkpki-prod" })
	if _, err := strict.Verify(context.Background(), tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("with the default leeway: err = %v, want ErrExpired", err)
	}
	lax := newVerifier(t, iss.JWKS(), func(cfg *Config) {
		cfg.Audience = "flinkpki-prod"
		cfg.Leeway = 10 * time.Minute
	})
	if _, err := lax.Verify(context.Background(), tok); err != nil {
		t.Fatalf("with a 10m leeway: %v", err)
	}
}

func TestVerifyAcceptsEitherKeyDuringRotation(t *testing.T) {
	oldKey := k8stest.NewIssuer(t, testIssuer)
	newKey := k8stest.NewECIssuer(t, testIssuer)
	retired := k8stest.NewECIssuer(t, testIssuer)
	v := newVerifier(t, k8stest.JWKS(t, oldKey, newKey))
	for _, iss := range []*k8stest.Issuer{oldKey, newKey} {
		if _, err := v.Verify(context.Background(), iss.Mint(validClaims())); err != nil {
			t.Errorf("token from key %s: %v", iss.KeyID(), err)
		}
	}
	if _, err := v.Verify(context.Background(), retired.Mint(validClaims())); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("token from a key outside the JWKS: err = %v, want ErrUnknownKey", err)
	}
}

func TestVerifyTriesEveryKeyWhenTheTokenHasNoKeyID(t *testing.T) {
	keyA, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keyB, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	outsider, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks := jwksOf(t,
		jose.JSONWebKey{Key: keyA.Public(), KeyID: "a", Use: "sig"},
		jose.JSONWebKey{Key: keyB.Public(), KeyID: "b", Use: "sig"})
	payload := k8stest.NewECIssuer(t, testIssuer).Payload(validClaims())
	v := newVerifier(t, jwks)

	if _, err := v.Verify(context.Background(), signJWS(t, jose.ES256, keyB, "", payload)); err != nil {
		t.Fatalf("kid-less token signed by the second key: %v", err)
	}
	if _, err := v.Verify(context.Background(), signJWS(t, jose.ES256, outsider, "", payload)); !errors.Is(err, ErrSignature) {
		t.Fatalf("kid-less token signed by an outside key: err = %v, want ErrSignature", err)
	}
}

func TestVerifyRefusesAfterContextCancel(t *testing.T) {
	iss := k8stest.NewECIssuer(t, testIssuer)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := newVerifier(t, iss.JWKS()).Verify(ctx, iss.Mint(validClaims())); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestVerifyNamesTheAudienceItGotAndWanted(t *testing.T) {
	iss := k8stest.NewECIssuer(t, testIssuer)
	c := validClaims()
	c.Audience = []string{"vault"}
	_, err := newVerifier(t, iss.JWKS()).Verify(context.Background(), iss.Mint(c))
	want := `service-account token audience is ["vault"], expected "flinkpki"`
	if !errors.Is(err, ErrAudience) || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v; want ErrAudience saying %s", err, want)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("error spans several lines: %q", err)
	}
}
