package authority

import (
	"context"
	"errors"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/issuer"
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
func IsRefusal(err error) bool {
	r := ReasonOf(err)
	return r != "error" && r != "canceled"
}
