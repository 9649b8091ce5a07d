package ca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/smallstep/certificates/cas/apiv1"
	"github.com/smallstep/certificates/cas/softcas"
)

// TestLeanSigningEncodesExactlyWhatCryptoX509Encodes signs the same leaf
// templates on the lean path and through softcas (x509.CreateCertificate)
// and requires identical TBSCertificate bytes, then a valid signature.
func TestLeanSigningEncodesExactlyWhatCryptoX509Encodes(t *testing.T) {
	rsaLeaf, _ := rsa.GenerateKey(rand.Reader, 2048)
	p384Leaf, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p256Leaf, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	uri, _ := url.Parse("spiffe://flinkpki/cluster/orders/role/taskmanager/holder/tm-0")
	templates := map[string]func() *x509.Certificate{
		"a taskmanager leaf": func() *x509.Certificate {
			return &x509.Certificate{
				Subject:  pkix.Name{CommonName: "tm-0", Organization: []string{"flinkpki"}, OrganizationalUnit: []string{"cluster:orders", "role:taskmanager"}},
				KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
				BasicConstraintsValid: true, URIs: []*url.URL{uri}, PublicKey: p256Leaf.Public(),
				DNSNames: []string{"tm-0", "localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP("fd00::2")},
			}
		},
		"a rest-client leaf with an RSA key": func() *x509.Certificate {
			return &x509.Certificate{
				Subject:  pkix.Name{CommonName: "ops"},
				KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
				BasicConstraintsValid: true, URIs: []*url.URL{uri}, PublicKey: rsaLeaf.Public(),
			}
		},
		"a leaf with an empty subject": func() *x509.Certificate {
			return &x509.Certificate{
				KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
				BasicConstraintsValid: true, DNSNames: []string{"flink.example"}, PublicKey: p384Leaf.Public(),
			}
		},
		"a leaf valid past 2049": func() *x509.Certificate {
			return &x509.Certificate{
				Subject: pkix.Name{CommonName: "jm-0"}, KeyUsage: x509.KeyUsageDigitalSignature,
				BasicConstraintsValid: true, PublicKey: p256Leaf.Public(),
				NotAfter: time.Date(2051, 1, 1, 0, 0, 0, 0, time.UTC),
			}
		},
	}
	for _, kt := range []KeyType{KeyTypeECDSAP256, KeyTypeECDSAP384} {
		c, key, err := Create(context.Background(), Config{Now: func() time.Time { return now }}, CreateRequest{Cluster: "orders", Purpose: PurposeInternal, Generation: 1, KeyType: kt, Validity: 30 * 365 * 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		lean := newLeanCAS(c.Cert, key)
		if _, ok := lean.(*leanCAS); !ok {
			t.Fatalf("%s: an ECDSA CA does not get the lean path", kt)
		}
		soft := &softcas.SoftCAS{CertificateChain: []*x509.Certificate{c.Cert}, Signer: key}
		for name, mk := range templates {
			serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
			fill := func(tm *x509.Certificate) *x509.Certificate {
				tm.SerialNumber = serial
				tm.NotBefore = now
				if tm.NotAfter.IsZero() {
					tm.NotAfter = now.Add(90 * 24 * time.Hour)
				}
				return tm
			}
			a, err := lean.CreateCertificate(&apiv1.CreateCertificateRequest{Template: fill(mk()), Lifetime: time.Hour})
			if err != nil {
				t.Fatalf("%s %s: lean: %v", kt, name, err)
			}
			b, err := soft.CreateCertificate(&apiv1.CreateCertificateRequest{Template: fill(mk()), Lifetime: time.Hour})
			if err != nil {
				t.Fatalf("%s %s: softcas: %v", kt, name, err)
			}
			if !bytes.Equal(a.Certificate.RawTBSCertificate, b.Certificate.RawTBSCertificate) {
				t.Errorf("%s %s: the lean TBSCertificate differs from crypto/x509's", kt, name)
			}
			if err := a.Certificate.CheckSignatureFrom(c.Cert); err != nil {
				t.Errorf("%s %s: lean signature does not verify: %v", kt, name, err)
			}
		}
	}
}

func TestLeanSigningLeavesOtherTemplatesToSoftcas(t *testing.T) {
	c, key, err := Create(context.Background(), Config{}, CreateRequest{Cluster: "c", Purpose: PurposeREST, Generation: 1, KeyType: KeyTypeECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tm := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "x"}, BasicConstraintsValid: true,
		EmailAddresses: []string{"a@example.com"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), PublicKey: leaf.Public()}
	if leanCovers(tm) {
		t.Fatal("a template with e-mail SANs was taken by the lean path")
	}
	resp, err := newLeanCAS(c.Cert, key).CreateCertificate(&apiv1.CreateCertificateRequest{Template: tm, Lifetime: time.Hour})
	if err != nil || len(resp.Certificate.EmailAddresses) != 1 {
		t.Fatalf("softcas fallback: %v", err)
	}
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	var s crypto.Signer = rk
	if _, ok := newLeanCAS(c.Cert, s).(*leanCAS); ok {
		t.Fatal("an RSA CA key took the lean path")
	}
}
