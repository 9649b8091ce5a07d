package token

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRoundTrips(t *testing.T) {
	for _, kind := range []Kind{KindEnrollment, KindAdmin} {
		tok := mustNew(t, kind, nil)
		tests := []struct {
			name  string
			input string
		}{
			{"the bare token parses", tok.String()},
			{"a trailing newline is trimmed", tok.String() + "\n"},
			{"a trailing CRLF is trimmed", tok.String() + "\r\n"},
			{"surrounding spaces and tabs are trimmed", " \t" + tok.String() + "  "},
			{"padding up to the input limit is accepted", tok.String() + strings.Repeat(" ", MaxInputBytes-Len)},
		}
		for _, tt := range tests {
			t.Run(kind.String()+"/"+tt.name, func(t *testing.T) {
				got, err := Parse(tt.input)
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if got != tok {
					t.Fatalf("Parse = %v, want %v", got.Redacted(), tok.Redacted())
				}
				if got.String() != tok.String() {
					t.Fatalf("String() does not round-trip")
				}
			})
		}
	}
}

// flipLowBit replaces the character at i with its neighbour in alphabet
// whose index differs in the lowest bit, making trailing bits non-zero.
func flipLowBit(s string, i int, alphabet string) string {
	idx := strings.IndexByte(alphabet, s[i])
	return s[:i] + string(alphabet[idx^1]) + s[i+1:]
}

const (
	base32Alphabet    = "abcdefghijklmnopqrstuvwxyz234567"
	base64URLAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)

func TestParseRefuses(t *testing.T) {
	tok := mustNew(t, KindEnrollment, fixedReader(0xa0)).String()
	idEnd := prefixLen + idLen
	tests := []struct {
		name  string
		input string
		want  error
	}{
		{"an empty string", "", ErrMalformed},
		{"white space only", " \n\t", ErrMalformed},
		{"input one byte over the limit", tok + strings.Repeat(" ", MaxInputBytes-Len+1), ErrOversized},
		{"a megabyte of input", strings.Repeat("a", 1<<20), ErrOversized},
		{"an unknown prefix", "fpx_" + tok[prefixLen:], ErrMalformed},
		{"an upper-case prefix", "FPE_" + tok[prefixLen:], ErrMalformed},
		{"a prefix without separator", "fpe" + tok[prefixLen:], ErrMalformed},
		{"a JWT", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", ErrMalformed},
		{"a token missing its last character", tok[:Len-1], ErrMalformed},
		{"a token with an extra character", tok + "A", ErrMalformed},
		{"two tokens on one line", tok + " " + tok, ErrMalformed},
		{"a dash instead of the id separator", tok[:idEnd] + "-" + tok[idEnd+1:], ErrMalformed},
		{"an upper-case id", tok[:prefixLen] + strings.ToUpper(tok[prefixLen:idEnd]) + tok[idEnd:], ErrMalformed},
		{"an id with a character outside base32", tok[:prefixLen] + "8" + tok[prefixLen+1:], ErrMalformed},
		{"an id with non-zero trailing bits", flipLowBit(tok, idEnd-1, base32Alphabet), ErrMalformed},
		{"a secret in standard base64", tok[:Len-1] + "+", ErrMalformed},
		{"a secret with padding", tok[:Len-1] + "=", ErrMalformed},
		{"a secret with non-zero trailing bits", flipLowBit(tok, Len-1, base64URLAlphabet), ErrMalformed},
		{"a secret with an embedded newline", tok[:Len-2] + "\n" + tok[Len-1:], ErrMalformed},
		{"an id with an embedded newline", tok[:prefixLen+3] + "\n" + tok[prefixLen+4:], ErrMalformed},
		{"a secret with an embedded space", tok[:Len-2] + " " + tok[Len-1:], ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.input)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse: err = %v, want %v (parsed %v)", err, tt.want, got.Redacted())
			}
			if got != (Parsed{}) {
				t.Fatalf("Parse returned a non-zero value with an error: %+v", got)
			}
		})
	}
}

