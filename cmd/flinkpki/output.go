package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

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

// writeJSON prints v as indented JSON followed by a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newTable returns a tab-aligned writer; call Flush when done.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
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
