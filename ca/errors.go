package ca

import "errors"

// Sentinel errors of the ca package. Callers test them with errors.Is; the
// wrapped messages carry the details a person needs to act.
var (
	// ErrUnknownKeyType reports a key type name that flinkpki does not offer.
	ErrUnknownKeyType = errors.New("unknown key type")
	// ErrUnsupportedKey reports a public or private key whose algorithm or size
	// is not one of the offered key types.
	ErrUnsupportedKey = errors.New("unsupported key")
	// ErrUnknownPurpose reports a CA purpose other than internal or rest.
	ErrUnknownPurpose = errors.New("unknown CA purpose")
	// ErrInvalidRequest reports a CreateRequest that cannot produce a CA.
	ErrInvalidRequest = errors.New("invalid CA request")
	// ErrKeyMismatch reports a private key that does not belong to the CA
	// certificate it was loaded with.
	ErrKeyMismatch = errors.New("CA key does not match the CA certificate")
	// ErrRotationInProgress reports a prepare or activate while an earlier
	// rotation has not finished yet.
	ErrRotationInProgress = errors.New("a CA rotation is already in progress")
	// ErrNoActiveCA reports a lineage without an active CA.
	ErrNoActiveCA = errors.New("the lineage has no active CA")
	// ErrNoPreparedCA reports an activation with no prepared CA to activate.
	ErrNoPreparedCA = errors.New("there is no prepared CA to activate")
	// ErrNoRetiringCA reports a retirement with no retiring CA to retire.
	ErrNoRetiringCA = errors.New("there is no retiring CA to retire")
	// ErrBlocked reports a lifecycle step that live holders still depend on.
	ErrBlocked = errors.New("CA lifecycle step blocked by live holders")
	// ErrInvalidValidity reports CA and leaf validities that cannot rotate safely.
	ErrInvalidValidity = errors.New("invalid validity")
)
