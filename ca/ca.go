package ca

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Purpose says which of a cluster's two CA lineages a CA belongs to. The two
// never sign each other's material: an internal leaf must be a secret of the
// cluster's JobManagers and TaskManagers alone.
type Purpose string

const (
	// PurposeInternal is the lineage that signs Flink's internal mutual TLS.
	PurposeInternal Purpose = "internal"
	// PurposeREST is the lineage that signs the REST proxy and REST clients.
	PurposeREST Purpose = "rest"
)

// Purposes returns a cluster's two lineages in their fixed order: internal,
// then REST.
func Purposes() []Purpose { return []Purpose{PurposeInternal, PurposeREST} }

// ParsePurpose checks a purpose name.
func ParsePurpose(s string) (Purpose, error) {
	switch p := Purpose(s); p {
	case PurposeInternal, PurposeREST:
		return p, nil
	}
	return "", fmt.Errorf("%w %q: choose one of %s, %s", ErrUnknownPurpose, s, PurposeInternal, PurposeREST)
}

// State is where a CA stands in its lineage.
type State string

const (
	// StatePrepared: in every truststore issued, not yet signing.
	StatePrepared State = "prepared"
	// StateActive: signs leaves and is in truststores.
	StateActive State = "active"
	// StateRetiring: no longer signs, still trusted until retired.
	StateRetiring State = "retiring"
)

// CA is one certificate authority of a cluster lineage. The private key is
// deliberately not a field: it is stored encrypted and only loaded into a
// Signer when signing.
type CA struct {
	// ID is deterministic, "<purpose>-<generation>", e.g. "internal-3".
	ID         string
	Cluster    string
	Purpose    Purpose
	Generation int
	State      State
	Cert       *x509.Certificate
	// Created is when the CA was made (and, for prepared CAs, when it began
	// to appear in issued truststores).
	Created time.Time
	// Activated is when the CA started signing; zero while prepared.
	Activated time.Time
	// Retiring is when the CA stopped signing; zero unless retiring.
	Retiring time.Time
}

// IDFor returns the deterministic ID of generation gen of a lineage, so that
// the next CA's name is known before it exists.
func IDFor(p Purpose, gen int) string {
	return fmt.Sprintf("%s-%d", p, gen)
}

// NotAfter returns the expiry of the CA certificate, or the zero time when the
// CA has no certificate.
func (c *CA) NotAfter() time.Time {
	if c == nil || c.Cert == nil {
		return time.Time{}
	}
	return c.Cert.NotAfter
}

// Fingerprint returns the SHA-256 fingerprint of the CA certificate as upper
// case hex pairs joined by colons ("AB:CD:..."), the form keytool -list and
// openssl x509 -fingerprint print, so operators can compare them by eye.
func (c *CA) Fingerprint() string {
	if c == nil || c.Cert == nil {
		return ""
	}
	return Fingerprint(c.Cert)
}

// Fingerprint returns the colon-separated upper-case SHA-256 fingerprint of
// a certificate; see CA.Fingerprint.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	b.Grow(len(h) + len(h)/2)
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}
