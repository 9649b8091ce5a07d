package authority

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

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
	// Archived is the last entry archived and removed from the trail (0:
	// none), ArchivedHash its hash: the trail goes on from the entry after
	// it, which links to that hash.
	Archived     uint64
	ArchivedHash string
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
		if r2 != nil {
			*r = *r2
		}
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
	archived, archivedHash, err := tx.AuditArchived()
	if err != nil {
		return nil, err
	}
	if afterSeq < archived {
		if afterSeq != 0 {
			return nil, fmt.Errorf("%w: entries up to %d were archived while this verification ran (it had reached entry %d): run it again", ErrConflict, archived, afterSeq)
		}
		// The trail starts after its last archived entry, whose hash the
		// archive left behind.
		afterSeq, prev = archived, archivedHash
	}
	r := &AuditReport{LastSeq: afterSeq, LastHash: prev, Done: true, Archived: archived, ArchivedHash: archivedHash}
	want := afterSeq + 1
	err = tx.ForEachAudit(want, func(e *store.AuditEntry) (bool, error) {
		if limit > 0 && r.Entries == uint64(limit) {
			r.Done = false
			return false, nil
		}
		if r.Entries%verifyCheckEvery == verifyCheckEvery-1 {
			if err := ctx.Err(); err != nil {
				return false, err
			}
		}
		if err := e.Follows(want, prev); err != nil {
			r.FirstBad, r.Message = want, err.Error() // e itself, or the entry missing before it
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
	} else if archived > 0 {
		r.Message = fmt.Sprintf("audit trail intact: entries %d to %d (1 to %d were archived; the last of them has hash %s)", archived+1, r.LastSeq, archived, archivedHash)
	} else {
		r.Message = fmt.Sprintf("audit trail intact: %d entries", r.LastSeq)
	}
	return r, nil
}

// PruneReport is what one PruneAudit call did.
type PruneReport struct {
	Removed  int    // entries removed by this call
	Archived uint64 // the last entry removed from the trail so far
	Done     bool   // the trail now starts after the entry asked for
	// Stopped, when not nil, is why a call that removed entries stopped
	// short of the one asked for (Done false): the next call says more.
	Stopped error
}

// actionArchive is the audit action of PruneAudit: its removals and its
// refusals.
const actionArchive = "audit.archive"

// pruneAuditPart bounds the entries one PruneAudit call removes (0 asked):
// a few seconds of the server's time even on etcd.
const pruneAuditPart = 100_000

// pruneAuditChunk bounds the entries one transaction removes on a backend
// without a write limit. Each is decoded and its hash recomputed while the
// transaction holds bbolt's one writer, so this many hold it about as long
// as a group commit of issuances does (10 ms or so): an archive run on a
// busy server delays enrollments by about one commit, not by 100 ms.
const pruneAuditChunk = 2_000

// PruneAudit removes the oldest entries of the audit trail, through entry
// through, once the caller has archived them (flinkpki audit archive): hash
// is that entry's hash as the caller read it. At most limit entries go per
// call (0: pruneAuditPart); Done says whether the trail now starts after
// through, and the caller calls again until it does.
//
// An error means the call removed nothing: a call that has removed entries
// and then fails (a broken link further on, the store, the caller gone)
// answers what it removed, with Done false and the cause in Stopped, so
// that the caller knows its archive holds entries the trail no longer
// does. Nothing is removed that does not verify: each transaction re-reads
// the entries it removes and checks their sequence, links and hashes from
// the last entry removed before (whose hash the store keeps, so audit
// verify goes on from it). Nothing is removed that is younger than the
// authority's AuditMinAge. The head is untouched: sequence numbers go on.
// Each call that removes entries is audited as one audit.archive entry,
// written with its first removals.
func (a *Authority) PruneAudit(ctx context.Context, actor Actor, through uint64, hash string, limit int) (*PruneReport, error) {
	if limit < 0 {
		return nil, a.Deny(ctx, actor, "", actionArchive, "invalid", fmt.Errorf("%w: max_entries %d is negative: use 0 for %d", ErrInvalid, limit, pruneAuditPart))
	}
	if limit == 0 || limit > pruneAuditPart {
		limit = pruneAuditPart
	}
	chunk := pruneAuditChunk
	if l := a.st.MaxWritesPerTxn(); l > 0 {
		chunk = max(1, l-3) // and the mark, the audit entry and the head
	}
	return a.pruneAudit(ctx, actor, through, hash, limit, chunk)
}

// pruneAudit is PruneAudit with at most chunk removals per transaction.
func (a *Authority) pruneAudit(ctx context.Context, actor Actor, through uint64, hash string, limit, chunk int) (*PruneReport, error) {
	// A refusal changes nothing: it is found before any transaction writes.
	rep, err := a.checkPruneAudit(ctx, through, hash)
	if err != nil {
		return nil, a.failed(ctx, actor, "", actionArchive, err)
	}
	for !rep.Done && rep.Removed < limit {
		n, upTo := 0, uint64(0)
		// The first transaction writes the call's audit entry, and so
		// reads the trail's head, which every issuance moves: on etcd it
		// would conflict with each group commit of a busy server. So it
		// joins the group commit itself (Batch), removing one entry, as
		// small as an issuance; the others read nothing issuance writes.
		commit, room := a.st.Update, min(chunk, limit-rep.Removed)
		if rep.Removed == 0 {
			commit, room = a.st.Batch, 1
		}
		err := commit(ctx, func(tx *store.Txn) error {
			var err error
			n, upTo, err = a.removeArchived(tx, actor, through, hash, room, rep.Removed == 0)
			return err
		})
		if err != nil {
			if rep.Removed > 0 {
				// What is removed stays removed: say so, not just why it
				// stopped, or the caller may discard its archive.
				rep.Stopped = err
				a.log.WarnContext(ctx, "removing archived audit entries stopped short; the next call goes on", slog.Int("removed", rep.Removed),
					slog.Uint64("through", rep.Archived), slog.String("actor", actor.String()), slog.String("error", err.Error()))
				return rep, nil
			}
			return nil, a.failed(ctx, actor, "", actionArchive, err)
		}
		rep.Removed += n
		rep.Archived, rep.Done = upTo, upTo >= through
	}
	if rep.Removed > 0 {
		a.log.InfoContext(ctx, "archived audit entries removed from the trail", slog.Int("removed", rep.Removed),
			slog.Uint64("through", rep.Archived), slog.String("actor", actor.String()))
	}
	return rep, nil
}

// checkPruneAudit reads, in one read transaction, whether a PruneAudit of
// the trail through entry through, whose hash the caller gives, may go
// ahead: so that a refusal is found before anything is removed. Its report
// holds the last entry archived so far, and is Done when through is among
// them (a retried call).
func (a *Authority) checkPruneAudit(ctx context.Context, through uint64, hash string) (*PruneReport, error) {
	rep := &PruneReport{}
	err := a.st.View(ctx, func(tx *store.Txn) error {
		archived, archivedHash, err := tx.AuditArchived()
		if err != nil {
			return err
		}
		rep.Archived = archived
		head, _, err := tx.AuditHead()
		switch {
		case err != nil:
			return err
		case through == 0:
			return fmt.Errorf("%w: through_seq is 0: name the last entry to remove", ErrInvalid)
		case through > head:
			return fmt.Errorf("%w: the audit trail ends at entry %d, so entry %d cannot be removed", ErrInvalid, head, through)
		case through == archived && hash != archivedHash:
			return fmt.Errorf("%w: entry %d was archived with hash %s, not %s", ErrInvalid, through, archivedHash, hash)
		case through <= archived:
			rep.Done = true // removed already (a retried call)
			return nil
		}
		var e *store.AuditEntry
		if err := tx.ForEachAudit(through, func(got *store.AuditEntry) (bool, error) {
			e = got
			return false, nil
		}); err != nil {
			return err
		}
		switch {
		case e == nil || e.Seq != through:
			return fmt.Errorf("%w: audit entry %d is missing: run flinkpki audit verify", ErrAuditBroken, through)
		case e.Hash != hash:
			return fmt.Errorf("%w: audit entry %d has hash %s, not the %s given: list the trail again and archive what it holds now", ErrInvalid, through, e.Hash, hash)
		case a.minAge > 0 && e.Time.After(a.now().Add(-a.minAge)):
			return fmt.Errorf("%w: audit entry %d is from %s, and this server removes entries only once they are %s old (serve --audit-archive-min-age): archive with an earlier --before",
				ErrDenied, through, e.Time.UTC().Format(time.RFC3339), days(a.minAge))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// removeArchived removes in tx the next at most room entries of the trail,
// up to entry through, and answers how many it removed and the last entry
// the trail no longer holds. It verifies each from the last entry removed
// before, so that nothing goes that does not verify. The call's first
// transaction (first) also writes the call's one audit entry.
func (a *Authority) removeArchived(tx *store.Txn, actor Actor, through uint64, hash string, room int, first bool) (n int, upTo uint64, err error) {
	archived, prev, err := tx.AuditArchived()
	if err != nil {
		return 0, 0, err
	}
	if upTo = archived; archived >= through {
		return 0, upTo, nil // another call removed them meanwhile
	}
	var last *store.AuditEntry
	want := archived + 1
	// The scan stops at the last entry it removes, so that on etcd
	// its read set ends there: entries appended meanwhile at the
	// head do not conflict with it.
	err = tx.ForEachAudit(want, func(e *store.AuditEntry) (bool, error) {
		if e.Seq > through {
			return false, nil // not reached: the scan stops at through
		}
		if err := e.Follows(want, prev); err != nil {
			return false, fmt.Errorf("%w: %v, so nothing from it on is removed: run flinkpki audit verify", ErrAuditBroken, err)
		}
		last, prev, want = e, e.Hash, want+1
		n++
		return e.Seq < through && n < room, nil
	})
	switch {
	case err != nil:
		return n, upTo, err
	case last == nil:
		return n, upTo, fmt.Errorf("%w: audit entry %d is missing: run flinkpki audit verify", ErrAuditBroken, want)
	}
	if first {
		// The call's one entry, with its first removals: what it
		// set out to remove, and the hash an archive must end on.
		if err := a.audit(tx, actor, "", actionArchive, "ok", "", map[string]string{
			"from_seq": strconv.FormatUint(archived+1, 10), "through_seq": strconv.FormatUint(through, 10), "through_hash": hash,
		}); err != nil {
			return n, upTo, err
		}
	}
	upTo = last.Seq
	return n, upTo, tx.RemoveAuditThrough(last)
}

// days writes d as the CLI's flags take it: in days when it is whole days.
func days(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}
