package authority

import (
	"context"
	"fmt"
	"math"

	"github.com/flinkpki/flinkpki/store"
)

// AuditScanLimit bounds the entries one ListAudit call reads, matching or
// not: a cluster's few entries in a trail of millions must not take one
// request past its deadline.
const AuditScanLimit = 100_000

// ListAudit returns audit entries after a sequence number, optionally for
// one cluster, up to limit (0: all). It reads at most AuditScanLimit
// entries; next is the sequence number to go on after when the trail may
// go on (it stopped at limit or at the scan bound), 0 when it ended.
func (a *Authority) ListAudit(ctx context.Context, cluster string, after uint64, limit int) ([]*store.AuditEntry, uint64, error) {
	return a.listAudit(ctx, cluster, after, limit, AuditScanLimit)
}

func (a *Authority) listAudit(ctx context.Context, cluster string, after uint64, limit, scanLimit int) (out []*store.AuditEntry, next uint64, err error) {
	if after == math.MaxUint64 {
		return nil, 0, nil // nothing follows; after+1 would wrap to the start
	}
	err = a.st.View(ctx, func(tx *store.Txn) error {
		out, next = nil, 0
		scanned, last := 0, after
		return tx.ForEachAudit(after+1, func(e *store.AuditEntry) (bool, error) {
			if (limit > 0 && len(out) == limit) || scanned == scanLimit {
				next = last // an entry follows: go on after the last one read
				return false, nil
			}
			scanned, last = scanned+1, e.Seq
			if cluster == "" || e.Cluster == cluster {
				out = append(out, e)
			}
			return true, nil
		})
	})
	return out, next, err
}

// AuditReport is the outcome of recomputing the audit chain, or a part of it.
type AuditReport struct {
	Entries  uint64 // entries verified
	FirstBad uint64 // 0 when the chain is intact
	Message  string
	// LastSeq and LastHash are the last entry verified: where the next part
	// goes on. Done means the part reached the head of the trail.
	LastSeq  uint64
	LastHash string
	Done     bool
}

// VerifyAudit recomputes the whole hash chain in one read transaction.
func (a *Authority) VerifyAudit(ctx context.Context) (*AuditReport, error) {
	return a.VerifyAuditPart(ctx, 0, "", 0)
}

// VerifyAuditPart recomputes at most limit entries of the chain (all when limit
// is 0), after entry afterSeq, whose hash the caller got as LastHash of the
// part before ("" before entry 1). A trail of millions takes longer than one
// request may, so audit verify walks it part by part: the trail is
// append-only, so parts read in different transactions still make one
// chain, and the last part checks the head in its own transaction.
func (a *Authority) VerifyAuditPart(ctx context.Context, afterSeq uint64, prevHash string, limit int) (*AuditReport, error) {
	if afterSeq == math.MaxUint64 {
		return nil, fmt.Errorf("%w: no audit entry follows entry %d", ErrInvalid, afterSeq)
	}
	r := &AuditReport{}
	err := a.st.View(ctx, func(tx *store.Txn) error {
		if afterSeq > 0 {
			// A part starting past the end is a caller's mistake, not
			// entries removed from the trail.
			if head, _, err := tx.AuditHead(); err != nil {
				return err
			} else if afterSeq > head {
				return fmt.Errorf("%w: the audit trail ends at entry %d, so nothing follows entry %d", ErrInvalid, head, afterSeq)
			}
		}
		r2, err := verifyChain(ctx, tx, afterSeq, prevHash, limit)
		*r = *r2
		return err
	})
	return r, err
}

// VerifyChain checks the whole audit chain in tx: sequence numbers, links
// and hashes, and that the head records the last entry.
func VerifyChain(tx *store.Txn) (*AuditReport, error) {
	return verifyChain(context.Background(), tx, 0, "", 0)
}

// verifyCheckEvery is how many entries a verification checks between two
// looks at its context: a caller gone (its deadline passed) must not keep
// a read transaction open over the rest of a trail of millions.
const verifyCheckEvery = 4096

func verifyChain(ctx context.Context, tx *store.Txn, afterSeq uint64, prev string, limit int) (*AuditReport, error) {
	r := &AuditReport{LastSeq: afterSeq, LastHash: prev, Done: true}
	want := afterSeq + 1
	err := tx.ForEachAudit(want, func(e *store.AuditEntry) (bool, error) {
		if limit > 0 && r.Entries == uint64(limit) {
			r.Done = false
			return false, nil
		}
		if r.Entries%verifyCheckEvery == verifyCheckEvery-1 {
			if err := ctx.Err(); err != nil {
				return false, err
			}
		}
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
		r.LastSeq, r.LastHash = e.Seq, e.Hash
		return true, nil
	})
	if err != nil || r.FirstBad != 0 {
		return r, err
	}
	if !r.Done {
		r.Message = fmt.Sprintf("audit entries %d to %d intact", afterSeq+1, r.LastSeq)
		return r, nil
	}
	seq, head, err := tx.AuditHead()
	if err != nil {
		return r, err
	}
	if seq != r.LastSeq || head != prev {
		r.FirstBad, r.Message = r.LastSeq+1, fmt.Sprintf("audit trail ends at entry %d but its head records entry %d: entries were removed", r.LastSeq, seq)
	} else {
		r.Message = fmt.Sprintf("audit trail intact: %d entries", r.LastSeq)
	}
	return r, nil
}
