package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildInfo is what flinkpki version prints: what the Go toolchain recorded
// in the binary (the module version, the commit it was built from).
type buildInfo struct {
	Version   string `json:"version"`     // the module version: a pseudo-version from the commit for a build from a checkout, "(devel)" without VCS information
	Commit    string `json:"commit"`      // the VCS revision, "" when not recorded
	CommitAt  string `json:"commit_time"` // RFC 3339
	Modified  bool   `json:"modified"`    // built with uncommitted changes
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: "(unknown)", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if bi.Main.Version != "" {
		b.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.CommitAt = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the one-line form: flinkpki --version, and serve's first log.
func (b buildInfo) String() string {
	s := b.Version
	if b.Commit != "" {
		c := b.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		s += " (commit " + c
		if b.Modified {
			s += ", modified"
		}
		s += ")"
	}
	return s + " " + b.GoVersion + " " + b.Platform
}

func (a *app) newVersionCmd() *cobra.Command {
	var out outputFormat
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary",
		Long: `Print the version this binary was built as, the commit it was built from (as
the Go toolchain recorded it), the Go version and the platform. Include it in
bug reports; flinkpki --version prints the same on one line.`,
		Example: `  flinkpki version
  flinkpki version -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := readBuildInfo()
			if out == "json" {
				return writeJSON(a.stdout, b)
			}
			_, err := fmt.Fprintf(a.stdout, "flinkpki %s\n", b)
			return err
		},
	}
	addOutputFlag(cmd, &out)
	return cmd
}
