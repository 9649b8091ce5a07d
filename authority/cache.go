package authority

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"sync"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/store"
)

// signerCache keeps the loaded signers of the CAs that signed, keyed by the
// certificate's hash, so the hot path neither parses certificates nor opens
// sealed keys per request. CA certificates and keys never change once
// written, so an entry never goes stale; a deleted cluster's entries are
// simply never asked for again. Only signing adds entries: the scheduler's
// tick and the listings read every CA of every cluster, and kept, their
// parsed certificates held about 60 MB at 10,000 clusters.
type signerCache struct {
	mu      sync.RWMutex
	entries map[[32]byte]*cachedSigner
}

type cachedSigner struct {
	cert *x509.Certificate
	key  crypto.Signer // nil until the sealed key was opened
}

func (c *signerCache) cert(der []byte) (*x509.Certificate, error) {
	sum := sha256.Sum256(der)
	c.mu.RLock()
	e := c.entries[sum]
	c.mu.RUnlock()
	if e != nil {
		return e.cert, nil
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: stored CA certificate: %v", store.ErrCorrupt, err)
	}
	return cert, nil
}

// signer returns a signer for dom, whose certificate is der, opening the
// sealed key with openKey only on the first use. The signer is built per call
// because dom's state changes over the CA's life while its key does not.
func (c *signerCache) signer(dom *ca.CA, der []byte, openKey func() ([]byte, error)) (*ca.Signer, error) {
	sum := sha256.Sum256(der)
	var cached crypto.Signer
	c.mu.RLock()
	if e := c.entries[sum]; e != nil {
		cached = e.key // read under the lock: a first use may be storing it
	}
	c.mu.RUnlock()
	if cached != nil {
		return ca.NewSigner(dom, cached)
	}
	keyDER, err := openKey()
	if err != nil {
		return nil, err
	}
	key, err := ca.ParseKey(keyDER)
	if err != nil {
		return nil, fmt.Errorf("%w: CA key of %s/%s: %v", store.ErrCorrupt, dom.Cluster, dom.ID, err)
	}
	s, err := ca.NewSigner(dom, key)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	e := c.entries[sum]
	if e == nil {
		e = &cachedSigner{cert: dom.Cert}
		c.entries[sum] = e
	}
	e.key = key
	c.mu.Unlock()
	return s, nil
}
