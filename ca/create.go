package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"math/big"
	"time"

	"github.com/smallstep/certificates/cas/apiv1"
	"github.com/smallstep/certificates/cas/softcas"
	kmsapi "go.step.sm/crypto/kms/apiv1"
	"go.step.sm/crypto/kms/softkms"
	"go.step.sm/crypto/x509util"
)

// DefaultCAValidity is the lifetime of a new CA when none is asked for. Three
// years leaves room for several leaf lifetimes and a rotation margin, and
// keeps rotations rare enough that operators still remember how they go.
const DefaultCAValidity = 3 * 365 * 24 * time.Hour

// caBackdate shifts a new CA's NotBefore into the past so that leaves issued
// right after creation, themselves backdated for clock skew, still fit inside
// the CA's validity.
const caBackdate = time.Minute

// Organization is the subject organization of every flinkpki certificate.
const Organization = "flinkpki"

// CreateRequest describes a new root CA.
type CreateRequest struct {
	Cluster    string
	Purpose    Purpose
	Generation int
	// KeyType defaults to DefaultKeyType.
	KeyType KeyType
	// Validity defaults to DefaultCAValidity.
	Validity time.Duration
}

// Create makes a new self-signed root CA with a fresh key. The first
// generation of a lineage is created active, since there is nothing to rotate
// from; every later generation is created prepared and must be activated. The
// returned key must be stored (encrypted) by the caller; it is not kept here.
func Create(ctx context.Context, cfg Config, req CreateRequest) (*CA, crypto.Signer, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if err := req.normalize(); err != nil {
		return nil, nil, err
	}
	keyReq, err := req.KeyType.createKeyRequest()
	if err != nil {
		return nil, nil, err
	}
	serial, err := NewSerial(cfg.Reader())
	if err != nil {
		return nil, nil, err
	}
	now := cfg.Time()
	tmpl := rootTemplate(req, serial, now)

	kms, err := softkms.New(ctx, kmsapi.Options{Type: kmsapi.SoftKMS})
	if err != nil {
		return nil, nil, fmt.Errorf("create %s CA for cluster %q: %w", req.Purpose, req.Cluster, err)
	}
	cas, err := softcas.New(ctx, apiv1.Options{IsCreator: true, KeyManager: kms})
	if err != nil {
		return nil, nil, fmt.Errorf("create %s CA for cluster %q: %w", req.Purpose, req.Cluster, err)
	}
	resp, err := cas.CreateCertificateAuthority(&apiv1.CreateCertificateAuthorityRequest{
		Name:      IDFor(req.Purpose, req.Generation),
		Type:      apiv1.RootCA,
		Template:  tmpl,
		Lifetime:  req.Validity,
		CreateKey: keyReq,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("create %s CA for cluster %q: %w", req.Purpose, req.Cluster, err)
	}

	c := &CA{
		ID:         IDFor(req.Purpose, req.Generation),
		Cluster:    req.Cluster,
		Purpose:    req.Purpose,
		Generation: req.Generation,
		State:      StatePrepared,
		Cert:       resp.Certificate,
		Created:    now,
	}
	if req.Generation == 1 {
		c.State, c.Activated = StateActive, now
	}
	return c, resp.Signer, nil
}

// normalize fills defaults and refuses requests that cannot make a CA.
func (r *CreateRequest) normalize() error {
	if r.Cluster == "" {
		return fmt.Errorf("%w: the cluster name is empty", ErrInvalidRequest)
	}
	if _, err := ParsePurpose(string(r.Purpose)); err != nil {
		return err
	}
	if r.Generation < 1 {
		return fmt.Errorf("%w: generation %d is not positive", ErrInvalidRequest, r.Generation)
	}
	kt, err := ParseKeyType(string(r.KeyType))
	if err != nil {
		return err
	}
	r.KeyType = kt
	switch {
	case r.Validity == 0:
		r.Validity = DefaultCAValidity
	case r.Validity < 0:
		return fmt.Errorf("%w: CA validity %s is negative", ErrInvalidRequest, r.Validity)
	}
	return nil
}

// Subject names the CA after cluster, purpose and generation, so a CA seen in
// a truststore listing or a TLS error says where it belongs.
func subject(cluster string, p Purpose, gen int) x509util.Subject {
	return x509util.Subject{
		CommonName:         fmt.Sprintf("flinkpki %s %s CA %d", cluster, p, gen),
		Organization:       x509util.MultiString{Organization},
		OrganizationalUnit: x509util.MultiString{"cluster:" + cluster},
	}
}

// rootTemplate is the x509util profile of a cluster root CA: it may sign
// leaves only (path length 0), and may do nothing but sign certificates and
// CRLs.
func rootTemplate(req CreateRequest, serial *big.Int, now time.Time) *x509.Certificate {
	t := x509util.Certificate{
		Subject:          subject(req.Cluster, req.Purpose, req.Generation),
		SerialNumber:     x509util.SerialNumber{Int: serial},
		NotBefore:        now.Add(-caBackdate),
		NotAfter:         now.Add(req.Validity),
		KeyUsage:         x509util.KeyUsage(x509.KeyUsageCertSign | x509.KeyUsageCRLSign),
		BasicConstraints: &x509util.BasicConstraints{IsCA: true, MaxPathLen: 0},
	}
	return t.GetCertificate()
}
