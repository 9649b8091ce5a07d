package authority

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/internal/tick"
	"github.com/flinkpki/flinkpki/store"
)

// SignerIdle is how long a lineage's signing state, with its CA's opened
// private key, stays in memory after its last issuance. serve sweeps every
// SignerSweepEvery (RunSignerSweeper).
const (
	SignerIdle       = 10 * time.Minute
	SignerSweepEvery = time.Minute
)

// lineageState is what an issuance was signed against; the commit checks
// the cluster's epoch is unchanged, so a leaf is never recorded against a
// lineage that moved on while it was being signed.
//
// The states of the lineages that issue are kept in a.lines, so the hot
// path decodes no CA records, parses no certificates and opens no sealed
// key per request. A state holds its CA's private key in the clear, so it
// is kept only while its lineage issues: a.lines holds one state per
// lineage (a new epoch replaces the old state, and a retired CA's key goes
// with it), ForgetIdleSigners drops the states unused for SignerIdle, and
// DeleteCluster drops its cluster's at once. A server with thousands of
// clusters thus holds the keys of the few that enrolled in the last minutes,
// not of every cluster that ever did.
type lineageState struct {
	lineageEpoch
	signer  *ca.Signer
	key     crypto.Signer // the signer's key, for the next epoch's state
	trusted []*x509.Certificate
	trustID []string
	keyType ca.KeyType
	leafTTL time.Duration
	used    atomic.Int64 // a.now() of the last issuance, Unix nanoseconds
}

// lineKey names a lineage in a.lines.
func lineKey(cluster string, p ca.Purpose) string { return cluster + "/" + string(p) }

// loadLineage returns the signing state of one lineage of c. It is cached
// per cluster epoch, so the hot path decodes no CA records.
func (a *Authority) loadLineage(tx *store.Txn, c *store.Cluster, p ca.Purpose) (*lineageState, error) {
	key := lineKey(c.Name, p)
	a.lineMu.RLock()
	old := a.lines[key]
	a.lineMu.RUnlock()
	if old != nil && old.current(c) {
		old.used.Store(a.now().UnixNano())
		return old, nil
	}
	v, err := a.clusterView(tx, c.Name)
	if err != nil {
		return nil, err
	}
	l := v.Lineage(p)
	active := l.Active()
	if active == nil {
		return nil, fmt.Errorf("%w: cluster %q has no active %s CA", ca.ErrNoActiveCA, c.Name, p)
	}
	rec := v.records[active.ID]
	var caKey crypto.Signer
	if old != nil && old.created.Equal(v.Cluster.Created) && bytes.Equal(old.signer.Certificate().Raw, rec.CertDER) {
		caKey = old.key // a new epoch with the same active CA: the key is open
	} else {
		keyDER, err := a.st.OpenCAKey(rec)
		if err != nil {
			return nil, err
		}
		if caKey, err = ca.ParseKey(keyDER); err != nil {
			return nil, fmt.Errorf("%w: CA key of %s/%s: %v", store.ErrCorrupt, c.Name, active.ID, err)
		}
	}
	signer, err := ca.NewSigner(active, caKey)
	if err != nil {
		return nil, err
	}
	ls := &lineageState{lineageEpoch: epochOf(v.Cluster), signer: signer, key: caKey, trustID: l.TrustIDs(),
		keyType: ca.KeyType(v.Cluster.KeyType), leafTTL: v.Cluster.LeafValidity}
	for _, cc := range l.TrustBundle() {
		ls.trusted = append(ls.trusted, cc.Cert)
	}
	ls.used.Store(a.now().UnixNano())
	a.lineMu.Lock()
	// Another request may have stored a newer state meanwhile (a replica
	// moved the lineage on): keep the newer one.
	if cur := a.lines[key]; cur == nil || !cur.created.Equal(ls.created) || cur.epoch <= ls.epoch {
		a.lines[key] = ls
	}
	a.lineMu.Unlock()
	return ls, nil
}

// ForgetIdleSigners drops the signing state, and with it the opened CA
// key, of every lineage that issued nothing for idle, and returns how many
// it dropped. The next issuance opens the key again.
func (a *Authority) ForgetIdleSigners(idle time.Duration) int {
	cutoff := a.now().Add(-idle).UnixNano()
	a.lineMu.Lock()
	defer a.lineMu.Unlock()
	n := 0
	for k, ls := range a.lines {
		if ls.used.Load() <= cutoff {
			delete(a.lines, k)
			n++
		}
	}
	return n
}

// RunSignerSweeper calls ForgetIdleSigners(idle) once per every until ctx
// ends. Every replica runs it: each holds the keys of what it signed.
func (a *Authority) RunSignerSweeper(ctx context.Context, every, idle time.Duration) {
	tick.Every(ctx, a.log, every, func(time.Time) { a.ForgetIdleSigners(idle) })
}

// forgetCluster drops the signing states of a deleted cluster.
func (a *Authority) forgetCluster(name string) {
	a.lineMu.Lock()
	defer a.lineMu.Unlock()
	for _, p := range ca.Purposes() {
		delete(a.lines, lineKey(name, p))
	}
}
