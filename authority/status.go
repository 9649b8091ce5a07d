package authority

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/internal/x509der"
	"github.com/flinkpki/flinkpki/store"
)

// CAInfo is one CA with the live holders that depend on it.
type CAInfo struct {
	CA           *ca.CA
	LiveSigned   int // live holders whose leaf it signed
	LiveTrusting int // live holders whose truststore holds it
}

// LineageStatus is one lineage with its next automatic step.
type LineageStatus struct {
	Purpose  ca.Purpose
	CAs      []CAInfo
	Next     ca.Step
	Blockers []string // live holders that block Next
	// Stranded are live holders cut off from the others, which only a
	// forced step leaves behind: their leaf comes from a CA no longer in
	// the lineage, or their truststore lacks the active CA.
	Stranded []string
}

// Status is the lifecycle view of one cluster (ca status).
type Status struct {
	Cluster        *store.Cluster
	Lineages       []LineageStatus
	LiveHolders    int
	EarliestExpiry time.Time // earliest live leaf expiry, zero when none
}

// Status reports every CA of a cluster, its live holders, and the next step.
func (a *Authority) Status(ctx context.Context, cluster string) (*Status, error) {
	var st *Status
	err := a.st.View(ctx, func(tx *store.Txn) error {
		var err error
		st, err = a.status(tx, cluster)
		return err
	})
	return st, err
}

// Expiry is what the expiry gauges show of one cluster: its CAs and the
// earliest expiry of a live leaf.
type Expiry struct {
	Cluster        string
	CAs            []ExpiryCA // internal then rest, by generation
	EarliestExpiry time.Time  // zero when no leaf is live
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
		x := &Expiry{Cluster: cluster}
		for _, r := range recs {
			na, err := x509der.NotAfter(r.CertDER)
			if err != nil {
				return nil, fmt.Errorf("%w: stored CA certificate %s/%s: %v", store.ErrCorrupt, cluster, r.ID, err)
			}
			x.CAs = append(x.CAs, ExpiryCA{ID: r.ID, State: ca.State(r.State), NotAfter: na})
		}
		x.EarliestExpiry, _, err = tx.EarliestHolderExpiry(cluster, now)
		if err != nil {
			return nil, err
		}
		return x, nil
	})
}

func (a *Authority) status(tx *store.Txn, cluster string) (*Status, error) {
	v, err := a.clusterView(tx, cluster)
	if err != nil {
		return nil, err
	}
	now := a.now()
	st := &Status{Cluster: v.Cluster}
	for _, p := range []ca.Purpose{ca.PurposeInternal, ca.PurposeREST} {
		l := v.Lineage(p)
		hs, err := holderViews(tx, cluster, p)
		if err != nil {
			return nil, err
		}
		ls := LineageStatus{Purpose: p, Next: v.NextStep(p, now)}
		active := l.Active()
		idx := map[string]int{}
		for i, c := range l {
			idx[c.ID] = i
			ls.CAs = append(ls.CAs, CAInfo{CA: c})
		}
		for _, h := range hs {
			if !h.Live(now) {
				continue
			}
			st.LiveHolders++
			if st.EarliestExpiry.IsZero() || h.NotAfter.Before(st.EarliestExpiry) {
				st.EarliestExpiry = h.NotAfter
			}
			i, ok := idx[h.SignedBy]
			if ok {
				ls.CAs[i].LiveSigned++
			}
			if !ok || (active != nil && !slices.Contains(h.Trusts, active.ID)) {
				ls.Stranded = append(ls.Stranded, h.Name)
			}
			for _, t := range h.Trusts {
				if i, ok := idx[t]; ok {
					ls.CAs[i].LiveTrusting++
				}
			}
		}
		switch ls.Next.Kind {
		case ca.StepActivate:
			ls.Blockers = ca.ActivateBlockers(l, hs, now)
		case ca.StepRetire:
			ls.Blockers = ca.RetireBlockers(l, hs, now)
		}
		slices.Sort(ls.Blockers)
		slices.Sort(ls.Stranded)
		st.Lineages = append(st.Lineages, ls)
	}
	return st, nil
}
