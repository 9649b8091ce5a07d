// Administrator tokens managed online (admin token create, list, revoke),
// through the running server with an administrator token.
// admin_token_offline.go holds the offline forms for a stopped server's
// store (bootstrap, list-tokens, revoke-token).

package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flinkpki/flinkpki/authority"
	flinkpkiv1 "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
	"github.com/flinkpki/flinkpki/token"
)

// defaultAdminTokenTTL is admin token create's lifetime unless --ttl says
// otherwise: a token made for a person or a job should end on its own.
const defaultAdminTokenTTL = 90 * day

func (a *app) newAdminTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Make, list and revoke administrator tokens on the running server",
		Long: `Make, list and revoke administrator tokens through the running server, with
an administrator token: no downtime, on one server or an HA set. The first
administrator token comes from admin bootstrap (offline, as the server never
writes token files outside --dev); admin list-tokens and admin revoke-token
do the same as list and revoke here on a stopped server's store.

Every token records who made it and the tokens it was made through.
Revoking a token revokes every token made through it, so a stolen token's
revocation takes what was minted with it; --keep-made revokes the one alone.
A token never outlives the token it was made with: keep one that does not
expire (--ttl 0) as break-glass, offline.`,
	}
	a.addConnFlags(cmd)
	cmd.AddCommand(a.newAdminTokenCreateCmd(), a.newAdminTokenListCmd(), a.newAdminTokenRevokeCmd())
	return cmd
}

// adminTokenCreateFlags are admin token create's flags.
type adminTokenCreateFlags struct {
	name string
	ttl  durationFlag
	out  outputFormat
}

func (a *app) newAdminTokenCreateCmd() *cobra.Command {
	f := adminTokenCreateFlags{ttl: durationFlag{d: defaultAdminTokenTTL, min: authority.MinAdminTokenTTL, max: authority.MaxAdminTokenTTL, orZero: true}}
	cmd := &cobra.Command{
		Use:   "create --name NAME [--ttl DUR]",
		Short: "Make another administrator token",
		Long: `Make another administrator token, for a colleague, a CI job or a CronJob (such
as audit archive), and print it alone on stdout, so redirecting into a file
just works; the rest goes to stderr. With -o json, stdout holds an object
with the token, its ID (for revoke), name and expiry instead. The server
stores only its hash: it cannot be shown again.

It expires after --ttl (90 days unless given; 0: never), and never later than
the token that made it. The audit trail records its creation
(admin_token.create) with the maker.`,
		Example: `  (umask 077; flinkpki admin token create --name ci-archive --ttl 30d > ci-archive.token)
  flinkpki admin token create --name alice --ttl 12h -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runAdminTokenCreate(cmd.Context(), &f) },
	}
	cmd.Flags().StringVar(&f.name, "name", "", "a label for the token, recorded in the audit trail (required)")
	cmd.Flags().Var(&f.ttl, "ttl", "how long the token is valid, "+formatDuration(authority.MinAdminTokenTTL)+" to "+formatDuration(authority.MaxAdminTokenTTL)+"; 0: no expiry")
	addOutputFlag(cmd, &f.out)
	return cmd
}

// runAdminTokenCreate has the server make the token and prints it alone on
// stdout; a token that could not be printed is named with the command
// that revokes it.
func (a *app) runAdminTokenCreate(ctx context.Context, f *adminTokenCreateFlags) error {
	reportClosedPipes()
	if err := requireFlag("name", f.name); err != nil {
		return err
	}
	conn, err := a.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := flinkpkiv1.NewAdminServiceClient(conn).CreateAdminToken(ctx, &flinkpkiv1.CreateAdminTokenRequest{
		Name: f.name, Ttl: durationpb.New(f.ttl.d),
	})
	if err != nil {
		return err
	}
	info := resp.GetInfo()
	expires := rfc3339(info.GetExpireTime())
	if err := printNewToken(a.stdout, f.out, resp.GetToken(), newAdminTokenJSON{resp.GetToken(), info.GetId(), info.GetName(), expires}); err != nil {
		return orphanedToken("administrator token", info.GetId(), a.commandLine("admin", "token", "revoke", info.GetId()), err)
	}
	if f.out == "json" {
		return nil
	}
	when := "does not expire"
	if expires != "" {
		when = "expires " + expires
		if f.ttl.d == 0 || info.GetExpireTime().AsTime().Before(info.GetCreateTime().AsTime().Add(f.ttl.d)) {
			when += " (the token that made it expires then)"
		}
	}
	fmt.Fprintf(a.stderr, "administrator token %s %q %s; keep it secret (store it with mode 0600)\n", info.GetId(), info.GetName(), when)
	return nil
}

func (a *app) newAdminTokenListCmd() *cobra.Command {
	var out outputFormat
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the administrator tokens: IDs, names, expiry, state and who made each",
		Long: `List the administrator tokens, revoked ones included. Only hashes of their
secrets are stored, so this shows each token's ID (the part of the token
between its prefix and its secret), name, creation and expiry time, state
(valid, expired, revoked, or revoked with the token it was made through) and
who made it: "admin:ID" for a token made with another administrator token,
"system:bootstrap" for admin bootstrap. -o json adds made_with, the whole
chain of tokens it was made through: revoking any of them with its made
tokens revokes it.`,
		Example: `  flinkpki admin token list
  flinkpki admin token list -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := a.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			resp, err := flinkpkiv1.NewAdminServiceClient(conn).ListAdminTokens(cmd.Context(), &flinkpkiv1.ListAdminTokensRequest{})
			if err != nil {
				return err
			}
			type tokenJSON struct {
				adminTokenRow
				Created string `json:"create_time"`
				Expires string `json:"expire_time"`
			}
			rows, table := []tokenJSON{}, []adminTokenRow{}
			for _, t := range resp.GetTokens() {
				r := adminTokenRowOf(t.GetId(), t.GetName(), t.GetCreatedBy(), t.GetState(), t.GetRevokedWith(), t.GetMadeWith(),
					pbTime(t.GetCreateTime()), pbTime(t.GetExpireTime()), pbTime(t.GetRevokeTime()))
				table = append(table, r)
				rows = append(rows, tokenJSON{r, r.Created, r.Expires})
			}
			if out == "json" {
				return writeJSON(a.stdout, struct {
					Tokens []tokenJSON `json:"tokens"`
				}{rows})
			}
			return printAdminTokens(a.stdout, table)
		},
	}
	addOutputFlag(cmd, &out)
	return cmd
}

