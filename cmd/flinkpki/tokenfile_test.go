package main

import (
	"strings"
	"testing"

	"github.com/flinkpki/flinkpki/enroll"
)

// TestATokenFileHoldingMoreThanTheTokenIsRefusedWithoutEchoingIt: gRPC
// would refuse such a token with its own words about header values; the
// client says what is wrong with the file, in one line that quotes none of
// it, and sends nothing.
func TestATokenFileHoldingMoreThanTheTokenIsRefusedWithoutEchoingIt(t *testing.T) {
	const secret = "fpe_s3cretpart"
	tests := []struct {
		name, content, why string
	}{
		{"two tokens on two lines", secret + "A\n" + secret + "B\n", "it has 2 lines"},
		{"a token and a comment", "# admin\n" + secret + "\n", "it has 2 lines"},
		{"Windows line ends inside", secret + "\r\n" + secret + "\r\n", "it has 2 lines"},
		{"a non-ASCII letter", secret + "é", "is not a printable ASCII character"},
		{"a space inside", secret + " " + secret, "byte 15 is a space or a tab, which no token holds"},
		{"a tab inside", secret + "\t" + secret, "byte 15 is a space or a tab"},
		{"a control character", secret + "\x1b[2K", "is not a printable ASCII character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, conns := countingListener(t)
			f := writeFile(t, "token", tt.content)
			r := runCLI(t, map[string]string{"FLINKPKI_SERVER": addr, "FLINKPKI_TOKEN_FILE": f}, "cluster", "list")
			msg := strings.TrimRight(r.stderr, "\n")
			want := "flinkpki: token file " + f + " must hold the token alone on one line: "
			if r.code != 1 || strings.Contains(msg, "\n") || !strings.HasPrefix(msg, want) || !strings.Contains(msg, tt.why) {
				t.Fatalf("exit %d, stderr %q; want exit 1 and one line %q...%q", r.code, r.stderr, want, tt.why)
			}
			if strings.Contains(r.stderr+r.stdout, "s3cret") {
				t.Errorf("the error echoes the token: %q", r.stderr)
			}
			if n := conns.Load(); n != 0 {
				t.Errorf("%d connections were made with a bad token file", n)
			}
		})
	}
	if _, err := enroll.ReadToken(writeFile(t, "token", secret+"\n")); err != nil {
		t.Errorf("a token alone is refused: %v", err)
	}
}
