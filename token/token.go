// Package token defines flinkpki's own bearer tokens: administrator tokens
// and enrollment tokens.
//
// A token reads
//
//	fpe_<id>_<secret>   enrollment token
//	fpa_<id>_<secret>   administrator token
//
// where <id> is 16 random bytes in unpadded lower-case base32 (26 characters
// of a-z and 2-7) and <secret> is 32 random bytes in unpadded base64url (43
// characters). Every token is exactly 74 characters long.
//
// Why this shape:
//   - The prefix names the kind, so a token pasted into the wrong place, a
//     log line or a secret scanner is recognisable at a glance, and a
//     Kubernetes service-account JWT can never be mistaken for one.
//   - The id is the lookup key in the store. It is random (not a counter) so
//     that it reveals nothing about how many tokens exist, and lower-case
//     base32 so that it is safe in file names, URLs and log lines and never
//     contains the '_' separator.
//   - The secret carries 256 bits from crypto/rand and is never stored: the
//     store keeps only Hash(secret), so a leaked database yields no usable
//     token.
//   - Parsing is positional and canonical: only the exact encoding that New
//     produces is accepted, so Parse(t.String()) round-trips and no two
//     strings name the same token.
package token

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
)

// Kind says what a token authorises; it is encoded in the token's prefix.
type Kind uint8

const (
	// KindEnrollment tokens let an init container or image build obtain
	// credentials for one cluster and role, within a TTL and a use count.
	KindEnrollment Kind = iota + 1
	// KindAdmin tokens authorise administrator operations.
	KindAdmin
)

// String names the kind for messages and audit records.
func (k Kind) String() string {
	switch k {
	case KindEnrollment:
		return "enrollment"
	case KindAdmin:
		return "administrator"
	default:
		return fmt.Sprintf("Kind(%d)", uint8(k))
	}
}

// Prefix returns the token prefix for the kind, including the trailing
// separator, or "" for an unknown kind.
func (k Kind) Prefix() string {
	switch k {
	case KindEnrollment:
		return "fpe_"
	case KindAdmin:
		return "fpa_"
	default:
		return ""
	}
}

// Sizes of the random parts and of the encoded token.
const (
	// IDBytes is the number of random bytes in a token id.
	IDBytes = 16
	// SecretBytes is the number of random bytes in a token secret (256 bits).
	SecretBytes = 32
	// MaxInputBytes is the longest input Parse looks at; anything longer is
	// not a token (most likely the wrong file) and is refused unread.
	MaxInputBytes = 512

	prefixLen = 4 // "fpe_" / "fpa_"
	idLen     = 26
	secretLen = 43
	// Len is the length of every encoded token.
	Len = prefixLen + idLen + 1 + secretLen
)

// idEncoding is lower-case RFC 4648 base32 without padding.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// secretEncoding is strict unpadded base64url: non-zero trailing bits are
// refused, so every secret has exactly one spelling.
var secretEncoding = base64.RawURLEncoding.Strict()

// Errors returned by this package; test with errors.Is.
var (
	// ErrMalformed means the input is not a well-formed flinkpki token.
	ErrMalformed = errors.New("malformed flinkpki token")
	// ErrOversized means the input is far longer than any token.
	ErrOversized = errors.New("token input too large")
	// ErrUnknownKind means New was asked for a kind that does not exist.
	ErrUnknownKind = errors.New("unknown token kind")
)

// Token is a freshly generated token. Hand String() to its holder once;
// store only ID and Hash(Secret).
type Token struct {
	Kind   Kind
	ID     string
	Secret string
}

// Parsed is the result of Parse. It is the same type as Token so a parsed
// token prints back to exactly the string it came from.
type Parsed = Token

// String returns the bearer form, secret included. Never log it; use
// Redacted for messages.
func (t Token) String() string {
	return t.Kind.Prefix() + t.ID + "_" + t.Secret
}

// Redacted returns the token with its secret elided, which is enough for a
// person to tell tokens apart in logs and audit records.
func (t Token) Redacted() string {
	return t.Kind.Prefix() + t.ID + "_…"
}

// New makes a token of the given kind from r, which should be crypto/rand's
// Reader in production (nil means crypto/rand); tests inject a fixed stream.
func New(kind Kind, r io.Reader) (Token, error) {
	if kind.Prefix() == "" {
		return Token{}, fmt.Errorf("cannot create a token of %v: %w", kind, ErrUnknownKind)
	}
	if r == nil {
		r = rand.Reader
	}
	var buf [IDBytes + SecretBytes]byte
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		return Token{}, fmt.Errorf("reading randomness for a new %v token: %w", kind, err)
	}
	return Token{
		Kind:   kind,
		ID:     idEncoding.EncodeToString(buf[:IDBytes]),
		Secret: secretEncoding.EncodeToString(buf[IDBytes:]),
	}, nil
}
