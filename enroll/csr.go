package enroll

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	"net"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var (
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
)

// CreateCSR makes the PKCS#10 request of an init container: subject CN
// cn, and the DNS names and IP addresses as a subjectAltName extension
// request. For ECDSA keys it encodes the request itself: the standard
// library's CreateCertificateRequest verifies its own signature after
// signing, which costs more than the signature and buys nothing for a key
// made a moment ago in this process. The encoding is byte-for-byte the
// standard library's (the tests compare them); other keys go to it.
func CreateCSR(r io.Reader, key crypto.Signer, cn string, dns []string, ips []net.IP) ([]byte, error) {
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || (ec.Curve != elliptic.P256() && ec.Curve != elliptic.P384()) {
		return x509.CreateCertificateRequest(r, &x509.CertificateRequest{
			Subject: pkix.Name{CommonName: cn}, DNSNames: dns, IPAddresses: ips,
		}, key)
	}
	subject, err := asn1.Marshal(pkix.Name{CommonName: cn}.ToRDNSequence())
	if err != nil {
		return nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
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
	oid, digest := oidECDSAWithSHA256, func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
	if ec.Curve == elliptic.P384() {
		oid, digest = oidECDSAWithSHA384, func(b []byte) []byte { s := sha512.Sum384(b); return s[:] }
	}
	sig, err := ecdsa.SignASN1(r, ec, digest(tbs))
	if err != nil {
		return nil, err
	}
	var out cryptobyte.Builder
	out.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oid) })
		b.AddASN1BitString(sig)
	})
	return out.Bytes()
}

var (
	oidExtensionRequest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 14}
	oidSubjectAltName   = asn1.ObjectIdentifier{2, 5, 29, 17}
)

// addSANRequest adds the PKCS#9 extensionRequest attribute holding one
// non-critical subjectAltName extension, as crypto/x509 encodes it: DNS
// names first, then IP addresses, IPv4 in 4 bytes.
func addSANRequest(b *cryptobyte.Builder, dns []string, ips []net.IP) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidExtensionRequest)
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // Extensions
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // Extension
					b.AddASN1ObjectIdentifier(oidSubjectAltName)
					b.AddASN1(cbasn1.OCTET_STRING, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							for _, name := range dns {
								for i := 0; i < len(name); i++ {
									if name[i] > 127 { // IA5String, as crypto/x509 requires
										b.SetError(fmt.Errorf("DNS name %q is not ASCII", name))
										return
									}
								}
								b.AddASN1(cbasn1.Tag(2).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(name)) })
							}
							for _, ip := range ips {
								if v4 := ip.To4(); v4 != nil {
									ip = v4
								}
								b.AddASN1(cbasn1.Tag(7).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(ip) })
							}
						})
					})
				})
			})
		})
	})
}
