package issuer

import (
	"crypto/x509"
	"errors"
	"testing"
)

// FuzzCheckCSR checks that no input makes CheckCSR panic, and that every
// refusal wraps ErrBadCSR while every acceptance returns a CSR whose key
// passes CheckPublicKey. Seeds live in testdata/fuzz/FuzzCheckCSR.
func FuzzCheckCSR(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		csr, err := CheckCSR(der, 0)
		if err != nil {
			if !errors.Is(err, ErrBadCSR) {
				t.Fatalf("refusal does not wrap ErrBadCSR: %v", err)
			}
			return
		}
		if err := CheckPublicKey(csr.PublicKey); err != nil {
			t.Fatalf("accepted a CSR with a refused key: %v", err)
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("accepted a CSR with a bad signature: %v", err)
		}
		if _, err := x509.ParseCertificateRequest(der); err != nil {
			t.Fatalf("accepted a CSR that does not parse: %v", err)
		}
	})
}
