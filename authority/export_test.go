package authority

import (
	"context"

	"github.com/flinkpki/flinkpki/store"
)

// ListAuditScanning is ListAudit with another bound on the entries one call
// reads, so a test can reach it with a short trail.
func (a *Authority) ListAuditScanning(ctx context.Context, cluster string, after uint64, limit, scanLimit int) ([]*store.AuditEntry, uint64, error) {
	return a.listAudit(ctx, cluster, after, limit, scanLimit)
}

// CachedSigners is how many CA certificates the signer cache holds.
func (a *Authority) CachedSigners() int {
	a.cache.mu.RLock()
	defer a.cache.mu.RUnlock()
	return len(a.cache.entries)
}
