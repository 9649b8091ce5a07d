package enroll

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"testing"
)

func TestTheFastCSRIsByteForByteTheStandardLibrarysRequest(t *testing.T) {
	sans := []struct {
		dns []string
		ips []net.IP
	}{
		{},
		{dns: []string{"localhost"}},
		{ips: []net.IP{net.IPv4(127, 0, 0, 1)}},
		{dns: []string{"tm-0.orders.svc", "localhost"}, ips: []net.IP{net.ParseIP("10.1.2.3"), net.ParseIP("fd00::1"), net.IPv4(127, 0, 0, 1).To4()}},
	}
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		for _, cn := range []string{"tm-0", "orders-taskmanager-7f9c-1", ""} {
			for _, san := range sans {
				name := fmt.Sprintf("%s %q dns=%v ips=%v", curve.Params().Name, cn, san.dns, san.ips)
				key, _ := ecdsa.GenerateKey(curve, rand.Reader)
				der, err := CreateCSR(rand.Reader, key, cn, san.dns, san.ips)
				if err != nil {
					t.Fatal(err)
				}
				csr, err := x509.ParseCertificateRequest(der)
				if err != nil {
					t.Fatalf("%s: the fast CSR does not parse: %v", name, err)
				}
				if err := csr.CheckSignature(); err != nil {
					t.Fatalf("%s: bad signature: %v", name, err)
				}
				std, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
					Subject: pkix.Name{CommonName: cn}, DNSNames: san.dns, IPAddresses: san.ips}, key)
				if err != nil {
					t.Fatal(err)
				}
				stdCSR, _ := x509.ParseCertificateRequest(std)
				if !bytes.Equal(csr.RawTBSCertificateRequest, stdCSR.RawTBSCertificateRequest) {
					t.Fatalf("%s: request info differs from the standard library's\nfast %x\nstd  %x", name, csr.RawTBSCertificateRequest, stdCSR.RawTBSCertificateRequest)
				}
				if csr.SignatureAlgorithm != stdCSR.SignatureAlgorithm || csr.Subject.CommonName != cn || len(csr.DNSNames) != len(san.dns) || len(csr.IPAddresses) != len(san.ips) {
					t.Fatalf("%s: algorithm %v, subject %q, dns %v, ips %v", name, csr.SignatureAlgorithm, csr.Subject.CommonName, csr.DNSNames, csr.IPAddresses)
				}
			}
		}
	}
}

func TestCSRsRefuseWhatTheStandardLibraryRefusesAndRSAUsesIt(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := CreateCSR(rand.Reader, ec, "jm", []string{"bücher.example"}, nil); err == nil {
		t.Error("a non-ASCII DNS name was encoded; crypto/x509 refuses it")
	}
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	b, err := CreateCSR(rand.Reader, rk, "jm", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(b)
	if err != nil || csr.CheckSignature() != nil || len(csr.DNSNames) != 1 {
		t.Fatalf("rsa CSR: %v", err)
	}
}

func BenchmarkCreateCSRP256(b *testing.B) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			CreateCSR(rand.Reader, key, "tm-0", nil, nil)
		}
	})
	b.Run("stdlib", func(b *testing.B) {
		for b.Loop() {
			x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "tm-0"}}, key)
		}
	})
}
