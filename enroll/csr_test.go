package enroll

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"testing"
)

func TestTheFastCSRIsByteForByteTheStandardLibrarysRequest(t *testing.T) {
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		for _, cn := range []string{"tm-0", "orders-taskmanager-7f9c-1", ""} {
			key, _ := ecdsa.GenerateKey(curve, rand.Reader)
			der, err := createCSR(rand.Reader, key, cn, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			csr, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatalf("%s %q: the fast CSR does not parse: %v", curve.Params().Name, cn, err)
			}
			if err := csr.CheckSignature(); err != nil {
				t.Fatalf("%s %q: bad signature: %v", curve.Params().Name, cn, err)
			}
			std, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
			stdCSR, _ := x509.ParseCertificateRequest(std)
			if !bytes.Equal(csr.RawTBSCertificateRequest, stdCSR.RawTBSCertificateRequest) {
				t.Fatalf("%s %q: request info differs from the standard library's", curve.Params().Name, cn)
			}
			if csr.SignatureAlgorithm != stdCSR.SignatureAlgorithm || csr.Subject.CommonName != cn {
				t.Fatalf("%s %q: algorithm %v, subject %q", curve.Params().Name, cn, csr.SignatureAlgorithm, csr.Subject.CommonName)
			}
		}
	}
}

func TestCSRsWithSANsOrRSAKeysUseTheStandardLibrary(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, der := range map[string]func() ([]byte, error){
		"ecdsa with SANs": func() ([]byte, error) {
			return createCSR(rand.Reader, ec, "jm", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
		},
		"rsa": func() ([]byte, error) { return createCSR(rand.Reader, rk, "jm", nil, nil) },
	} {
		b, err := der()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		csr, err := x509.ParseCertificateRequest(b)
		if err != nil || csr.CheckSignature() != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func BenchmarkCreateCSRP256(b *testing.B) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			createCSR(rand.Reader, key, "tm-0", nil, nil)
		}
	})
	b.Run("stdlib", func(b *testing.B) {
		for b.Loop() {
			x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "tm-0"}}, key)
		}
	})
}
