package issuer

import (
	"context"
	"crypto"
	"crypto/x509"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/ca"
)

// t0 is the fixed creation time of test CAs.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedClock(at time.Time) func() time.Time { return func() time.Time { return at } }

// newSigner creates a real, active CA of the given purpose for cluster
// "orders" at t0 and loads it.
func newSigner(tb testing.TB, p ca.Purpose, kt ca.KeyType, validity time.Duration) *ca.Signer {
	tb.Helper()
	c, key, err := ca.Create(context.Background(), ca.Config{Now: fixedClock(t0)},
		ca.CreateRequest{Cluster: "orders", Purpose: p, Generation: 1, KeyType: kt, Validity: validity})
	if err != nil {
		tb.Fatalf("create CA: %v", err)
	}
	s, err := ca.NewSigner(c, key)
	if err != nil {
		tb.Fatalf("load CA: %v", err)
	}
	return s
}

func newKey(tb testing.TB, kt ca.KeyType) crypto.Signer {
	tb.Helper()
	k, err := kt.GenerateKey(nil)
	if err != nil {
		tb.Fatalf("generate %s key: %v", kt, err)
	}
	return k
}

// newCSR signs a CSR for key from tmpl and returns its DER.
func newCSR(tb testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	tb.Helper()
	if tmpl == nil {
		tmpl = &x509.CertificateRequest{}
	}
	der, err := x509.CreateCertificateRequest(nil, tmpl, key)
	if err != nil {
		tb.Fatalf("create CSR: %v", err)
	}
	return der
}
