package authority

import (
	"context"
	"fmt"

	"github.com/flinkpki/flinkpki/store"
)

// ListAudit returns audit entries after a sequence number, optionally for
// one cluster, up to limit (0: all).
func (a *Authority) ListAudit(ctx context.Context, cluster string, after uint64, limit int) ([]*store.AuditEntry, error) {
	var out []*store.AuditEntry
	err := a.st.View(ctx, func(tx *store.Txn) error {
		return tx.ForEachAudit(after+1, func(e *store.AuditEntry) (bool, error) {
			if cluster == "" || e.Cluster == cluster {
				out = append(out, e)
			}
			return limit <= 0 || len(out) < limit, nil
		})
	})
	return out, err
}

// AuditReport is the outcome of recomputing the audit chain.
type AuditReport struct {
	Entries  uint64
	FirstBad uint64 // 0 when the chain is intact
	Message  string
}

// VerifyAudit recomputes the hash chain and names the first entry that does
// not match.
func (a *Authority) VerifyAudit(ctx context.Context) (*AuditReport, error) {
	r := &AuditReport{}
	err := a.st.View(ctx, func(tx *store.Txn) error {
		r2, err := VerifyChain(tx)
		*r = *r2
		return err
	})
	return r, err
}

// VerifyChain checks the audit chain in tx: sequence numbers, links and hashes.
func VerifyChain(tx *store.Txn) (*AuditReport, error) {
	r := &AuditReport{}
	prev := ""
	var want uint64 = 1
	err := tx.ForEachAudit(1, func(e *store.AuditEntry) (bool, error) {
		switch {
		case e.Seq != want:
			r.FirstBad, r.Message = want, fmt.Sprintf("audit entry %d is missing (found %d next)", want, e.Seq)
		case e.Prev != prev:
			r.FirstBad, r.Message = e.Seq, fmt.Sprintf("audit entry %d does not link to entry %d", e.Seq, e.Seq-1)
		case store.AuditHash(e) != e.Hash:
			r.FirstBad, r.Message = e.Seq, fmt.Sprintf("audit entry %d was modified: its hash does not match its content", e.Seq)
		}
		if r.FirstBad != 0 {
			return false, nil
		}
		r.Entries++
		prev, want = e.Hash, want+1
		return true, nil
	})
	if err != nil {
		return r, err
	}
	if r.FirstBad == 0 {
		seq, head, err := tx.AuditHead()
		if err != nil {
			return r, err
		}
		if seq != r.Entries || head != prev {
			r.FirstBad, r.Message = r.Entries+1, fmt.Sprintf("audit trail ends at entry %d but its head records entry %d: entries were removed", r.Entries, seq)
		} else {
			r.Message = fmt.Sprintf("audit trail intact: %d entries", r.Entries)
		}
	}
	return r, nil
}
