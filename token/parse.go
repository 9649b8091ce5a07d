package token

import (
	"fmt"
	"strings"
)

// Parse reads a bearer string as a flinkpki token. It trims surrounding
// white space, because token files usually end with a newline, and is
// otherwise strict: only the exact canonical form New produces is accepted.
// Error messages never echo the input, since it may hold a secret.
func Parse(s string) (Parsed, error) {
	if len(s) > MaxInputBytes {
		return Parsed{}, fmt.Errorf("token input is %d bytes, more than the %d-byte limit; a token file holds one token of %d characters: %w",
			len(s), MaxInputBytes, Len, ErrOversized)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return Parsed{}, fmt.Errorf("token is empty: %w", ErrMalformed)
	}
	kind, ok := kindOf(s)
	if !ok {
		if LooksLikeJWT(s) {
			return Parsed{}, fmt.Errorf("input is a JWT such as a Kubernetes service-account token, not a flinkpki token: %w", ErrMalformed)
		}
		return Parsed{}, fmt.Errorf("token does not start with %q or %q: %w",
			KindEnrollment.Prefix(), KindAdmin.Prefix(), ErrMalformed)
	}
	if len(s) != Len {
		return Parsed{}, fmt.Errorf("%v token is %d characters long, expected %d; was it cut or joined with other text?: %w",
			kind, len(s), Len, ErrMalformed)
	}
	id, sep, secret := s[prefixLen:prefixLen+idLen], s[prefixLen+idLen], s[prefixLen+idLen+1:]
	if sep != '_' {
		return Parsed{}, fmt.Errorf("%v token has no '_' between its id and its secret: %w", kind, ErrMalformed)
	}
	if !canonicalID(id) {
		return Parsed{}, fmt.Errorf("%v token id is not %d bytes of lower-case base32: %w", kind, IDBytes, ErrMalformed)
	}
	if !canonicalSecret(secret) {
		return Parsed{}, fmt.Errorf("%v token secret is not %d bytes of unpadded base64url: %w", kind, SecretBytes, ErrMalformed)
	}
	return Parsed{Kind: kind, ID: id, Secret: secret}, nil
}

// kindOf recognises the prefix of s.
func kindOf(s string) (Kind, bool) {
	for _, k := range []Kind{KindEnrollment, KindAdmin} {
		if strings.HasPrefix(s, k.Prefix()) {
			return k, true
		}
	}
	return 0, false
}

// canonicalID reports whether id decodes to IDBytes bytes and re-encodes to
// itself. The re-encoding check refuses non-zero trailing bits and the
// line breaks that encoding/base32 would otherwise skip.
func canonicalID(id string) bool {
	b, err := idEncoding.DecodeString(id)
	return err == nil && len(b) == IDBytes && idEncoding.EncodeToString(b) == id
}

// canonicalSecret is canonicalID for the secret.
func canonicalSecret(secret string) bool {
	b, err := secretEncoding.DecodeString(secret)
	return err == nil && len(b) == SecretBytes && secretEncoding.EncodeToString(b) == secret
}

// LooksLikeJWT reports whether a bearer string has the shape of a compact
// JWS, as Kubernetes service-account tokens do: three dot-separated base64url
// segments whose header begins with `eyJ` (the encoding of `{"`). The server
// uses it to route a bearer string to the Kubernetes verifier instead of the
// token store. It checks shape only; it proves nothing about the token.
func LooksLikeJWT(s string) bool {
	s = strings.TrimSpace(s)
	header, rest, ok := strings.Cut(s, ".")
	if !ok {
		return false
	}
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(sig, ".") {
		return false
	}
	// The signature may be empty: an unsigned (alg "none") JWT still belongs
	// to the JWT verifier, which refuses it with a precise reason.
	return strings.HasPrefix(header, "eyJ") && payload != "" &&
		isBase64URL(header) && isBase64URL(payload) && isBase64URL(sig)
}

// isBase64URL reports whether s uses only the unpadded base64url alphabet.
func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// ParseID reads what a person passes to name a token: its ID alone (as
// token list shows it), its redacted form (fpe_<id>_…) or the whole token,
// pasted from a leak, of which only the ID is used. kind is 0 for an ID
// alone. Errors never echo s, since it may hold a secret.
func ParseID(s string) (kind Kind, id string, err error) {
	if len(s) > MaxInputBytes {
		return 0, "", fmt.Errorf("a token ID is %d characters, not %d bytes: %w", idLen, len(s), ErrMalformed)
	}
	s = strings.TrimSpace(s)
	if t, err := Parse(s); err == nil {
		return t.Kind, t.ID, nil
	}
	id = s
	if k, ok := kindOf(s); ok {
		kind = k
		id, _, _ = strings.Cut(s[prefixLen:], "_")
	}
	if !canonicalID(id) {
		return 0, "", fmt.Errorf("not a token ID: an ID is the %d characters (a-z, 2-7) that token list (or admin token list) shows, the part of a token between its prefix and the next '_': %w", idLen, ErrMalformed)
	}
	return kind, id, nil
}

// ValidID reports whether id is a token ID in the one form New makes.
func ValidID(id string) bool { return canonicalID(id) }
