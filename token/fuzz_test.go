package token

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error is one of the
// package's sentinels, and that anything it accepts prints back to exactly
// the trimmed input and parses again to the same value.
func FuzzParse(f *testing.F) {
	f.Add(mustNew(f, KindEnrollment, fixedReader(1)).String())
	f.Add(mustNew(f, KindAdmin, fixedReader(2)).String() + "\n")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrOversized) {
				t.Fatalf("Parse error %v wraps no sentinel", err)
			}
			return
		}
		if got, want := p.String(), strings.TrimSpace(s); got != want {
			t.Fatalf("accepted %q but prints back as %q", want, got)
		}
		again, err := Parse(p.String())
		if err != nil || again != p {
			t.Fatalf("re-parsing %q gave %+v, %v", p.String(), again, err)
		}
		if !Verify(Hash(p.Secret), p.Secret) {
			t.Fatalf("secret of an accepted token does not verify against its own hash")
		}
	})
}
