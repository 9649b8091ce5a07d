package issuer

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/flinkpki/flinkpki/internal/x509der"
)

// MaxSANs caps the subject alternative names of one leaf. Sixteen covers a
// REST proxy's service names with room to spare, and keeps requests small.
const MaxSANs = 16

// DefaultMaxCSRSize is a generous bound for a CSR in DER: an RSA-4096 CSR (the
// largest key taken) with MaxSANs long names stays well below it.
const DefaultMaxCSRSize = 16 << 10

// CheckCSR parses a DER CSR and refuses anything flinkpki will not sign. The
// server, not the CSR, decides the leaf's subject, usages and SANs, so a CSR
// may carry only DNS and IP SANs (which MatchCSR then holds against the
// request), and keyUsage, extKeyUsage and a non-CA basicConstraints extension
// (which are ignored). It refuses: an empty or oversized CSR (maxSize <= 0
// means DefaultMaxCSRSize), malformed DER, a bad signature, a weak or
// unsupported key, a request for a CA, e-mail or URI SANs, more than MaxSANs
// SANs, and any other extension. Every refusal wraps ErrBadCSR.
func CheckCSR(der []byte, maxSize int) (*x509.CertificateRequest, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxCSRSize
	}
	switch {
	case len(der) == 0:
		return nil, fmt.Errorf("%w: the CSR is empty", ErrBadCSR)
	case len(der) > maxSize:
		return nil, fmt.Errorf("%w: the CSR is %d bytes, more than the limit of %d", ErrBadCSR, len(der), maxSize)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed CSR: %v", ErrBadCSR, err)
	}
	if err := CheckPublicKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: the CSR signature does not verify: %v", ErrBadCSR, err)
	}
	if err := checkCSRExtensions(csr); err != nil {
		return nil, err
	}
	if err := checkCSRNames(csr); err != nil {
		return nil, err
	}
	return csr, nil
}

func checkCSRExtensions(csr *x509.CertificateRequest) error {
	for _, ext := range csr.Extensions {
		switch {
		case ext.Id.Equal(x509der.OIDBasicConstraints):
			var bc struct {
				IsCA       bool `asn1:"optional"`
				MaxPathLen int  `asn1:"optional,default:-1"`
			}
			rest, err := asn1.Unmarshal(ext.Value, &bc)
			if err != nil || len(rest) > 0 {
				return fmt.Errorf("%w: malformed basicConstraints extension", ErrBadCSR)
			}
			if bc.IsCA {
				return fmt.Errorf("%w: the CSR asks for a CA certificate; flinkpki issues leaves only", ErrBadCSR)
			}
		case ext.Id.Equal(x509der.OIDSubjectAltName), ext.Id.Equal(x509der.OIDKeyUsage), ext.Id.Equal(x509der.OIDExtKeyUsage):
		default:
			return fmt.Errorf("%w: the CSR asks for extension %s, which flinkpki does not grant", ErrBadCSR, ext.Id)
		}
	}
	return nil
}

func checkCSRNames(csr *x509.CertificateRequest) error {
	switch {
	case len(csr.EmailAddresses) > 0:
		return fmt.Errorf("%w: the CSR asks for e-mail SANs; flinkpki issues DNS and IP SANs only", ErrBadCSR)
	case len(csr.URIs) > 0:
		return fmt.Errorf("%w: the CSR asks for URI SANs; flinkpki sets the URI SAN itself", ErrBadCSR)
	}
	if n := len(csr.DNSNames) + len(csr.IPAddresses); n > MaxSANs {
		return fmt.Errorf("%w: the CSR asks for %d SANs, more than the limit of %d", ErrBadCSR, n, MaxSANs)
	}
	return nil
}

// MatchCSR refuses a CSR that names SANs the request did not carry: the
// authorised request decides the names, and a CSR must not sneak in more.
// A CSR with fewer names (or none) is fine; DNS names compare without case.
func MatchCSR(csr *x509.CertificateRequest, dnsNames []string, ips []net.IP) error {
	for _, d := range csr.DNSNames {
		if !slices.ContainsFunc(dnsNames, func(n string) bool { return strings.EqualFold(n, d) }) {
			return fmt.Errorf("%w: the CSR names DNS %q, which the request does not", ErrBadCSR, d)
		}
	}
	for _, ip := range csr.IPAddresses {
		if !slices.ContainsFunc(ips, ip.Equal) {
			return fmt.Errorf("%w: the CSR names IP %s, which the request does not", ErrBadCSR, ip)
		}
	}
	return nil
}
