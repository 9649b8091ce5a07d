package k8sauth

import "errors"

// Errors returned by Verify, one per reason a token is refused, so the
// caller can map them to a status and the audit trail can record why; test
// with errors.Is. Each comes wrapped in a one-line message naming the value
// that failed and what was expected.
var (
	// ErrMalformed: the input is not a compact JWS with JSON claims.
	ErrMalformed = errors.New("malformed service-account token")
	// ErrSignature: the algorithm is not allowed (none, HS256, ...) or the
	// signature does not verify with the JWKS key it names.
	ErrSignature = errors.New("service-account token signature invalid")
	// ErrUnknownKey: the token names a key id that is not in the JWKS, as
	// after a key rotation the JWKS file has not caught up with.
	ErrUnknownKey = errors.New("service-account token signed by an unknown key")
	// ErrIssuer: "iss" is not the configured issuer (another cluster).
	ErrIssuer = errors.New("service-account token issuer not accepted")
	// ErrAudience: "aud" does not contain the configured audience.
	ErrAudience = errors.New("service-account token audience not accepted")
	// ErrExpired: "exp" is in the past, beyond the leeway.
	ErrExpired = errors.New("service-account token expired")
	// ErrNotYetValid: "nbf" or "iat" is in the future, beyond the leeway.
	ErrNotYetValid = errors.New("service-account token not yet valid")
	// ErrClaims: a required claim is missing or the claims contradict each
	// other (subject versus kubernetes.io).
	ErrClaims = errors.New("service-account token claims invalid")
	// ErrLegacyToken: a legacy secret-based token, which never expires and
	// is bound to no pod; only projected tokens are accepted.
	ErrLegacyToken = errors.New("legacy service-account token not accepted")
	// ErrConfig: New was given an unusable Config.
	ErrConfig = errors.New("invalid Kubernetes token verifier configuration")
)
