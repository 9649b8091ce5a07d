package ca

import (
	"crypto"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/smallstep/certificates/cas/apiv1"
)

func TestNewSignerSignsThroughTheCASInterface(t *testing.T) {
	t.Parallel()
	c, key := newTestCA(t, CreateRequest{})
	s, err := NewSigner(c, key)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	if s.CA() != c || s.Certificate() != c.Cert {
		t.Fatal("the signer does not hold the CA it was made from")
	}
	leafKey, err := KeyTypeECDSAP256.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.Service().CreateCertificate(&apiv1.CreateCertificateRequest{
		Template: &x509.Certificate{PublicKey: leafKey.Public(), NotBefore: t0, NotAfter: t0.Add(time.Hour)},
		Lifetime: time.Hour,
	})
	if err != nil {
		t.Fatalf("CreateCertificate: %v", err)
	}
	if err := resp.Certificate.CheckSignatureFrom(c.Cert); err != nil {
		t.Fatalf("the leaf is not signed by the CA: %v", err)
	}
	if len(resp.CertificateChain) != 1 || resp.CertificateChain[0] != c.Cert {
		t.Fatalf("chain = %v, want the CA alone", resp.CertificateChain)
	}
}

func TestNewSignerRefusesAKeyOfAnotherCA(t *testing.T) {
	t.Parallel()
	a, _ := newTestCA(t, CreateRequest{})
	_, otherKey := newTestCA(t, CreateRequest{})
	leaf, err := KeyTypeECDSAP256.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		ca      *CA
		key     crypto.Signer
		wantErr error
	}{
		{"a key of another CA is refused", a, otherKey, ErrKeyMismatch},
		{"a missing key is refused", a, nil, ErrKeyMismatch},
		{"a CA without certificate is refused", &CA{ID: "internal-1"}, leaf, ErrInvalidRequest},
		{"a leaf certificate is refused", &CA{ID: "internal-1", Cert: &x509.Certificate{PublicKey: leaf.Public()}}, leaf, ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewSigner(tt.ca, tt.key)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("NewSigner error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}
