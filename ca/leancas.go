package ca

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"time"

	"github.com/smallstep/certificates/cas/apiv1"
	"github.com/smallstep/certificates/cas/softcas"
	"go.step.sm/crypto/x509util"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/flinkpki/flinkpki/internal/x509der"
)

// leanCAS is softcas with a cheaper CreateCertificate for the leaves
// flinkpki issues under an ECDSA CA. x509.CreateCertificate verifies every
// signature it makes, which costs more than the signature itself and buys
// nothing for a key held in this process; on the issuance path that check
// was the largest single cost. leanCAS encodes the TBSCertificate exactly as
// x509.CreateCertificate does (the tests compare the bytes) and signs it
// once. Any template it does not cover, and every other operation, goes to
// softcas unchanged, so the apiv1 seam stays what callers see.
type leanCAS struct {
	*softcas.SoftCAS
	cert   *x509.Certificate
	signer *x509der.Signer
}

func newLeanCAS(cert *x509.Certificate, key crypto.Signer) apiv1.CertificateAuthorityService {
	soft := &softcas.SoftCAS{CertificateChain: []*x509.Certificate{cert}, Signer: key}
	s, ok := x509der.NewSigner(key)
	if !ok {
		return soft
	}
	return &leanCAS{SoftCAS: soft, cert: cert, signer: s}
}

var (
	oidEKUServerAuth = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}
	oidEKUClientAuth = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
)

// CreateCertificate signs a leaf, on the lean path when it covers the
// template and through softcas otherwise.
func (l *leanCAS) CreateCertificate(req *apiv1.CreateCertificateRequest) (*apiv1.CreateCertificateResponse, error) {
	t := req.Template
	if t == nil || !leanCovers(t) {
		return l.SoftCAS.CreateCertificate(req)
	}
	der, err := l.sign(t)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &apiv1.CreateCertificateResponse{Certificate: cert, CertificateChain: []*x509.Certificate{l.cert}}, nil
}

// leanCovers reports whether t uses only what leanCAS encodes: the fields of
// flinkpki's leaf profiles.
func leanCovers(t *x509.Certificate) bool {
	switch {
	case t.SerialNumber == nil, t.NotBefore.IsZero(), t.NotAfter.IsZero(), t.IsCA, !t.BasicConstraintsValid,
		t.SignatureAlgorithm != 0, len(t.ExtraExtensions) > 0, len(t.EmailAddresses) > 0, len(t.UnknownExtKeyUsage) > 0,
		len(t.RawSubject) > 0, len(t.AuthorityKeyId) > 0, len(t.OCSPServer) > 0, len(t.IssuingCertificateURL) > 0,
		len(t.CRLDistributionPoints) > 0, len(t.PolicyIdentifiers) > 0, len(t.Policies) > 0,
		len(t.PermittedDNSDomains) > 0, len(t.ExcludedDNSDomains) > 0, len(t.PermittedIPRanges) > 0,
		len(t.ExcludedIPRanges) > 0, len(t.PermittedURIDomains) > 0, len(t.ExcludedURIDomains) > 0,
		len(t.PermittedEmailAddresses) > 0, len(t.ExcludedEmailAddresses) > 0, t.PublicKey == nil:
		return false
	}
	for _, u := range t.ExtKeyUsage {
		if u != x509.ExtKeyUsageServerAuth && u != x509.ExtKeyUsageClientAuth {
			return false
		}
	}
	return true
}

