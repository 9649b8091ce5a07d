package main

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"

	"github.com/flinkpki/flinkpki/enroll"
	pb "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// enrollClient is a raw EnrollmentService client on addr with the token in
// tokenFile, for requests the CLI would never build.
func enrollClient(t testing.TB, addr, caFile, tokenFile string) pb.EnrollmentServiceClient {
	t.Helper()
	tok, err := enroll.ReadToken(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	return enrollClientWithToken(t, addr, caFile, tok)
}

func enrollClientWithToken(t testing.TB, addr, caFile, tok string) pb.EnrollmentServiceClient {
	t.Helper()
	conn, err := enroll.Dial(addr, caFile, tok)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewEnrollmentServiceClient(conn)
}

// csrFor makes a CSR signed by key from tmpl (a plain one when nil).
func csrFor(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	if tmpl == nil {
		tmpl = &x509.CertificateRequest{Subject: pkix.Name{CommonName: "tm"}}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// caFlagExtension is a critical basicConstraints extension with CA:TRUE.
func caFlagExtension(t testing.TB) pkix.Extension {
	t.Helper()
	v, err := asn1.Marshal(struct{ IsCA bool }{true})
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: v}
}
