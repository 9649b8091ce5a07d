// Package x509der encodes the parts of X.509 and PKCS#10 that flinkpki
// signs itself rather than through crypto/x509, whose Create functions
// verify every signature they make: that check costs more than the
// signature and buys nothing for a key held in the same process. What it
// writes is byte for byte what crypto/x509 writes; the tests of the
// packages that use it (ca for leaves, enroll for CSRs) compare the bytes.
// It also reads the one field of a certificate that reports over thousands
// of CAs need, its expiry (NotAfter), without a full parse.
package x509der

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var (
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}

	// The extensions of flinkpki's leaves and CSRs, named as in RFC 5280.
	OIDSubjectKeyID     = asn1.ObjectIdentifier{2, 5, 29, 14}
	OIDKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	OIDSubjectAltName   = asn1.ObjectIdentifier{2, 5, 29, 17}
	OIDBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	OIDAuthorityKeyID   = asn1.ObjectIdentifier{2, 5, 29, 35}
	OIDExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
)

// Signer signs with an ECDSA key under the algorithm crypto/x509 picks for
// it: ecdsa-with-SHA256 on P-256, ecdsa-with-SHA384 on P-384.
type Signer struct {
	key *ecdsa.PrivateKey
	alg asn1.ObjectIdentifier
}

// NewSigner returns a Signer for key, or false when key is not an ECDSA key
// on P-256 or P-384 (the caller then goes to crypto/x509).
func NewSigner(key crypto.Signer) (*Signer, bool) {
	ec, ok := key.(*ecdsa.PrivateKey)
	switch {
	case !ok:
		return nil, false
	case ec.Curve == elliptic.P256():
		return &Signer{key: ec, alg: oidECDSAWithSHA256}, true
	case ec.Curve == elliptic.P384():
		return &Signer{key: ec, alg: oidECDSAWithSHA384}, true
	}
	return nil, false
}

// AddAlgorithm adds the AlgorithmIdentifier, which ECDSA writes without
// parameters.
func (s *Signer) AddAlgorithm(b *cryptobyte.Builder) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(s.alg) })
}

// Sign signs tbs and returns SEQUENCE { tbs, AlgorithmIdentifier,
// signature BIT STRING }: a certificate or a certification request.
func (s *Signer) Sign(r io.Reader, tbs []byte) ([]byte, error) {
	var digest []byte
	if s.alg.Equal(oidECDSAWithSHA384) {
		d := sha512.Sum384(tbs)
		digest = d[:]
	} else {
		d := sha256.Sum256(tbs)
		digest = d[:]
	}
	sig, err := ecdsa.SignASN1(r, s.key, digest)
	if err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, len(tbs)+128))
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		s.AddAlgorithm(b)
		b.AddASN1BitString(sig)
	})
	return b.Bytes()
}

// AddGeneralNames adds the GeneralNames of a subjectAltName as crypto/x509
// orders them: DNS names, IP addresses (IPv4 in 4 bytes), then URIs. A DNS
// name must be ASCII (an IA5String), as crypto/x509 requires.
func AddGeneralNames(b *cryptobyte.Builder, dns []string, ips []net.IP, uris []*url.URL) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, name := range dns {
			for i := 0; i < len(name); i++ {
				if name[i] > 127 {
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
		for _, u := range uris {
			b.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(u.String())) })
		}
	})
}

// NotAfter reads the end of a certificate's validity period without parsing
// the rest of it: what reports over thousands of CAs need, where a full
// crypto/x509 parse (the key, the extensions, the names) costs more than the
// reading of the records around it. Errors mean the DER is not a
// certificate.
func NotAfter(der []byte) (time.Time, error) {
	in := cryptobyte.String(der)
	var cert, tbs, validity cryptobyte.String
	var notBefore, notAfter time.Time
	ok := in.ReadASN1(&cert, cbasn1.SEQUENCE) &&
		cert.ReadASN1(&tbs, cbasn1.SEQUENCE) &&
		tbs.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) && // version
		tbs.SkipASN1(cbasn1.INTEGER) && // serialNumber
		tbs.SkipASN1(cbasn1.SEQUENCE) && // signature
		tbs.SkipASN1(cbasn1.SEQUENCE) && // issuer
		tbs.ReadASN1(&validity, cbasn1.SEQUENCE) &&
		readTime(&validity, &notBefore) && readTime(&validity, &notAfter) && validity.Empty()
	if !ok {
		return time.Time{}, fmt.Errorf("x509der: not a certificate with a readable validity")
	}
	return notAfter, nil
}

// readTime reads a UTCTime or a GeneralizedTime, as RFC 5280 allows.
func readTime(s *cryptobyte.String, t *time.Time) bool {
	if s.PeekASN1Tag(cbasn1.UTCTime) {
		return s.ReadASN1UTCTime(t)
	}
	return s.ReadASN1GeneralizedTime(t)
}
