package api

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/issuer"
	"github.com/flinkpki/flinkpki/store"
)

// toStatus maps domain errors to gRPC status codes. It is the only place
// that does, so the domain stays free of transport. The message is the
// domain's own sentence; internal faults get a generic one, since their
// detail may name server internals.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codeOf(err)
	if code == codes.Internal {
		return &InternalError{Cause: err}
	}
	return status.Error(code, err.Error())
}

// UnavailableError is a dependency of the server that did not answer (the
// Kubernetes API server, for a TokenReview), as it leaves the API: gRPC
// sends it as Unavailable, which clients retry, with a sentence that names
// no server internals (its URL, its files: the caller may not have
// authenticated); Cause is for the server's log.
type UnavailableError struct {
	Message string
	Cause   error
}

func (e *UnavailableError) Error() string { return e.Message }

// GRPCStatus is what gRPC sends.
func (e *UnavailableError) GRPCStatus() *status.Status {
	return status.New(codes.Unavailable, e.Message)
}

// internalMessage is all a caller learns of an internal fault.
const internalMessage = "internal error; the server log has the details"

// InternalError is a fault that is no refusal (a full disk, a bug) as it
// leaves the API: gRPC sends it as Internal with a generic sentence, since
// its detail may name server internals; Cause is for the server's log,
// which the request log writes with the request's id.
type InternalError struct{ Cause error }

func (e *InternalError) Error() string { return internalMessage }

// GRPCStatus is what gRPC sends.
func (e *InternalError) GRPCStatus() *status.Status {
	return status.New(codes.Internal, internalMessage)
}

func codeOf(err error) codes.Code {
	switch {
	case errors.Is(err, authority.ErrUnauthenticated):
		return codes.Unauthenticated
	case errors.Is(err, authority.ErrDenied):
		return codes.PermissionDenied
	case errors.Is(err, authority.ErrNotFound), errors.Is(err, store.ErrNotFound):
		return codes.NotFound
	case errors.Is(err, authority.ErrExists), errors.Is(err, store.ErrExists):
		return codes.AlreadyExists
	case errors.Is(err, ca.ErrBlocked), errors.Is(err, ca.ErrRotationInProgress), errors.Is(err, ca.ErrNoPreparedCA),
		errors.Is(err, ca.ErrNoRetiringCA), errors.Is(err, ca.ErrNoActiveCA), errors.Is(err, authority.ErrAuditBroken),
		errors.Is(err, authority.ErrLastAdmin):
		return codes.FailedPrecondition
	case errors.Is(err, authority.ErrInvalid), errors.Is(err, issuer.ErrBadCSR), errors.Is(err, issuer.ErrWeakKey),
		errors.Is(err, issuer.ErrUnsupportedKey), errors.Is(err, issuer.ErrInvalidRequest), errors.Is(err, issuer.ErrUnknownRole),
		errors.Is(err, ca.ErrUnknownKeyType), errors.Is(err, ca.ErrInvalidValidity), errors.Is(err, ca.ErrUnknownPurpose):
		return codes.InvalidArgument
	case errors.Is(err, authority.ErrBusy):
		return codes.ResourceExhausted
	case errors.Is(err, authority.ErrConflict):
		return codes.Aborted
	case errors.Is(err, store.ErrUnavailable):
		return codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	return codes.Internal
}
