package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestCellTextQuotesACellWithAnyRuneThatDoesNotPrint(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"a plain name is kept", "orders", "orders"},
		{"spaces and punctuation are kept", `denied: cluster "x" not found`, `denied: cluster "x" not found`},
		{"printable non-ASCII is kept", "zürich-東京", "zürich-東京"},
		{"a newline is quoted", "x\n9999", `"x\n9999"`},
		{"a tab is quoted", "a\tb", `"a\tb"`},
		{"a terminal escape is quoted", "ok\x1b[2K", `"ok\x1b[2K"`},
		{"a carriage return is quoted", "ok\rforged", `"ok\rforged"`},
		{"a right-to-left override is quoted", "abc\u202edef", `"abc\u202edef"`},
		{"invalid UTF-8 is quoted", "a\xffb", `"a\xffb"`},
		{"a DEL byte is quoted", "a\x7f", `"a\x7f"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cellText(tt.in); got != tt.want {
				t.Errorf("cellText(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

// TestATableKeepsOneLinePerRowWhateverItsCellsHold covers both ways into a
// table: row escapes whole cells, Write escapes what lies between the tabs
// and newlines a caller formatted.
func TestATableKeepsOneLinePerRowWhateverItsCellsHold(t *testing.T) {
	var b bytes.Buffer
	w := newTable(&b)
	w.row("NAME", "REASON")
	w.row("x\n9999\tadmin:root\x1b[2K", 42)
	if _, err := w.Write([]byte("ca\x1b]0;title\x07\tok\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if n := strings.Count(out, "\n"); n != 3 {
		t.Errorf("the table has %d lines, want 3:\n%s", n, out)
	}
	if strings.ContainsAny(out, "\x1b\x07\t") {
		t.Errorf("the table holds a raw control character: %q", out)
	}
	if !strings.Contains(out, `"x\n9999\tadmin:root\x1b[2K"`) {
		t.Errorf("the forged cell is not shown quoted:\n%s", out)
	}
}

func TestOneLineEscapesWhatDoesNotPrint(t *testing.T) {
	tests := []struct{ in, want string }{
		{"cluster \"orders\" not found", "cluster \"orders\" not found"},
		{"two\nlines\tand  spaces", "two lines and spaces"},
		{"denied: \"x\x1b[2Kforged\"", `denied: "x\x1b[2Kforged"`},
		{"abc\u202edef zürich", `abc\u202edef zürich`},
	}
	for _, tt := range tests {
		if got := oneLine(tt.in); got != tt.want {
			t.Errorf("oneLine(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
