package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net"
	"net/url"
	"time"

	"github.com/smallstep/certificates/cas/apiv1"
	"github.com/smallstep/certificates/cas/softcas"
	"go.step.sm/crypto/x509util"
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
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newLeanCAS(cert *x509.Certificate, key crypto.Signer) apiv1.CertificateAuthorityService {
	soft := &softcas.SoftCAS{CertificateChain: []*x509.Certificate{cert}, Signer: key}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || (ec.Curve != elliptic.P256() && ec.Curve != elliptic.P384()) {
		return soft
	}
	return &leanCAS{SoftCAS: soft, cert: cert, key: ec}
}

var (
	oidSigECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidSigECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidExtKeyUsage        = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtExtKeyUsage     = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidExtBasicConstr     = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidExtSubjectKeyID    = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidExtAuthorityKeyID  = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidExtSAN             = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidEKUServerAuth      = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}
	oidEKUClientAuth      = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
)

// The shapes of RFC 5280's structures, as crypto/x509 marshals them.
type leanTBS struct {
	Version            int `asn1:"optional,explicit,default:0,tag:0"`
	SerialNumber       *big.Int
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Issuer             asn1.RawValue
	Validity           struct{ NotBefore, NotAfter time.Time }
	Subject            asn1.RawValue
	PublicKey          asn1.RawValue
	Extensions         []pkix.Extension `asn1:"omitempty,optional,explicit,tag:3"`
}

type leanCert struct {
	TBS                asn1.RawValue
	SignatureAlgorithm pkix.AlgorithmIdentifier
	SignatureValue     asn1.BitString
}

type leanBasicConstraints struct {
	IsCA       bool `asn1:"optional"`
	MaxPathLen int  `asn1:"optional,default:-1"`
}

type leanAuthKeyID struct {
	ID []byte `asn1:"optional,tag:0"`
}

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
		len(t.PermittedEmailAddresses) > 0, len(t.ExcludedEmailAddresses) > 0:
		return false
	}
	for _, u := range t.ExtKeyUsage {
		if u != x509.ExtKeyUsageServerAuth && u != x509.ExtKeyUsageClientAuth {
			return false
		}
	}
	switch t.PublicKey.(type) {
	case *ecdsa.PublicKey:
	default:
		if t.PublicKey == nil {
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
	exts, err := leanExtensions(t, bytes.Equal(subject, []byte{0x30, 0}), aki, ski)
	if err != nil {
		return nil, err
	}
	alg := pkix.AlgorithmIdentifier{Algorithm: oidSigECDSAWithSHA256}
	digest := func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
	if l.key.Curve == elliptic.P384() {
		alg = pkix.AlgorithmIdentifier{Algorithm: oidSigECDSAWithSHA384}
		digest = func(b []byte) []byte { s := sha512.Sum384(b); return s[:] }
	}
	tbs, err := asn1.Marshal(leanTBS{
		Version: 2, SerialNumber: t.SerialNumber, SignatureAlgorithm: alg,
		Issuer:    asn1.RawValue{FullBytes: l.cert.RawSubject},
		Validity:  struct{ NotBefore, NotAfter time.Time }{t.NotBefore.UTC(), t.NotAfter.UTC()},
		Subject:   asn1.RawValue{FullBytes: subject},
		PublicKey: asn1.RawValue{FullBytes: spki}, Extensions: exts,
	})
	if err != nil {
		return nil, err
	}
	sig, err := ecdsa.SignASN1(rand.Reader, l.key, digest(tbs))
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(leanCert{
		TBS: asn1.RawValue{FullBytes: tbs}, SignatureAlgorithm: alg,
		SignatureValue: asn1.BitString{Bytes: sig, BitLength: len(sig) * 8},
	})
}

// leanExtensions builds the extensions in crypto/x509's order.
func leanExtensions(t *x509.Certificate, subjectEmpty bool, aki, ski []byte) ([]pkix.Extension, error) {
	var exts []pkix.Extension
	add := func(id asn1.ObjectIdentifier, critical bool, v any) error {
		b, err := asn1.Marshal(v)
		if err == nil {
			exts = append(exts, pkix.Extension{Id: id, Critical: critical, Value: b})
		}
		return err
	}
	if t.KeyUsage != 0 {
		a := [2]byte{reverseBits(byte(t.KeyUsage)), reverseBits(byte(t.KeyUsage >> 8))}
		bits := a[:1]
		if a[1] != 0 {
			bits = a[:2]
		}
		if err := add(oidExtKeyUsage, true, asn1.BitString{Bytes: bits, BitLength: bitLength(bits)}); err != nil {
			return nil, err
		}
	}
	if len(t.ExtKeyUsage) > 0 {
		oids := make([]asn1.ObjectIdentifier, len(t.ExtKeyUsage))
		for i, u := range t.ExtKeyUsage {
			oids[i] = oidEKUServerAuth
			if u == x509.ExtKeyUsageClientAuth {
				oids[i] = oidEKUClientAuth
			}
		}
		if err := add(oidExtExtKeyUsage, false, oids); err != nil {
			return nil, err
		}
	}
	if err := add(oidExtBasicConstr, true, leanBasicConstraints{MaxPathLen: -1}); err != nil {
		return nil, err
	}
	if err := add(oidExtSubjectKeyID, false, ski); err != nil {
		return nil, err
	}
	if len(aki) > 0 {
		if err := add(oidExtAuthorityKeyID, false, leanAuthKeyID{aki}); err != nil {
			return nil, err
		}
	}
	if len(t.DNSNames) > 0 || len(t.IPAddresses) > 0 || len(t.URIs) > 0 {
		if err := add(oidExtSAN, subjectEmpty, sanValues(t.DNSNames, t.IPAddresses, t.URIs)); err != nil {
			return nil, err
		}
	}
	return exts, nil
}

func sanValues(dns []string, ips []net.IP, uris []*url.URL) []asn1.RawValue {
	var raw []asn1.RawValue
	for _, d := range dns {
		raw = append(raw, asn1.RawValue{Tag: 2, Class: 2, Bytes: []byte(d)})
	}
	for _, ip := range ips {
		b := ip.To4()
		if b == nil {
			b = ip
		}
		raw = append(raw, asn1.RawValue{Tag: 7, Class: 2, Bytes: b})
	}
	for _, u := range uris {
		raw = append(raw, asn1.RawValue{Tag: 6, Class: 2, Bytes: []byte(u.String())})
	}
	return raw
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
