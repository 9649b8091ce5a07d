package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// app holds what every command shares: its output streams and its view of
// the environment, injected so tests can run the CLI in-process.
type app struct {
	stdin          io.Reader // flink lint -
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time

	conn connFlags
	// target is the server address of the last connection made, for error
	// messages.
	target string
}

// run executes the CLI with args and returns the process exit code: 0 on
// success, 1 when the operation failed or was refused, 2 on a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{stdin: os.Stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv, now: time.Now}
	return a.run(ctx, args)
}

// reportClosedPipes makes a write to a closed pipe fail with EPIPE instead
// of ending the process (Go's default for standard output), for the
// commands whose output must not be lost unsaid: a token that was made
// (its error names it, to revoke), a backup (its staged copy is removed).
// Other commands keep the default, so "| head" stays quiet.
func reportClosedPipes() { signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE) }

func (a *app) run(ctx context.Context, args []string) int {
	root := a.newRootCmd()
	root.SetArgs(args)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	msg := oneLine(a.humanize(err))
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || a.cutOff(err)) {
		msg = interruptedText(msg)
	}
	fmt.Fprintf(a.stderr, "flinkpki: %s\n", msg)
	return exitCode(err)
}

// cutOff reports whether err is a call to the server that the command's
// end cut off: gRPC's own status for a call canceled while it connected
// or waited for its answer, or a connection the cancellation ended.
func (a *app) cutOff(err error) bool {
	if a.target == "" {
		return false
	}
	switch status.Code(err) {
	case codes.Canceled, codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// interruptedText words the failure of a command that Ctrl-C or SIGTERM
// ended: "interrupted", then what the command says it did or left, without
// the bare "context canceled" of the cancellation itself.
func interruptedText(msg string) string {
	switch {
	case msg == canceledText:
		return "interrupted"
	case strings.HasSuffix(msg, ": "+canceledText):
		return "interrupted: " + strings.TrimSuffix(msg, ": "+canceledText)
	case strings.HasPrefix(msg, "interrupted"):
		return msg
	default:
		return "interrupted: " + msg
	}
}

func (a *app) newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "flinkpki",
		Short: "A PKI for Apache Flink: one CA per cluster, keystores for every pod",
		Long: `flinkpki keeps one dedicated CA per Flink cluster, used for nothing but that
cluster's internal mutual TLS, and issues JKS/PKCS#12 keystores and truststores
to JobManagers and TaskManagers. It also rotates those CAs without breaking
running clusters.

Client commands talk to a flinkpki server over TLS. Tell them where it is with
--server HOST:PORT (default 127.0.0.1:7443), which CA to trust with --ca-file
(the server's server-ca.crt) and which token to use with --token-file, or set
FLINKPKI_SERVER, FLINKPKI_CA_FILE and FLINKPKI_TOKEN_FILE. Flags win.

Exit codes: 0 success, 1 the operation failed or was refused, 2 usage error.`,
		Example: `  # a local server for trying things out
  flinkpki serve --dev --data-dir ./flinkpki-data
  export FLINKPKI_CA_FILE=./flinkpki-data/server-ca.crt FLINKPKI_TOKEN_FILE=./flinkpki-data/admin.token

  flinkpki cluster create orders
  flinkpki bake --cluster orders --role jobmanager --holder jm-0 --out ./tls
  flinkpki ca status --cluster orders`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       readBuildInfo().String(),
	}
	root.SetVersionTemplate("flinkpki {{.Version}}\n")
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetHelpCommand(newHelpCmd())
	root.AddCommand(
		newServeCmd(),
		a.newClusterCmd(),
		a.newTokenCmd(),
		a.newBakeCmd(),
		a.newInitCmd(),
		a.newHolderCmd(),
		a.newCACmd(),
		a.newAuditCmd(),
		a.newAdminCmd(),
		a.newFlinkCmd(),
		a.newServerCACmd(),
		a.newBenchCmd(),
		a.newVersionCmd(),
	)
	prepareTree(root)
	return root
}

// newHelpCmd is cobra's help command, but a topic it does not know is a
// usage error (exit 2), as an unknown command is, not the root's help and
// success.
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		Long:  "Help prints the help of any command: flinkpki help COMMAND [SUBCOMMAND], the same as flinkpki COMMAND --help.",
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || cmd == nil || len(rest) > 0 {
				return usagef("unknown help topic %q; see flinkpki --help", strings.Join(args, " "))
			}
			cmd.InitDefaultHelpFlag()
			cmd.InitDefaultVersionFlag()
			return cmd.Help()
		},
	}
}

// prepareTree applies the exit-code conventions to every command: flag
// errors and argument errors become usage errors, and errors returned by a
// command's RunE are operation errors unless already marked as usage.
func prepareTree(c *cobra.Command) {
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	if c.Args != nil {
		validate := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := validate(cmd, args); err != nil {
				return usageError{fmt.Errorf("%w (usage: %s)", err, cmd.UseLine())}
			}
			return nil
		}
	}
	if c.RunE != nil {
		runE := c.RunE
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if err := runE(cmd, args); err != nil {
				return markOperation(err)
			}
			return nil
		}
	} else if c.Run == nil && c.HasSubCommands() {
		// A command group, the root too: "flinkpki cluster" shows its
		// help, and an unknown subcommand is a usage error, with cobra's
		// suggestions, instead of silent help.
		unknown := func(cmd *cobra.Command, name string) error {
			msg := fmt.Sprintf("unknown command %q for %q", name, cmd.CommandPath())
			if cmd.SuggestionsMinimumDistance <= 0 {
				cmd.SuggestionsMinimumDistance = 2 // cobra's default, set where it suggests itself
			}
			if near := cmd.SuggestionsFor(name); len(near) > 0 {
				msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(near, " or "))
			}
			return usageError{fmt.Errorf("%s; see %s --help", msg, cmd.CommandPath())}
		}
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return unknown(cmd, args[0])
			}
			return nil
		}
		// "flinkpki ca stauts --cluster x" fails on the group's flags
		// before its arguments are looked at: the flag is fine, the
		// subcommand is not, and the error says that.
		c.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
			if args := cmd.Flags().Args(); len(args) > 0 {
				return unknown(cmd, args[0])
			}
			return usageError{err}
		})
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
	for _, sub := range c.Commands() {
		prepareTree(sub)
	}
}
