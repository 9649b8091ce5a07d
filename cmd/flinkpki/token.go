package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/flinkpki/flinkpki/authority"
	flinkpkiv1 "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
	"github.com/flinkpki/flinkpki/token"
)

func (a *app) newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Make, list and revoke enrollment tokens (administrator)",
	}
	a.addConnFlags(cmd)
	cmd.AddCommand(a.newTokenCreateCmd(), a.newTokenListCmd(), a.newTokenRevokeCmd())
	return cmd
}

// tokenPage is how many enrollment tokens token list asks for at a time.
const tokenPage = 1000

// tokenListFlags are token list's flags.
type tokenListFlags struct {
	cluster string
	out     outputFormat
}

func (a *app) newTokenListCmd() *cobra.Command {
	var f tokenListFlags
	cmd := &cobra.Command{
		Use:   "list [--cluster NAME]",
		Short: "List the live enrollment tokens: IDs, roles, uses left, expiry",
		Long: `List the enrollment tokens that can still enroll (not expired, uses left, not
revoked with an administrator token they were made through), of one cluster or
of all, with the administrator token that made each (MADE BY; "-" for one made
offline or by an older server). The server stores only hashes of their secrets, so
this shows IDs: what token revoke needs. An ID is the part of a token between
its prefix and its secret, and the audit trail of its creation names it.`,
		Example: `  flinkpki token list --cluster orders
  flinkpki token list -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runTokenList(cmd.Context(), &f) },
	}
	cmd.Flags().StringVar(&f.cluster, "cluster", "", "only this cluster's tokens")
	addOutputFlag(cmd, &f.out)
	return cmd
}

// runTokenList fetches the live enrollment tokens, of --cluster or of all,
// page by page, and prints them.
func (a *app) runTokenList(ctx context.Context, f *tokenListFlags) error {
	if f.cluster != "" {
		if err := clusterFlag(f.cluster); err != nil {
			return err
		}
	}
	conn, err := a.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	client := flinkpkiv1.NewClusterServiceClient(conn)
	toks, err := allPages(func(page string) ([]*flinkpkiv1.EnrollmentToken, string, error) {
		resp, err := client.ListTokens(ctx, &flinkpkiv1.ListTokensRequest{Cluster: f.cluster, PageSize: tokenPage, PageToken: page})
		return resp.GetTokens(), resp.GetNextPageToken(), err
	})
	if err != nil {
		return err
	}
	type tokenJSON struct {
		ID       string `json:"id"`
		Cluster  string `json:"cluster"`
		Role     string `json:"role"`
		UsesLeft int32  `json:"uses_left"`
		Created  string `json:"create_time"`
		Expires  string `json:"expire_time"`
		// MadeWith is the administrator tokens it was made through, its
		// maker last: [] for one made offline or by an older server.
		MadeWith []string `json:"made_with"`
	}
	rows := []tokenJSON{}
	for _, t := range toks {
		rows = append(rows, tokenJSON{ID: t.GetId(), Cluster: t.GetCluster(), Role: t.GetRole(), UsesLeft: t.GetUsesLeft(),
			Created: rfc3339(t.GetCreateTime()), Expires: rfc3339(t.GetExpireTime()), MadeWith: append([]string{}, t.GetMadeWith()...)})
	}
	if f.out == "json" {
		return writeJSON(a.stdout, struct {
			Tokens []tokenJSON `json:"tokens"`
		}{rows})
	}
	w := newTable(a.stdout)
	w.row("ID", "CLUSTER", "ROLE", "USES LEFT", "CREATED", "EXPIRES", "MADE BY")
	for _, r := range rows {
		madeBy := "-"
		if len(r.MadeWith) > 0 {
			madeBy = "admin:" + r.MadeWith[len(r.MadeWith)-1]
		}
		w.row(r.ID, r.Cluster, r.Role, fmt.Sprint(r.UsesLeft), r.Created, r.Expires, madeBy)
	}
	return w.Flush()
}

func (a *app) newTokenRevokeCmd() *cobra.Command {
	var out outputFormat
	cmd := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an enrollment token, so it enrolls nothing from now on",
		Long: `Delete an enrollment token at once and audit it (token.revoke): a token that
leaked (a CI log, an image layer) stops enrolling with the next request.
Credentials it already paid for stay valid until their leaves expire; list
them with holder list, and release or rotate as needed. IDs come from token
list, or from the audit trail of the token's creation.

The leaked token itself, or its redacted form (fpe_<ID>_…), names it too:
only its ID is sent, and the secret is never printed or audited.`,
		Example: `  flinkpki token list --cluster orders
  flinkpki token revoke 7k2x9q4m1c3v5b8n6z0w2e4r6t
  flinkpki token revoke 7k2x9q4m1c3v5b8n6z0w2e4r6t -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := tokenID(args[0], token.KindEnrollment)
			if err != nil {
				return err
			}
			conn, err := a.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			resp, err := flinkpkiv1.NewClusterServiceClient(conn).RevokeToken(cmd.Context(), &flinkpkiv1.RevokeTokenRequest{Id: id})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "revoked enrollment token %s of cluster %q\n", id, resp.GetCluster())
			if out == "json" {
				return writeJSON(a.stdout, struct {
					ID      string `json:"id"`
					Cluster string `json:"cluster"`
					Revoked bool   `json:"revoked"`
				}{id, resp.GetCluster(), true})
			}
			return nil
		},
	}
	addOutputFlag(cmd, &out)
	return cmd
}

