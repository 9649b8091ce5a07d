package issuer

import "errors"

// Sentinel errors of the issuer package, for errors.Is.
var (
	// ErrUnknownRole reports a role name flinkpki does not issue for.
	ErrUnknownRole = errors.New("unknown role")
	// ErrBadCSR reports a CSR that is refused; every CSR refusal wraps it.
	ErrBadCSR = errors.New("certificate request refused")
	// ErrWeakKey reports a key too weak to trust (RSA under 2048 bits, P-224).
	ErrWeakKey = errors.New("key is too weak")
	// ErrUnsupportedKey reports a key the Flink/JDK TLS path does not handle
	// (Ed25519, P-521, RSA over 4096 bits or with an exponent other than 65537).
	ErrUnsupportedKey = errors.New("key type is not supported")
	// ErrWrongCA reports a signer that must not sign this request: another
	// purpose, another cluster, not active, or expired.
	ErrWrongCA = errors.New("wrong CA for this request")
	// ErrInvalidRequest reports a request that breaks the role's profile.
	ErrInvalidRequest = errors.New("invalid certificate request")
)
