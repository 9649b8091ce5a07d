package ca

import (
	"fmt"
	"time"
)

// StepKind names a lifecycle step.
type StepKind string

// The lifecycle steps, in the order a rotation runs them.
const (
	StepNone     StepKind = "none"
	StepPrepare  StepKind = "prepare"
	StepActivate StepKind = "activate"
	StepRetire   StepKind = "retire"
)

// MinMargin is the smallest default rotation margin: a week gives an operator
// time to notice and clear a blocked step before the active CA expires.
const MinMargin = 7 * 24 * time.Hour

// DefaultMargin is the slack kept between the end of a rotation and the
// expiry of the old CA: a quarter of the leaf validity, and never less than
// MinMargin. It grows with L because longer-lived leaves mean pods that
// restart less often, so a blocked rotation takes longer to clear.
func DefaultMargin(leafValidity time.Duration) time.Duration {
	return max(MinMargin, leafValidity/4)
}

// Step is the next automatic lifecycle step of a lineage.
type Step struct {
	Kind StepKind
	// At is when the step becomes safe to take automatically.
	At time.Time
	// CAID is the CA the step acts on; for prepare, the ID the new CA will get.
	CAID string
	// Due reports whether At has been reached.
	Due bool
}

// DueAt returns s with Due set for the time now: a step, once known, is
// due from At on, whenever it is asked.
func (s Step) DueAt(now time.Time) Step {
	s.Due = s.Kind != StepNone && !now.Before(s.At)
	return s
}

// PrepareAt is when the CA after active should be prepared: 2L plus the
// margin before active expires, leaving L for the prepared CA to reach every
// truststore, L for the old CA's leaves to expire, and the margin to spare.
func PrepareAt(active *CA, leafValidity, margin time.Duration) time.Time {
	return active.NotAfter().Add(-(2*leafValidity + margin))
}

// ActivateAt is when a prepared CA has been in every issued truststore for L,
// so no live holder can lack it: every leaf issued before it was prepared has
// expired by then, on any server's clock within ClockSkew of this one. The
// active CA's expiry comes sooner when the rotation started late (a
// scheduler that was down, or automatic rotation turned on near the end):
// every leaf issued before the prepare was signed by the active CA, and the
// issuer ends none after its signer, so none outlives it. Waiting the full
// L then would leave the cluster unable to enroll for up to L with an
// expired active CA. The time only says when to try; the step still checks
// every live holder.
func ActivateAt(prepared, active *CA, leafValidity time.Duration) time.Time {
	at := prepared.Created.Add(leafValidity)
	if active != nil {
		at = earlierExpiry(at, active.NotAfter())
	}
	return at.Add(ClockSkew(leafValidity))
}

// RetireAt is when a retiring CA has signed nothing for L, or has expired if
// that comes sooner, so every leaf it signed has expired (within ClockSkew,
// as for ActivateAt).
func RetireAt(retiring *CA, leafValidity time.Duration) time.Time {
	return earlierExpiry(retiring.Retiring.Add(leafValidity), retiring.NotAfter()).Add(ClockSkew(leafValidity))
}

// earlierExpiry is a CA's expiry when it comes before at, else at. A CA
// without a certificate has no expiry (the zero time), and never makes a
// late activate or retire due early.
func earlierExpiry(at, expiry time.Time) time.Time {
	if !expiry.IsZero() && expiry.Before(at) {
		return expiry
	}
	return at
}

// ClockSkew is how far apart the clocks of the servers that issue and step
// one lineage may be (replicas in HA, a server and its restarted self) for
// the rotation rules to hold: a leaf counts as live for this long past its
// NotAfter when a step checks its blockers, and the automatic steps come
// this much later. Five minutes, as Kerberos allows, or a tenth of the leaf
// validity for the short leaves of tests.
func ClockSkew(leafValidity time.Duration) time.Duration {
	return min(MaxClockSkew, leafValidity/10)
}