func TestParseErrorsNeverEchoTheSecret(t *testing.T) {
	tok := mustNew(t, KindAdmin, nil)
	for _, input := range []string{tok.String() + "x", tok.String()[:Len-1] + "=", "x" + tok.Secret} {
		_, err := Parse(input)
		if err == nil {
			t.Fatalf("Parse accepted a broken token")
		}
		if strings.Contains(err.Error(), tok.Secret[:20]) {
			t.Fatalf("error %q contains part of the secret", err)
		}
	}
}

func TestParseNamesTheKindInLengthErrors(t *testing.T) {
	tok := mustNew(t, KindAdmin, nil)
	_, err := Parse(tok.String()[:40])
	if err == nil || !strings.Contains(err.Error(), "administrator token is 40 characters long, expected 74") {
		t.Fatalf("err = %v; want it to name the kind and both lengths", err)
	}
}

func TestParseIDTakesTheIDOfWhatAPersonPastes(t *testing.T) {
	for _, kind := range []Kind{KindEnrollment, KindAdmin} {
		tok := mustNew(t, kind, nil)
		for name, c := range map[string]struct {
			input string
			kind  Kind
		}{
			"the ID alone":              {tok.ID, 0},
			"the ID with a newline":     {tok.ID + "\n", 0},
			"the redacted form":         {tok.Redacted(), kind},
			"the whole token":           {tok.String(), kind},
			"the whole token, newline":  {tok.String() + "\n", kind},
			"a token cut in its secret": {tok.String()[:Len-5], kind},
		} {
			k, id, err := ParseID(c.input)
			if err != nil || id != tok.ID || k != c.kind {
				t.Errorf("%v, %s: ParseID = %v, %q, %v; want %v, %q", kind, name, k, id, err, c.kind, tok.ID)
			}
		}
	}
}

func TestParseIDRefusesWithoutEchoing(t *testing.T) {
	tok := mustNew(t, KindEnrollment, nil)
	for name, input := range map[string]string{
		"the secret alone":           tok.Secret,
		"a token with its ID cut":    tok.String()[:20] + "_" + tok.Secret,
		"an ID in upper case":        strings.ToUpper(tok.ID),
		"an ID and the secret glued": tok.ID + tok.Secret,
		"far too long":               strings.Repeat(tok.Secret, 20),
		"empty":                      "",
	} {
		_, _, err := ParseID(input)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
			continue
		}
		if strings.Contains(err.Error(), tok.Secret[:12]) || strings.Contains(err.Error(), tok.ID[:12]) {
			t.Errorf("%s: error %q quotes the input", name, err)
		}
	}
	if ValidID(tok.String()) || !ValidID(tok.ID) {
		t.Error("ValidID must accept the ID alone and nothing else")
	}
}

func TestLooksLikeJWT(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  bool
	}{
		{"a signed JWT", "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJ4In0.AbC-_9", true},
		{"a JWT with a trailing newline", "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.AbC\n", true},
		{"an unsigned JWT with an empty signature", "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.", true},
		{"a flinkpki token", mustNew(t, KindEnrollment, nil).String(), false},
		{"two segments", "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0", false},
		{"four segments", "eyJh.eyJp.c2ln.eHh4", false},
		{"a header that is not JSON", "abc.eyJpc3MiOiJ4In0.c2ln", false},
		{"an empty payload", "eyJhbGciOiJub25lIn0..c2ln", false},
		{"padded base64", "eyJhbGciOiJub25lIn0=.eyJpc3MiOiJ4In0.c2ln", false},
		{"standard base64 characters", "eyJhbGc+.eyJpc3M/.c2ln", false},
		{"an empty string", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := LooksLikeJWT(tt.input); got != tt.want {
				t.Fatalf("LooksLikeJWT(%q) = %v, want %v", tt.input, got, tt.want)
			}
		})
	}
}
