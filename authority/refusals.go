package authority

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/issuer"
	"github.com/flinkpki/flinkpki/store"
)

// ReasonOf gives a refusal a short, bounded label for metrics and the
// audit trail: "error" for a fault that is not a refusal (the store is down,
// say), "canceled" when the caller went away.
func ReasonOf(err error) string {
	switch {
	case errors.Is(err, ErrUnauthenticated):
		return "unauthenticated"
	case errors.Is(err, ErrDenied):
		return "permission_denied"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrExists):
		return "exists"
	case errors.Is(err, issuer.ErrBadCSR), errors.Is(err, issuer.ErrWeakKey), errors.Is(err, issuer.ErrUnsupportedKey):
		return "bad_csr"
	case errors.Is(err, ca.ErrBlocked):
		return "blocked"
	case errors.Is(err, ca.ErrRotationInProgress), errors.Is(err, ca.ErrNoActiveCA), errors.Is(err, ca.ErrNoPreparedCA), errors.Is(err, ca.ErrNoRetiringCA),
		errors.Is(err, ErrAuditBroken), errors.Is(err, ErrLastAdmin):
		return "failed_precondition" // a lifecycle step out of order, a broken trail
	case errors.Is(err, ErrInvalid), errors.Is(err, issuer.ErrInvalidRequest), errors.Is(err, issuer.ErrUnknownRole), errors.Is(err, ca.ErrInvalidValidity):
		return "invalid"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "error"
}

// IsRefusal reports whether err refuses a request (ReasonOf names a
// refusal), as opposed to a fault (the store is down) or a caller that went
// away, which no audit entry records as refused.
func IsRefusal(err error) bool { return refuses(ReasonOf(err)) }

// refuses reports whether a ReasonOf label names a refusal.
func refuses(reason string) bool { return reason != "error" && reason != "canceled" }

// RefusalGate decides which refusals are audited one by one. The ones it
// holds back it counts, and its owner writes them as summaries with
// AuditRefusals, so a caller that is refused in a loop cannot write an
// audit entry (and a log line) per request.
type RefusalGate interface {
	Admit(source string, actor Actor, cluster, action, reason string, err error) bool
}

// SetRefusalGate makes Deny consult g for every caller but administrators
// and the server itself. Call it before the Authority serves requests.
func (a *Authority) SetRefusalGate(g RefusalGate) { a.gate = g }

// Deny records a refused request in the audit trail and returns err. The
// refusal itself changes no other state. With a refusal gate, a caller
// past its share of entries is counted for a summary instead.
func (a *Authority) Deny(ctx context.Context, actor Actor, cluster, action, reason string, err error) error {
	if a.gate != nil && actor.Kind != ActorAdmin && actor.Kind != ActorSystem &&
		!a.gate.Admit("deny:"+actor.Source(), actor, cluster, action, reason, err) {
		return a.DenyUnaudited(reason, err)
	}
	return a.DenyAudited(ctx, actor, cluster, action, reason, err)
}

// DenyAudited is Deny without the gate: for a caller whose own gate has
// admitted the refusal.
func (a *Authority) DenyAudited(ctx context.Context, actor Actor, cluster, action, reason string, err error) error {
	a.obs.Denied(reason)
	cluster, text := AuditCluster(cluster), ClipText(err.Error())
	a.log.LogAttrs(ctx, slog.LevelWarn, "request refused", slog.String("actor", actor.String()),
		slog.String("cluster", cluster), slog.String("action", action), slog.String("reason", reason), slog.String("error", text))
	// The entry is written even when the request has ended meanwhile (its
	// caller gone, its deadline past): the refusal happened.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refusalAuditTimeout)
	defer cancel()
	werr := a.st.Batch(actx, func(tx *store.Txn) error {
		return a.audit(tx, actor, cluster, action, "denied", text, map[string]string{"reason": reason})
	})
	if werr != nil {
		a.log.Error("could not audit a refusal", slog.String("error", werr.Error()))
	}
	return err
}

// refusalAuditTimeout bounds the write of a refusal's audit entry, which
// outlives the request it refuses.
const refusalAuditTimeout = 10 * time.Second

// MaxRefusalText bounds the text of a refusal in the log and the audit
// trail (ClipText).
const MaxRefusalText = 512

// AuditCluster is the cluster a refusal's audit entry and log line name:
// the request's, when it is a name a cluster can have, else none. A
// caller's made-up name (up to the size of a gRPC message) names nothing
// and must not bloat the trail; the refusal's text, clipped, quotes it.
func AuditCluster(name string) string {
	if issuer.ValidateCluster(name) != nil {
		return ""
	}
	return name
}

// ClipText bounds the text of a refusal, which may quote what the caller
// sent, to MaxRefusalText bytes, cut at a character boundary and marked.
func ClipText(s string) string {
	if len(s) <= MaxRefusalText {
		return s
	}
	const mark = "... (clipped)"
	cut := MaxRefusalText - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// DenyUnaudited refuses like Deny and counts the refusal in the metrics,
// but writes no audit entry of its own: the caller audits it later in a
// summary (AuditRefusals). It is for floods of refusals from one source,
// where an entry each would fill the disk and crowd the commit queue that
// issuances share.
func (a *Authority) DenyUnaudited(reason string, err error) error {
	a.obs.Denied(reason)
	return err
}

// AuditRefusals records n refusals of one kind that were refused with
// DenyUnaudited, with the latest one's error.
func (a *Authority) AuditRefusals(ctx context.Context, actor Actor, cluster, action, reason string, n int, lastErr string) error {
	cluster, lastErr = AuditCluster(cluster), ClipText(lastErr)
	a.log.LogAttrs(ctx, slog.LevelWarn, "requests refused", slog.String("actor", actor.String()), slog.String("cluster", cluster),
		slog.String("action", action), slog.String("reason", reason), slog.Int("count", n), slog.String("error", lastErr))
	err := a.st.Batch(ctx, func(tx *store.Txn) error {
		return a.audit(tx, actor, cluster, action, "denied", lastErr, map[string]string{"reason": reason, "count": strconv.Itoa(n)})
	})
	if err != nil {
		a.log.Error("could not audit a summary of refusals; it is kept for the next one", slog.String("error", err.Error()))
	}
	return err
}

// failed answers a request that failed: a refusal is denied (audited),
// anything else (a store fault, a caller that went away) only counted, by
// its reason: it refused nobody, and the request log has it. No issuance
// is both committed and failed (store.GroupCommit.Do); an administrator's
// change whose caller went during its commit may have committed, which its
// own audit entry then shows.
func (a *Authority) failed(ctx context.Context, actor Actor, cluster, action string, err error) error {
	reason := ReasonOf(err)
	if !refuses(reason) {
		return a.DenyUnaudited(reason, err)
	}
	return a.Deny(ctx, actor, cluster, action, reason, err)
}