// MaxClockSkew is the longest ClockSkew of any leaf validity: a step counts
// an expired holder as live that long past its leaf's expiry (pruning
// keeps the record twice as long, for a replica whose clock lags).
const MaxClockSkew = 5 * time.Minute

// BlockersAsOf is the time a step taken at now judges its blockers' leaves
// by (ActivateBlockers, RetireBlockers, PlanActivate, PlanRetire): a
// ClockSkew earlier, so a leaf the issuing server's clock still holds valid
// blocks.
func BlockersAsOf(now time.Time, leafValidity time.Duration) time.Time {
	return now.Add(-ClockSkew(leafValidity))
}

// NextStep tells which automatic step comes next for a lineage and when it is
// due, for the rotation loop and for ca status. Finishing a rotation comes
// before starting one: a retiring CA is retired first, then a prepared one
// activated, and only then is the next CA prepared.
func NextStep(l Lineage, leafValidity, margin time.Duration, now time.Time) Step {
	var s Step
	switch r, p, a := l.Retiring(), l.Prepared(), l.Active(); {
	case r != nil:
		s = Step{Kind: StepRetire, At: RetireAt(r, leafValidity), CAID: r.ID}
	case p != nil:
		s = Step{Kind: StepActivate, At: ActivateAt(p, a, leafValidity), CAID: p.ID}
	case a != nil:
		s = Step{Kind: StepPrepare, At: PrepareAt(a, leafValidity, margin), CAID: IDFor(a.Purpose, a.Generation+1)}
	default:
		return Step{Kind: StepNone}
	}
	return s.DueAt(now)
}

// ValidateValidity refuses CA and leaf lifetimes that cannot rotate safely.
// A CA must live at least 4L plus the margin. Every CA after the first is
// created when its predecessor retires, which is 2L after the predecessor
// was created, so its own successor cannot be prepared before 2L after it
// was created either. PrepareAt puts that preparation 2L plus the margin
// before the CA expires, so the CA must live 4L plus the margin for the
// schedule to keep it. With less, the successor is prepared late, the CA
// signs until less than L before it expires, and the issuer cuts the leaves
// of pods started then short at its expiry: Flink reads its keystore once,
// so such a pod loses TLS before its full leaf validity.
func ValidateValidity(caValidity, leafValidity, margin time.Duration) error {
	switch {
	case caValidity <= 0:
		return fmt.Errorf("%w: CA validity must be positive, got %s", ErrInvalidValidity, caValidity)
	case leafValidity <= 0:
		return fmt.Errorf("%w: leaf validity must be positive, got %s", ErrInvalidValidity, leafValidity)
	case margin <= 0:
		return fmt.Errorf("%w: rotation margin must be positive, got %s", ErrInvalidValidity, margin)
	case leafValidity > maxLeafValidity || margin > maxLeafValidity:
		return fmt.Errorf("%w: leaf validity %s or rotation margin %s is longer than the limit of %s", ErrInvalidValidity, FormatDuration(leafValidity), FormatDuration(margin), FormatDuration(maxLeafValidity))
	}
	if need := MinCAValidity(leafValidity, margin); caValidity < need {
		return fmt.Errorf("%w: CA validity %s is shorter than four leaf validities of %s plus the rotation margin of %s (%s); lengthen the CA validity or shorten the leaf validity",
			ErrInvalidValidity, FormatDuration(caValidity), FormatDuration(leafValidity), FormatDuration(margin), FormatDuration(need))
	}
	return nil
}

// maxLeafValidity keeps 4L plus the margin (at most 250 years) from
// overflowing a Duration (292 years): at 100 years, a 70-year leaf
// overflowed MinCAValidity and let a 1-day CA through.
const maxLeafValidity = 50 * 365 * 24 * time.Hour

// MinCAValidity is the shortest CA validity that rotates safely with the
// given leaf validity and margin; see ValidateValidity.
func MinCAValidity(leafValidity, margin time.Duration) time.Duration {
	return 4*leafValidity + margin
}
