package authority

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/store"
)

// ClusterView is a cluster with its CA lineages.
type ClusterView struct {
	Cluster *store.Cluster
	CAs     []*ca.CA // internal then rest, by generation
	// records are the stored CAs by ID, for changing a state or opening a
	// key without reading the lineage a second time.
	records map[string]*store.CA
}

// GetCluster returns a cluster and its CAs.
func (a *Authority) GetCluster(ctx context.Context, name string) (*ClusterView, error) {
	var v *ClusterView
	err := a.st.View(ctx, func(tx *store.Txn) error {
		var err error
		v, err = a.clusterView(tx, name)
		return err
	})
	return v, err
}

func (a *Authority) clusterView(tx *store.Txn, name string) (*ClusterView, error) {
	c, err := a.getCluster(tx, name)
	if err != nil {
		return nil, err
	}
	recs, err := tx.CAs(name)
	if err != nil {
		return nil, err
	}
	v := &ClusterView{Cluster: c, records: make(map[string]*store.CA, len(recs))}
	for _, r := range recs {
		d, err := a.domainCA(r)
		if err != nil {
			return nil, err
		}
		v.CAs = append(v.CAs, d)
		v.records[r.ID] = r
	}
	slices.SortFunc(v.CAs, func(x, y *ca.CA) int { return lineageOrder(x.Purpose, x.Generation, y.Purpose, y.Generation) })
	return v, nil
}

// lineageEpoch names one state of a cluster's lineages: every lifecycle
// change bumps the cluster's Epoch, and a cluster deleted and made again
// under its name has another Created. What is derived from the lineages
// alone (the signing state, the scheduler's next steps) is kept per epoch.
type lineageEpoch struct {
	created time.Time
	epoch   int64
}

func epochOf(c *store.Cluster) lineageEpoch { return lineageEpoch{created: c.Created, epoch: c.Epoch} }

// current reports whether c's lineages are still at this epoch.
func (e lineageEpoch) current(c *store.Cluster) bool {
	return e.epoch == c.Epoch && e.created.Equal(c.Created)
}

// lineageOrder orders a cluster's CAs: internal before rest, each lineage
// by generation.
func lineageOrder(xp ca.Purpose, xg int, yp ca.Purpose, yg int) int {
	if xp != yp {
		if xp == ca.PurposeInternal {
			return -1
		}
		return 1
	}
	return xg - yg
}

// Lineage returns the CAs of one purpose.
func (v *ClusterView) Lineage(p ca.Purpose) ca.Lineage {
	var l ca.Lineage
	for _, c := range v.CAs {
		if c.Purpose == p {
			l = append(l, c)
		}
	}
	return l
}

// NextStep is the next rotation step of one lineage at now. It depends on
// the CAs and the leaf validity alone; whether a due step is blocked is for
// the holders to say, when the step is planned.
func (v *ClusterView) NextStep(p ca.Purpose, now time.Time) ca.Step {
	return lineageNextStep(v.Lineage(p), v.Cluster.LeafValidity, now)
}

// lineageNextStep is a lineage's next rotation step for its cluster's leaf
// validity, with the margin that validity gets.
func lineageNextStep(l ca.Lineage, leaf time.Duration, now time.Time) ca.Step {
	return ca.NextStep(l, leaf, ca.DefaultMargin(leaf), now)
}

func (a *Authority) domainCA(r *store.CA) (*ca.CA, error) {
	cert, err := x509.ParseCertificate(r.CertDER)
	if err != nil {
		return nil, fmt.Errorf("%w: stored CA certificate %s/%s: %v", store.ErrCorrupt, r.Cluster, r.ID, err)
	}
	return caOf(r, cert), nil
}

// caOf is the domain CA of a stored record with its certificate.
func caOf(r *store.CA, cert *x509.Certificate) *ca.CA {
	return &ca.CA{
		ID: r.ID, Cluster: r.Cluster, Purpose: ca.Purpose(r.Purpose), Generation: r.Generation,
		State: ca.State(r.State), Cert: cert, Created: r.Created, Activated: r.Activated, Retiring: r.Retiring,
	}
}

// ListClusters returns one page of clusters, in name order.
func (a *Authority) ListClusters(ctx context.Context, after string, limit int) ([]*ClusterView, string, error) {
	return clusterPage(ctx, a, after, limit, a.clusterView)
}

// clusterPage reads get of each cluster of one page, in name order, in one
// read transaction, and returns them with the next page's token.
func clusterPage[T any](ctx context.Context, a *Authority, after string, limit int, get func(tx *store.Txn, name string) (T, error)) ([]T, string, error) {
	var out []T
	var next string
	err := a.st.View(ctx, func(tx *store.Txn) error {
		// A read that etcd compacted away runs again from the top.
		out, next = out[:0], ""
		cs, n, err := tx.ListClusters(after, limit)
		if err != nil {
			return err
		}
		next = n
		for _, c := range cs {
			v, err := get(tx, c.Name)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	return out, next, err
}

// forClusterPages calls fn with get of every cluster, a page of 500 at a
// time, each page read in one transaction, until the last page or an error.
func forClusterPages[T any](ctx context.Context, a *Authority, get func(tx *store.Txn, name string) (T, error), fn func(page []T) error) error {
	for after := ""; ; {
		page, next, err := clusterPage(ctx, a, after, 500, get)
		if err != nil {
			return err
		}
		if err := fn(page); err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		after = next
	}
}

// getCluster reads cluster name, ErrNotFound (with its name) when there is
// none.
func (a *Authority) getCluster(tx *store.Txn, name string) (*store.Cluster, error) {
	c, err := tx.Cluster(name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("cluster %q %w", name, ErrNotFound)
	}
	return c, err
}
