package authority

import (
	"context"
	"slices"
	"time"

	"github.com/flinkpki/flinkpki/ca"
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
	Blockers []string // live holders that block Next: the first MaxListedHolders, sorted
	// Stranded are live holders cut off from the others, which only a
	// forced step leaves behind: their leaf comes from a CA no longer in
	// the lineage, or their truststore lacks the active CA. The first
	// MaxListedHolders, sorted.
	Stranded []string
	// BlockersTotal and StrandedTotal count them all.
	BlockersTotal, StrandedTotal int
	// Lapsed are those of Blockers whose leaf has expired: they block only
	// for the clock-skew grace, until LapsedUntil (ca.LapsedBlockers).
	Lapsed      []string
	LapsedUntil time.Time
}

// MaxListedHolders bounds the holder names a status, a lifecycle answer or
// an audit entry lists (the totals count them all): a cluster of a hundred
// thousand live holders would otherwise outgrow a gRPC message, and an
// audit entry etcd's request limit.
const MaxListedHolders = 100

// firstHolders sorts names and keeps the first MaxListedHolders, with
// their total.
func firstHolders(names []string) ([]string, int) {
	slices.Sort(names)
	return names[:min(len(names), MaxListedHolders)], len(names)
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

func (a *Authority) status(tx *store.Txn, cluster string) (*Status, error) {
	v, err := a.clusterView(tx, cluster)
	if err != nil {
		return nil, err
	}
	now := a.now()
	st := &Status{Cluster: v.Cluster}
	for _, p := range ca.Purposes() {
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
		// The blockers as a step would count them (applyPlan).
		switch skewed := ca.BlockersAsOf(now, v.Cluster.LeafValidity); ls.Next.Kind {
		case ca.StepActivate:
			ls.Blockers = ca.ActivateBlockers(l, hs, skewed)
		case ca.StepRetire:
			ls.Blockers = ca.RetireBlockers(l, hs, skewed)
		}
		ls.Blockers, ls.BlockersTotal = firstHolders(ls.Blockers)
		ls.Lapsed, ls.LapsedUntil = ca.LapsedBlockers(ls.Blockers, hs, now, v.Cluster.LeafValidity)
		ls.Stranded, ls.StrandedTotal = firstHolders(ls.Stranded)
		st.Lineages = append(st.Lineages, ls)
	}
	return st, nil
}