// adminTokenRow is an administrator token as the listings print it; each
// adds its own names for the creation and expiry times to its JSON.
type adminTokenRow struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Expired     bool     `json:"expired"`
	State       string   `json:"state"`
	Revoked     string   `json:"revoke_time,omitempty"`
	RevokedWith string   `json:"revoked_with,omitempty"`
	CreatedBy   string   `json:"created_by"`
	MadeWith    []string `json:"made_with"`
	// RFC 3339; "" for none.
	Created, Expires string `json:"-"`
}

func adminTokenRowOf(id, name, createdBy, state, revokedWith string, madeWith []string, created, expires, revoked time.Time) adminTokenRow {
	r := adminTokenRow{ID: id, Name: name, CreatedBy: createdBy, State: state, Expired: !expires.IsZero() && !expires.After(time.Now()),
		RevokedWith: revokedWith, MadeWith: append([]string{}, madeWith...)}
	for _, f := range []struct {
		t   time.Time
		out *string
	}{{created, &r.Created}, {expires, &r.Expires}, {revoked, &r.Revoked}} {
		if !f.t.IsZero() {
			*f.out = f.t.UTC().Format(time.RFC3339)
		}
	}
	return r
}

// pbTime is ts as a time, zero when unset.
func pbTime(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// printAdminTokens prints the administrator tokens table of admin token
// list and admin list-tokens.
func printAdminTokens(w io.Writer, rows []adminTokenRow) error {
	tw := newTable(w)
	tw.row("ID", "NAME", "CREATED", "EXPIRES", "STATE", "CREATED BY")
	for _, r := range rows {
		expires := r.Expires
		if expires == "" {
			expires = "never"
		}
		state := r.State
		switch r.State {
		case authority.AdminTokenRevoked:
			state = "revoked " + r.Revoked
		case authority.AdminTokenRevokedWith:
			state = "revoked with " + r.RevokedWith
		}
		tw.row(r.ID, r.Name, r.Created, expires, state, orDash(r.CreatedBy))
	}
	return tw.Flush()
}

func (a *app) newAdminTokenRevokeCmd() *cobra.Command {
	var (
		keepMade, force bool
		out             outputFormat
	)
	cmd := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an administrator token and the tokens made through it",
		Long: `Revoke an administrator token at once, on every replica, with every token made
through it, even one made through a token in between that was revoked
alone: a stolen token's revocation takes what was minted with it.
--keep-made revokes the named token alone. The revocation is audited once
(admin_token.revoke, with made, how many it took, and made_ids).

Refused, unless --force, when it would leave no token as long-lived as the
longest valid now (one that does not expire, if any does not): no token
outlives the one it was made with, so tokens that all expire could never make
a lasting one, and after they expire only an offline admin bootstrap makes
another (downtime on bbolt). With --keep-made, a replacement made with the
token itself (--ttl 0) survives it. A stolen token goes with --force
whatever it leaves, audited as forced.

The leaked token itself, or its redacted form (fpa_<ID>_…), names it too:
only its ID is sent, and the secret is never printed or audited.`,
		Example: `  flinkpki admin token list
  flinkpki admin token revoke mv4qmyah6uefiqnnhstwfdajdy
  flinkpki admin token revoke mv4qmyah6uefiqnnhstwfdajdy --keep-made -o json
  flinkpki admin token revoke mv4qmyah6uefiqnnhstwfdajdy --force`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := tokenID(args[0], token.KindAdmin)
			if err != nil {
				return err
			}
			conn, err := a.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			resp, err := flinkpkiv1.NewAdminServiceClient(conn).RevokeAdminToken(cmd.Context(), &flinkpkiv1.RevokeAdminTokenRequest{Id: id, KeepMade: keepMade, Force: force})
			if err != nil {
				return err
			}
			return reportAdminRevoked(a.stdout, a.stderr, out, id, resp.GetRevokedIds())
		},
	}
	cmd.Flags().BoolVar(&keepMade, "keep-made", false, "revoke this token alone, not the tokens made through it")
	cmd.Flags().BoolVar(&force, "force", false, "revoke even if no token would be left as long-lived as the longest valid now (a stolen token that is the longest-lived)")
	addOutputFlag(cmd, &out)
	return cmd
}

// reportAdminRevoked says what admin token revoke and admin revoke-token
// revoked: a line on stderr, and with -o json an object on stdout.
func reportAdminRevoked(stdout, stderr io.Writer, out outputFormat, id string, revoked []string) error {
	made := revoked[min(1, len(revoked)):]
	if len(made) > 0 {
		fmt.Fprintf(stderr, "administrator token %s revoked, with the %d made through it: %s\n", id, len(made), strings.Join(made, ", "))
	} else {
		fmt.Fprintf(stderr, "administrator token %s revoked\n", id)
	}
	if out == "json" {
		return writeJSON(stdout, struct {
			ID         string   `json:"id"`
			Revoked    bool     `json:"revoked"`
			RevokedIDs []string `json:"revoked_ids"`
		}{id, true, revoked})
	}
	return nil
}
