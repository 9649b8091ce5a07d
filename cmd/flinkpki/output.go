package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// outputFormat is the value of -o: "table" for people, "json" for scripts.
type outputFormat string

func (o *outputFormat) String() string { return string(*o) }
func (o *outputFormat) Type() string   { return "table|json" }
func (o *outputFormat) Set(s string) error {
	switch s {
	case "table", "json":
		*o = outputFormat(s)
		return nil
	}
	return fmt.Errorf("unknown output format %q: use table or json", s)
}

// addOutputFlag registers -o on cmd, table by default.
func addOutputFlag(cmd *cobra.Command, o *outputFormat) {
	*o = "table"
	cmd.Flags().VarP(o, "output", "o", "output format: table or json")
}

// writeJSON prints v as indented JSON followed by a newline. It is read by
// scripts and people, not embedded in HTML: <, > and & stay as they are.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes tab-aligned columns for people. Its cells are escaped
// (cellText): much of what a table shows was chosen by a caller, a refused
// cluster name in the audit trail included, and a raw newline or terminal
// escape sequence in one would let anyone with any token forge rows, or
// rewrite lines, in an operator's terminal. Call flush when done.
type table struct{ tw *tabwriter.Writer }

// newTable returns a table writing to w.
func newTable(w io.Writer) *table {
	return &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
}

// row writes one row, each cell printed with fmt.Sprint and escaped.
func (t *table) row(cells ...any) {
	var b strings.Builder
	for i, c := range cells {
		if i > 0 {
			b.WriteByte('\t')
		}
		b.WriteString(cellText(fmt.Sprint(c)))
	}
	b.WriteByte('\n')
	_, _ = t.tw.Write([]byte(b.String())) // a write error resurfaces in Flush
}

// Write takes whole lines with tabs between the cells, for callers that
// format rows themselves: each cell is escaped as row escapes it, but a
// value that may hold a tab or newline of its own must go through row.
func (t *table) Write(p []byte) (int, error) {
	var b strings.Builder
	start := 0
	for i, c := range p {
		if c == '\t' || c == '\n' {
			b.WriteString(cellText(string(p[start:i])))
			b.WriteByte(c)
			start = i + 1
		}
	}
	b.WriteString(cellText(string(p[start:])))
	if _, err := t.tw.Write([]byte(b.String())); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes the aligned table.
func (t *table) Flush() error { return t.tw.Flush() }

// cellText returns s unchanged when every rune of it prints as itself, and
// as a Go-quoted string (strconv.Quote: \n, \x1b, \u202e) when not.
func cellText(s string) string {
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// rfc3339 formats a protobuf timestamp for JSON and tables; unset is "".
func rfc3339(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

// orDash keeps empty table cells visible.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// plural is n with the noun's singular or plural form: "1 entry", "2 entries".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