// tokenCreateFlags are token create's flags.
type tokenCreateFlags struct {
	cluster, role string
	ttl           durationFlag
	uses          int32
	out           outputFormat
}

func (a *app) newTokenCreateCmd() *cobra.Command {
	f := tokenCreateFlags{ttl: durationFlag{d: authority.DefaultTokenTTL, min: authority.MinTokenTTL, max: authority.MaxTokenTTL}}
	cmd := &cobra.Command{
		Use:   "create --cluster NAME --role ROLE",
		Short: "Make an enrollment token for one cluster and role",
		Long: `Make an enrollment token that lets init or bake obtain credentials for one
cluster and role, within its TTL and its number of uses. The token alone is
printed on stdout, so redirecting into a file just works; everything else goes
to stderr. With -o json, stdout holds an object with the token, its ID (for
token revoke), its expiry and uses instead. The server stores only its hash:
it cannot be shown again.

A use is spent when the server records an issuance. If the answer is lost on
the way back (the connection drops as the server replies), init retries, and a
one-use token is then already spent: give a token used by one process --uses 2
or more when a failed start must be able to retry, or use the Kubernetes path,
whose service-account tokens are not spent.

Like an administrator token, an enrollment token never outlives the
administrator token that made it (its expiry is cut to that one's), and
revoking any administrator token it was made through, with the tokens made
through it (the default of admin token revoke), revokes it too: token list
shows who made each (MADE BY, made_with in -o json).`,
		Example: `  flinkpki token create --cluster orders --role taskmanager > tm.token
  flinkpki token create --cluster orders --role taskmanager --ttl 1h --uses 20 > tm.token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runTokenCreate(cmd.Context(), &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.cluster, "cluster", "", "cluster the token enrolls for (required)")
	fl.StringVar(&f.role, "role", "", "role: jobmanager, taskmanager, rest-server or rest-client (required)")
	fl.Var(&f.ttl, "ttl", "how long the token is valid, 1s to "+formatDuration(authority.MaxTokenTTL))
	fl.Var(newIntFlag(&f.uses, authority.DefaultTokenUses, 1, authority.MaxTokenUses), "uses", "how many enrollments the token allows (1 to 100000)")
	addOutputFlag(cmd, &f.out)
	return cmd
}

// runTokenCreate has the server make the token and prints it alone on
// stdout; a token that could not be printed is named with the command
// that revokes it.
func (a *app) runTokenCreate(ctx context.Context, f *tokenCreateFlags) error {
	reportClosedPipes()
	if err := clusterFlag(f.cluster); err != nil {
		return err
	}
	if _, err := roleFlag(f.role); err != nil {
		return err
	}
	conn, err := a.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := flinkpkiv1.NewClusterServiceClient(conn).CreateToken(ctx, &flinkpkiv1.CreateTokenRequest{
		Cluster: f.cluster, Role: f.role, Ttl: durationpb.New(f.ttl.d), Uses: f.uses,
	})
	if err != nil {
		return err
	}
	if err := printNewToken(a.stdout, f.out, resp.GetToken(), struct {
		Token   string `json:"token"`
		ID      string `json:"id"`
		Cluster string `json:"cluster"`
		Role    string `json:"role"`
		Uses    int32  `json:"uses"`
		Expires string `json:"expire_time"`
	}{resp.GetToken(), resp.GetId(), f.cluster, f.role, resp.GetUses(), rfc3339(resp.GetExpireTime())}); err != nil {
		return orphanedToken("enrollment token", resp.GetId(), a.commandLine("token", "revoke", resp.GetId()), err)
	}
	if f.out == "json" {
		return nil
	}
	fmt.Fprintf(a.stderr, "token %s for cluster %q role %s: %d use(s), expires %s\n",
		resp.GetId(), f.cluster, f.role, resp.GetUses(), rfc3339(resp.GetExpireTime()))
	return nil
}

// tokenID reads the argument of token revoke and admin revoke-token: an ID,
// a redacted token or a whole (leaked) token, of which only the ID is used.
// It never echoes the argument, and refuses a token of the other kind with
// the command that revokes it.
func tokenID(arg string, want token.Kind) (string, error) {
	kind, id, err := token.ParseID(arg)
	if err != nil {
		return "", usageError{err}
	}
	switch {
	case kind == token.KindAdmin && want != token.KindAdmin:
		return "", usagef("that is an administrator token (fpa_): revoke it with flinkpki admin token revoke %s", id)
	case kind == token.KindEnrollment && want != token.KindEnrollment:
		return "", usagef("that is an enrollment token (fpe_): revoke it with flinkpki token revoke %s", id)
	}
	return id, nil
}

// printNewToken prints a token just made on standard output w: alone on
// its line, so that "> token-file" just works, or as asJSON for -o json.
func printNewToken(w io.Writer, out outputFormat, tok string, asJSON any) error {
	if out == "json" {
		return writeJSON(w, asJSON)
	}
	_, err := fmt.Fprintln(w, tok)
	return err
}

// newAdminTokenJSON is -o json of a command that made an administrator
// token.
type newAdminTokenJSON struct {
	Token   string `json:"token"`
	ID      string `json:"id"`
	Name    string `json:"name"`
	Expires string `json:"expire_time"`
}

// orphanedToken is the error of a command that made a token but could not
// print it (a full volume behind "> token-file", a closed pipe): the token
// is valid and nobody holds it, so it names the token and the command
// that revokes it.
func orphanedToken(kind, id, revoke string, err error) error {
	return fmt.Errorf("%s %s was created, but it could not be written to standard output (%w): nobody holds it; revoke it with %s, and run again", kind, id, err, revoke)
}
