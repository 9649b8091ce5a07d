package token

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
)

// fixedReader returns a reader that yields b forever, so New is deterministic.
func fixedReader(b byte) io.Reader {
	return bytes.NewReader(bytes.Repeat([]byte{b}, IDBytes+SecretBytes))
}

// mustNew makes a token or fails the test.
func mustNew(tb testing.TB, kind Kind, r io.Reader) Token {
	tb.Helper()
	tok, err := New(kind, r)
	if err != nil {
		tb.Fatalf("New(%v): %v", kind, err)
	}
	return tok
}

var tokenShape = regexp.MustCompile(`^fp[ea]_[a-z2-7]{26}_[A-Za-z0-9_-]{43}$`)

func TestNewProducesTheDocumentedShape(t *testing.T) {
	tests := []struct {
		name   string
		kind   Kind
		prefix string
	}{
		{"an enrollment token starts with fpe_", KindEnrollment, "fpe_"},
		{"an administrator token starts with fpa_", KindAdmin, "fpa_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := mustNew(t, tt.kind, nil)
			s := tok.String()
			if !strings.HasPrefix(s, tt.prefix) {
				t.Errorf("token %q does not start with %q", tok.Redacted(), tt.prefix)
			}
			if len(s) != Len || !tokenShape.MatchString(s) {
				t.Errorf("token has length %d and shape match %v, want %d and true", len(s), tokenShape.MatchString(s), Len)
			}
			if tok.Kind != tt.kind {
				t.Errorf("Kind = %v, want %v", tok.Kind, tt.kind)
			}
		})
	}
}

func TestNewIsDeterministicForAnInjectedReader(t *testing.T) {
	a := mustNew(t, KindEnrollment, fixedReader(0x5a))
	b := mustNew(t, KindEnrollment, fixedReader(0x5a))
	if a != b {
		t.Fatalf("two tokens from the same stream differ: %v vs %v", a.Redacted(), b.Redacted())
	}
	c := mustNew(t, KindEnrollment, fixedReader(0x5b))
	if a.ID == c.ID || a.Secret == c.Secret {
		t.Fatalf("tokens from different streams share id or secret")
	}
}

func TestNewGivesDistinctTokensFromCryptoRand(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok := mustNew(t, KindAdmin, rand.Reader)
		if seen[tok.ID] || seen[tok.Secret] {
			t.Fatalf("crypto/rand produced a repeated id or secret")
		}
		seen[tok.ID], seen[tok.Secret] = true, true
	}
}

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name string
		kind Kind
		r    io.Reader
		want error
	}{
		{"an unknown kind", Kind(9), nil, ErrUnknownKind},
		{"the zero kind", Kind(0), nil, ErrUnknownKind},
		{"a reader that runs dry", KindEnrollment, bytes.NewReader(make([]byte, IDBytes+SecretBytes-1)), io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.kind, tt.r)
			if !errors.Is(err, tt.want) {
				t.Fatalf("New: err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRedactedHidesTheSecret(t *testing.T) {
	tok := mustNew(t, KindEnrollment, nil)
	r := tok.Redacted()
	if strings.Contains(r, tok.Secret) || !strings.Contains(r, tok.ID) {
		t.Fatalf("Redacted() = %q; want the id and not the secret", r)
	}
}

func TestKindNames(t *testing.T) {
	tests := []struct {
		kind Kind
		want string
	}{
		{KindEnrollment, "enrollment"},
		{KindAdmin, "administrator"},
		{Kind(7), "Kind(7)"},
	}
	for _, tt := range tests {
		if got := tt.kind.String(); got != tt.want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(tt.kind), got, tt.want)
		}
	}
}

func TestHashAndVerify(t *testing.T) {
	tok := mustNew(t, KindEnrollment, nil)
	other := mustNew(t, KindEnrollment, nil)
	stored := Hash(tok.Secret)
	plain := sha256.Sum256([]byte(tok.Secret))

	if len(stored) != sha256.Size {
		t.Fatalf("Hash length = %d, want %d", len(stored), sha256.Size)
	}
	if !bytes.Equal(stored, Hash(tok.Secret)) {
		t.Fatalf("Hash is not deterministic")
	}
	if bytes.Equal(stored, plain[:]) {
		t.Fatalf("Hash equals plain SHA-256 of the secret; the domain prefix is missing")
	}
	tests := []struct {
		name   string
		stored []byte
		secret string
		want   bool
	}{
		{"the right secret verifies", stored, tok.Secret, true},
		{"another token's secret is refused", stored, other.Secret, false},
		{"an empty secret is refused", stored, "", false},
		{"an empty stored hash refuses everything", nil, tok.Secret, false},
		{"a truncated stored hash is refused", stored[:16], tok.Secret, false},
		{"the plain SHA-256 of the secret is refused", plain[:], tok.Secret, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Verify(tt.stored, tt.secret); got != tt.want {
				t.Fatalf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}
