package enroll

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"net"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/flinkpki/flinkpki/internal/x509der"
)

// CreateCSR makes the PKCS#10 request of an init container: subject CN
// cn, and the DNS names and IP addresses as a subjectAltName extension
// request. For ECDSA keys it encodes the request itself: the standard
// library's CreateCertificateRequest verifies its own signature after
// signing, which costs more than the signature and buys nothing for a key
// made a moment ago in this process. The encoding is byte-for-byte the
// standard library's (the tests compare them); other keys go to it.
func CreateCSR(r io.Reader, key crypto.Signer, cn string, dns []string, ips []net.IP) ([]byte, error) {
	signer, ok := x509der.NewSigner(key)
	if !ok {
		return x509.CreateCertificateRequest(r, &x509.CertificateRequest{
			Subject: pkix.Name{CommonName: cn}, DNSNames: dns, IPAddresses: ips,
		}, key)
	}
	subject, err := asn1.Marshal(pkix.Name{CommonName: cn}.ToRDNSequence())
	if err != nil {
		return nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	var info cryptobyte.Builder
	info.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(0)
		b.AddBytes(subject)
		b.AddBytes(spki)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			if len(dns) > 0 || len(ips) > 0 {
				addSANRequest(b, dns, ips)
			}
		})
	})
	tbs, err := info.Bytes()
	if err != nil {
		return nil, err
	}
	return signer.Sign(r, tbs)
}

var oidExtensionRequest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 14}

// addSANRequest adds the PKCS#9 extensionRequest attribute holding one
// non-critical subjectAltName extension, as crypto/x509 encodes it.
func addSANRequest(b *cryptobyte.Builder, dns []string, ips []net.IP) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidExtensionRequest)
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // Extensions
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // Extension
					b.AddASN1ObjectIdentifier(x509der.OIDSubjectAltName)
					b.AddASN1(cbasn1.OCTET_STRING, func(b *cryptobyte.Builder) {
						x509der.AddGeneralNames(b, dns, ips, nil)
					})
				})
			})
		})
	})
}