func (l *leanCAS) sign(t *x509.Certificate) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(t.PublicKey)
	if err != nil {
		return nil, err
	}
	subject, err := asn1.Marshal(t.Subject.ToRDNSequence())
	if err != nil {
		return nil, err
	}
	ski := t.SubjectKeyId
	if ski == nil {
		if ski, err = x509util.GenerateSubjectKeyID(t.PublicKey); err != nil {
			return nil, err
		}
	}
	var aki []byte
	if !bytes.Equal(l.cert.RawSubject, subject) && len(l.cert.SubjectKeyId) > 0 {
		aki = l.cert.SubjectKeyId
	}
	// A leaf is well under 1 KiB: one buffer, no regrowth.
	tb := cryptobyte.NewBuilder(make([]byte, 0, 1024))
	tb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddASN1Int64(2) })
		b.AddASN1BigInt(t.SerialNumber)
		l.signer.AddAlgorithm(b)
		b.AddBytes(l.cert.RawSubject)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			addTime(b, t.NotBefore.UTC())
			addTime(b, t.NotAfter.UTC())
		})
		b.AddBytes(subject)
		b.AddBytes(spki)
		b.AddASN1(cbasn1.Tag(3).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				addLeanExtensions(b, t, bytes.Equal(subject, []byte{0x30, 0}), aki, ski)
			})
		})
	})
	tbs, err := tb.Bytes()
	if err != nil {
		return nil, err
	}
	return l.signer.Sign(rand.Reader, tbs)
}

// addTime encodes a time as encoding/asn1 does: UTCTime from 1950 to 2049,
// GeneralizedTime otherwise.
func addTime(b *cryptobyte.Builder, t time.Time) {
	if y := t.Year(); y >= 1950 && y < 2050 {
		b.AddASN1UTCTime(t)
	} else {
		b.AddASN1GeneralizedTime(t)
	}
}

// addLeanExtensions adds the extensions in crypto/x509's order and encoding.
func addLeanExtensions(b *cryptobyte.Builder, t *x509.Certificate, subjectEmpty bool, aki, ski []byte) {
	add := func(id asn1.ObjectIdentifier, critical bool, value func(*cryptobyte.Builder)) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(id)
			if critical {
				b.AddASN1Boolean(true)
			}
			b.AddASN1(cbasn1.OCTET_STRING, value)
		})
	}
	if t.KeyUsage != 0 {
		a := [2]byte{reverseBits(byte(t.KeyUsage)), reverseBits(byte(t.KeyUsage >> 8))}
		bits := a[:1]
		if a[1] != 0 {
			bits = a[:2]
		}
		add(x509der.OIDKeyUsage, true, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.BIT_STRING, func(b *cryptobyte.Builder) {
				b.AddUint8(uint8(len(bits)*8 - bitLength(bits))) // unused bits
				b.AddBytes(bits)
			})
		})
	}
	if len(t.ExtKeyUsage) > 0 {
		add(x509der.OIDExtKeyUsage, false, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, u := range t.ExtKeyUsage {
					if u == x509.ExtKeyUsageClientAuth {
						b.AddASN1ObjectIdentifier(oidEKUClientAuth)
					} else {
						b.AddASN1ObjectIdentifier(oidEKUServerAuth)
					}
				}
			})
		})
	}
	// A leaf's basicConstraints: cA false and no path length, both defaults,
	// so the SEQUENCE is empty.
	add(x509der.OIDBasicConstraints, true, func(b *cryptobyte.Builder) { b.AddASN1(cbasn1.SEQUENCE, func(*cryptobyte.Builder) {}) })
	add(x509der.OIDSubjectKeyID, false, func(b *cryptobyte.Builder) { b.AddASN1OctetString(ski) })
	if len(aki) > 0 {
		add(x509der.OIDAuthorityKeyID, false, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(aki) })
			})
		})
	}
	if len(t.DNSNames) > 0 || len(t.IPAddresses) > 0 || len(t.URIs) > 0 {
		add(x509der.OIDSubjectAltName, subjectEmpty, func(b *cryptobyte.Builder) {
			x509der.AddGeneralNames(b, t.DNSNames, t.IPAddresses, t.URIs)
		})
	}
}

func reverseBits(in byte) byte {
	b1 := in>>4 | in<<4
	b2 := b1>>2&0x33 | b1<<2&0xcc
	return b2>>1&0x55 | b2<<1&0xaa
}

func bitLength(b []byte) int {
	n := len(b) * 8
	for i := range b {
		c := b[len(b)-i-1]
		for bit := uint(0); bit < 8; bit++ {
			if (c>>bit)&1 == 1 {
				return n
			}
			n--
		}
	}
	return 0
}
