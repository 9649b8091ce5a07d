package authority

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/internal/x509der"
	"github.com/flinkpki/flinkpki/store"
)

// Expiry is what the expiry gauges show of one cluster: its CAs, the
// earliest expiry of a live leaf, and when each lineage's next rotation
// step is due.
type Expiry struct {
	Cluster        string
	CAs            []ExpiryCA // internal then rest, by generation
	EarliestExpiry time.Time  // zero when no leaf is live
	LiveHolders    int        // holders whose leaf has not expired
	Next           []ExpiryStep
	AutoRotate     bool
	LeafValidity   time.Duration
}

// ExpiryStep is the next rotation step of one lineage by its schedule
// (ca.NextStep): when a prepare, an activation or a retirement becomes
// due, whether the scheduler takes it or an administrator must.
type ExpiryStep struct {
	Purpose ca.Purpose
	Kind    ca.StepKind
	At      time.Time
}

// ExpiryCA is one CA of an Expiry.
type ExpiryCA struct {
	ID       string
	State    ca.State
	NotAfter time.Time
}

// Expiries returns the Expiry of one page of clusters, in name order, read
// in one transaction: the expiry gauges' refresh, which reads every cluster
// once a minute. It reads only what it reports: each CA certificate's
// validity, not the whole certificate (nor does it cache the certificates
// of every cluster), and each holder's expiry, not the whole holder.
func (a *Authority) Expiries(ctx context.Context, after string, limit int) ([]*Expiry, string, error) {
	now := a.now()
	return clusterPage(ctx, a, after, limit, func(tx *store.Txn, cluster string) (*Expiry, error) {
		recs, err := tx.CAs(cluster)
		if err != nil {
			return nil, err
		}
		slices.SortFunc(recs, func(p, q *store.CA) int {
			return lineageOrder(ca.Purpose(p.Purpose), p.Generation, ca.Purpose(q.Purpose), q.Generation)
		})
		c, err := tx.Cluster(cluster)
		if err != nil {
			return nil, err
		}
		x := &Expiry{Cluster: cluster, AutoRotate: c.AutoRotate, LeafValidity: c.LeafValidity}
		lineages := map[ca.Purpose]ca.Lineage{}
		for _, r := range recs {
			na, err := x509der.NotAfter(r.CertDER)
			if err != nil {
				return nil, fmt.Errorf("%w: stored CA certificate %s/%s: %v", store.ErrCorrupt, cluster, r.ID, err)
			}
			x.CAs = append(x.CAs, ExpiryCA{ID: r.ID, State: ca.State(r.State), NotAfter: na})
			// The schedule reads a CA's expiry and times alone: its
			// validity stands in for the parsed certificate.
			lineages[ca.Purpose(r.Purpose)] = append(lineages[ca.Purpose(r.Purpose)], caOf(r, &x509.Certificate{NotAfter: na}))
		}
		for _, p := range ca.Purposes() {
			if step := lineageNextStep(lineages[p], c.LeafValidity, now); step.Kind != ca.StepNone {
				x.Next = append(x.Next, ExpiryStep{Purpose: p, Kind: step.Kind, At: step.At})
			}
		}
		x.EarliestExpiry, x.LiveHolders, err = tx.EarliestHolderExpiry(cluster, now)
		if err != nil {
			return nil, err
		}
		return x, nil
	})
}
