package authority

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/flinkpki/flinkpki/internal/tick"
)

// AuditCheck is what one pass of RunAuditVerifier found.
type AuditCheck struct {
	At       time.Time // when the pass ended
	Intact   bool
	LastSeq  uint64 // the last entry verified
	FirstBad uint64 // the first entry that breaks the chain, when not Intact
	Message  string
}

// auditVerifyPart is how many entries one read transaction of the
// verifier checks: a long trail is walked in parts, as audit verify does.
const auditVerifyPart = 50000

// RunAuditVerifier verifies the whole audit chain now and then every
// interval until ctx ends, a part of auditVerifyPart entries per read
// transaction as audit verify does, and reports each pass that ended. Whole,
// not from where the last pass ended: an entry edited in place, long after
// it was verified, breaks the chain there. A break is logged as an error. A
// pass that cannot read the store is logged and tried again at the next
// interval.
func (a *Authority) RunAuditVerifier(ctx context.Context, interval time.Duration, report func(AuditCheck)) {
	pass := func(time.Time) {
		var seq uint64
		var hash string
		for {
			r, err := a.VerifyAuditPart(ctx, seq, hash, auditVerifyPart)
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, ErrConflict) { // archived past where this pass had reached
				seq, hash = 0, ""
				continue
			}
			if err != nil {
				a.log.WarnContext(ctx, "the audit trail could not be verified; the next pass tries again", slog.String("error", err.Error()))
				return
			}
			if r.FirstBad != 0 {
				a.log.ErrorContext(ctx, "the audit trail is broken: flinkpki audit verify says where; keep this store for inspection, and restore one from a backup taken before the break",
					slog.Uint64("first_bad_entry", r.FirstBad), slog.String("error", r.Message))
				report(AuditCheck{At: a.now(), LastSeq: r.LastSeq, FirstBad: r.FirstBad, Message: r.Message})
				return
			}
			seq, hash = r.LastSeq, r.LastHash
			if r.Done {
				report(AuditCheck{At: a.now(), Intact: true, LastSeq: seq})
				return
			}
		}
	}
	tick.Call(a.log, pass, time.Now())
	tick.Every(ctx, a.log, interval, pass)
}
