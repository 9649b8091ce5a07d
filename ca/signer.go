package ca

import (
	"crypto"
	"crypto/x509"
	"fmt"

	"github.com/smallstep/certificates/cas/apiv1"
)

// Signer is a loaded CA that is ready to sign: its record plus the signing
// service. Signing goes through apiv1.CertificateAuthorityService so that a
// cluster CA can later live in a KMS or under an upstream CA without the
// issuer noticing.
type Signer struct {
	ca      *CA
	service apiv1.CertificateAuthorityService
}

// publicKeyEqual is implemented by every public key type of crypto/*.
type publicKeyEqual interface {
	Equal(crypto.PublicKey) bool
}

// NewSigner loads a CA with its private key into a softcas signing service. It
// refuses a key that does not belong to the certificate, so a mixed-up store
// entry can never sign leaves that fail to verify.
func NewSigner(c *CA, key crypto.Signer) (*Signer, error) {
	if c == nil || c.Cert == nil {
		return nil, fmt.Errorf("%w: the CA has no certificate", ErrInvalidRequest)
	}
	if !c.Cert.IsCA || c.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%w: certificate of CA %s is not a CA certificate", ErrInvalidRequest, c.ID)
	}
	if key == nil {
		return nil, fmt.Errorf("%w: CA %s was loaded without a key", ErrKeyMismatch, c.ID)
	}
	pub, ok := c.Cert.PublicKey.(publicKeyEqual)
	if !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("%w: the key loaded for CA %s belongs to another certificate", ErrKeyMismatch, c.ID)
	}
	return &Signer{ca: c, service: newLeanCAS(c.Cert, key)}, nil
}

// CA returns the record of the loaded CA.
func (s *Signer) CA() *CA { return s.ca }

// Certificate returns the CA certificate, the last element of every chain the
// signer produces.
func (s *Signer) Certificate() *x509.Certificate { return s.ca.Cert }

// Service returns the signing service backing the CA.
func (s *Signer) Service() apiv1.CertificateAuthorityService { return s.service }
