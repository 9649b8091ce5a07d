package authority

import (
	"context"
	"crypto"
	"io"
	"slices"
	"time"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/store"
)

// ListAuditScanning is ListAudit with another bound on the entries one call
// reads, so a test can reach it with a short trail.
func (a *Authority) ListAuditScanning(ctx context.Context, cluster string, after uint64, limit, scanLimit int) ([]*store.AuditEntry, uint64, error) {
	return a.listAudit(ctx, cluster, after, limit, scanLimit)
}

// SigningCAs returns cluster/ID of each CA whose key this Authority holds
// open, sorted: what ForgetIdleSigners has not dropped yet.
func (a *Authority) SigningCAs() []string {
	a.lineMu.RLock()
	defer a.lineMu.RUnlock()
	out := make([]string, 0, len(a.lines))
	for _, ls := range a.lines {
		out = append(out, ls.signer.CA().Cluster+"/"+ls.signer.CA().ID)
	}
	slices.Sort(out)
	return out
}

// SigningKey is the opened key of a lineage's signing state, nil when none
// is held.
func (a *Authority) SigningKey(cluster string, p ca.Purpose) crypto.Signer {
	a.lineMu.RLock()
	defer a.lineMu.RUnlock()
	if ls := a.lines[lineKey(cluster, p)]; ls != nil {
		return ls.key
	}
	return nil
}

// ClusterLocks is how many cluster names have a lock entry.
func (a *Authority) ClusterLocks() int {
	a.lockMu.Lock()
	defer a.lockMu.Unlock()
	return len(a.locks)
}

// RefillWith makes the pool's refills call gen instead of generating keys.
func (p *KeyPool) RefillWith(gen func(ca.KeyType) (crypto.Signer, error)) {
	p.refill = func(kt ca.KeyType, _ io.Reader) (crypto.Signer, error) { return gen(kt) }
}

// PruneAuditInChunks is PruneAudit with chunk removals per transaction,
// so a test reaches a call of several transactions with a short trail.
func (a *Authority) PruneAuditInChunks(ctx context.Context, actor Actor, through uint64, hash string, limit, chunk int) (*PruneReport, error) {
	return a.pruneAudit(ctx, actor, through, hash, limit, chunk)
}

// CheckFence is checkFence, for its table test; Fenced reports whether its
// answer holds the issuance back.
func CheckFence(c *store.Cluster, p ca.Purpose, now time.Time, passed bool) (fenced bool) {
	return checkFence(c, p, now, passed) != nil
}

// FenceFor and FenceSkew are how long a fence holds issuances back, and
// how far ahead of the local clock one may end and still be waited for.
const FenceFor, FenceSkew = fenceFor, fenceSkew
