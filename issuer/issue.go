package issuer

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/smallstep/certificates/cas/apiv1"

	"github.com/flinkpki/flinkpki/ca"
)

// DefaultLeafValidity is the lifetime of a leaf when none is asked for. Flink
// reads its keystores only at start, so a leaf must outlive its pod: months,
// not hours.
const DefaultLeafValidity = 90 * 24 * time.Hour

// Backdate shifts a leaf's NotBefore into the past to absorb clock skew
// between the server and the pods that check the leaf.
const Backdate = time.Minute

// Config carries the clock and randomness of issuance; it is ca.Config, so
// one value serves CA creation and issuance alike.
type Config = ca.Config

// Request is an authorised request for one leaf. The caller has already
// checked who may ask for it; PublicKey comes from a CSR (see CheckCSR) or
// from a key made for bake.
type Request struct {
	Cluster     string
	Holder      string
	Role        Role
	PublicKey   crypto.PublicKey
	DNSNames    []string
	IPAddresses []net.IP
	// Validity defaults to DefaultLeafValidity; the leaf never outlives the CA.
	Validity time.Duration
}

// Issue signs a leaf for req with signer and returns it with its chain (leaf,
// then CA). It refuses a signer of the wrong purpose or cluster, one that is
// not active or has expired, and any request outside the role's profile.
func Issue(ctx context.Context, cfg Config, signer *ca.Signer, req Request) (*x509.Certificate, []*x509.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if err := req.check(); err != nil {
		return nil, nil, err
	}
	now := cfg.Time()
	if err := checkSigner(signer, req, now); err != nil {
		return nil, nil, err
	}
	tmpl, err := leafTemplate(cfg, signer.Certificate(), req, now)
	if err != nil {
		return nil, nil, err
	}
	resp, err := signer.Service().CreateCertificate(&apiv1.CreateCertificateRequest{
		Template: tmpl,
		Lifetime: tmpl.NotAfter.Sub(tmpl.NotBefore),
		Backdate: Backdate,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("sign %s certificate for holder %q of cluster %q: %w", req.Role, req.Holder, req.Cluster, err)
	}
	chain := make([]*x509.Certificate, 0, 1+len(resp.CertificateChain))
	chain = append(chain, resp.Certificate)
	chain = append(chain, resp.CertificateChain...)
	return resp.Certificate, chain, nil
}

// check validates the request on its own, before any CA is consulted, and
// fills the default validity.
func (r *Request) check() error {
	if !r.Role.valid() {
		_, err := ParseRole(string(r.Role))
		return err
	}
	if err := ValidateCluster(r.Cluster); err != nil {
		return err
	}
	if err := ValidateHolder(r.Holder); err != nil {
		return err
	}
	if err := CheckSANs(r.Role, r.DNSNames, r.IPAddresses); err != nil {
		return err
	}
	if err := CheckPublicKey(r.PublicKey); err != nil {
		return err
	}
	switch {
	case r.Validity == 0:
		r.Validity = DefaultLeafValidity
	case r.Validity < 0:
		return fmt.Errorf("%w: leaf validity %s is negative", ErrInvalidRequest, r.Validity)
	}
	return nil
}

// checkSigner keeps each CA to its own cluster, purpose and state: the
// internal CA never signs REST material, and neither signs for another
// cluster.
func checkSigner(s *ca.Signer, req Request, now time.Time) error {
	if s == nil {
		return fmt.Errorf("%w: no CA was given to sign with", ErrWrongCA)
	}
	c := s.CA()
	switch {
	case c.Purpose != req.Role.Purpose():
		return fmt.Errorf("%w: CA %s is a %s CA and must not sign %s certificates", ErrWrongCA, c.ID, c.Purpose, req.Role)
	case c.Cluster != req.Cluster:
		return fmt.Errorf("%w: CA %s belongs to cluster %q, not %q", ErrWrongCA, c.ID, c.Cluster, req.Cluster)
	case c.State != ca.StateActive:
		return fmt.Errorf("%w: CA %s is %s, and only the active CA signs", ErrWrongCA, c.ID, c.State)
	case !now.Before(c.Cert.NotAfter):
		return fmt.Errorf("%w: CA %s expired at %s; rotate the cluster's CA", ErrWrongCA, c.ID, c.Cert.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.Cert.NotBefore):
		return fmt.Errorf("%w: CA %s is not valid before %s; check the server clock", ErrWrongCA, c.ID, c.Cert.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// leafTemplate builds the leaf directly as an x509.Certificate, without
// rendering x509util text templates: this is the hot path of every pod start.
func leafTemplate(cfg Config, caCert *x509.Certificate, req Request, now time.Time) (*x509.Certificate, error) {
	serial, err := ca.NewSerial(cfg.Reader())
	if err != nil {
		return nil, err
	}
	notBefore := now.Add(-Backdate)
	if notBefore.Before(caCert.NotBefore) {
		notBefore = caCert.NotBefore
	}
	notAfter := now.Add(req.Validity)
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter
	}
	usage := x509.KeyUsageDigitalSignature
	if _, ok := req.PublicKey.(*rsa.PublicKey); ok {
		usage |= x509.KeyUsageKeyEncipherment
	}
	return &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         req.Holder,
			Organization:       []string{ca.Organization},
			OrganizationalUnit: []string{"cluster:" + req.Cluster, "role:" + string(req.Role)},
		},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              usage,
		ExtKeyUsage:           req.Role.extKeyUsage(),
		BasicConstraintsValid: true,
		DNSNames:              req.DNSNames,
		IPAddresses:           req.IPAddresses,
		URIs:                  []*url.URL{HolderURI(req.Cluster, req.Role, req.Holder)},
		PublicKey:             req.PublicKey,
	}, nil
}
