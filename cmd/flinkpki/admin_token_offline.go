// Administrator tokens in a stopped server's store, or an HA installation's
// etcd store, written without the server (admin bootstrap, list-tokens,
// revoke-token). admin_token.go holds the online forms, through the running
// server.

package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/store"
	etcdstore "github.com/flinkpki/flinkpki/store/etcd"
	"github.com/flinkpki/flinkpki/token"
)

func newAdminListTokensCmd() *cobra.Command {
	var dataDir, kekFile string
	var etcd etcdFlags
	var out outputFormat
	cmd := &cobra.Command{
		Use:   "list-tokens (--data-dir DIR | --etcd-endpoints URLS) --kek-file FILE",
		Short: "List the administrator tokens in a stopped server's store",
		Long: `List the administrator tokens in the store. Only hashes of their secrets are
stored, so this shows each token's ID (the part of the token between its
prefix and its secret), its name, creation and expiry time and who made it:
what admin revoke-token needs. With the server running, admin token list
asks it instead.

With -o json the answer is a bare array of rows (as since the first release),
where admin token list answers {"tokens": [...]}; each row has the fields of
that listing's rows (create_time, expire_time, ...) and, as before, created
and expires.`,
		Example: `  flinkpki admin list-tokens --data-dir /var/lib/flinkpki --kek-file /etc/flinkpki/kek
  flinkpki admin list-tokens --etcd-endpoints https://etcd-0:2379 --etcd-ca-file ca.crt \
      --etcd-cert-file tls.crt --etcd-key-file tls.key --kek-file kek -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var toks []authority.AdminTokenInfo
			err := withAdminAuthority(cmd, dataDir, kekFile, &etcd, func(auth *authority.Authority) (err error) {
				toks, err = auth.AdminTokens(cmd.Context())
				return err
			})
			if err != nil {
				return err
			}
			// A bare array with "created", as since the first release;
			// admin token list answers an object like the other listings.
			// Each row also carries that listing's create_time and
			// expire_time, so one script reads the rows of both.
			type tokenJSON struct {
				adminTokenRow
				Created    string `json:"created"`
				Expires    string `json:"expires"`
				CreateTime string `json:"create_time"`
				ExpireTime string `json:"expire_time"`
			}
			rows, table := []tokenJSON{}, []adminTokenRow{}
			for _, t := range toks {
				r := adminTokenRowOf(t.ID, t.Name, t.CreatedBy, t.State, t.RevokedWith, t.MadeWith, t.Created, t.Expires, t.Revoked)
				table = append(table, r)
				rows = append(rows, tokenJSON{r, r.Created, r.Expires, r.Created, r.Expires})
			}
			if out == "json" {
				return writeJSON(cmd.OutOrStdout(), rows)
			}
			return printAdminTokens(cmd.OutOrStdout(), table)
		},
	}
	addStoreFlags(cmd, &dataDir, &kekFile, &etcd)
	addOutputFlag(cmd, &out)
	return cmd
}

func newAdminRevokeTokenCmd() *cobra.Command {
	var dataDir, kekFile string
	var etcd etcdFlags
	var out outputFormat
	var keepMade bool
	cmd := &cobra.Command{
		Use:   "revoke-token ID (--data-dir DIR | --etcd-endpoints URLS) --kek-file FILE",
		Short: "Revoke an administrator token, so it opens nothing from now on",
		Long: `Revoke an administrator token in the store, with every token made through it
unless --keep-made, and audit it (admin_token.revoke). Its record stays,
without its hash, as the tombstone the tokens made through it are judged by.
No check of what is left is made here. On etcd the replicas refuse the
tokens from their next request on; a bbolt store is
changed while its server is stopped (with the server running, admin token
revoke does it online). IDs come from admin list-tokens, or from the audit
trail of the token's creation.
The leaked token itself, or its redacted form (fpa_<ID>_…), names it too:
only its ID is used, and the secret is never printed or audited.`,
		Example: `  flinkpki admin list-tokens --data-dir /var/lib/flinkpki --kek-file /etc/flinkpki/kek
  flinkpki admin revoke-token mv4qmyah6uefiqnnhstwfdajdy --data-dir /var/lib/flinkpki --kek-file /etc/flinkpki/kek
  flinkpki admin revoke-token mv4qmyah6uefiqnnhstwfdajdy --data-dir /var/lib/flinkpki --kek-file /etc/flinkpki/kek -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := tokenID(args[0], token.KindAdmin)
			if err != nil {
				return err
			}
			var revoked []string
			err = withAdminAuthority(cmd, dataDir, kekFile, &etcd, func(auth *authority.Authority) (err error) {
				revoked, err = auth.RevokeAdminToken(cmd.Context(), authority.Actor{Kind: authority.ActorSystem, ID: "admin-cli"}, id, authority.RevokeAdminOptions{KeepMade: keepMade})
				return err
			})
			if err != nil {
				return err
			}
			return reportAdminRevoked(cmd.OutOrStdout(), cmd.ErrOrStderr(), out, id, revoked)
		},
	}
	addStoreFlags(cmd, &dataDir, &kekFile, &etcd)
	cmd.Flags().BoolVar(&keepMade, "keep-made", false, "revoke this token alone, not the tokens made through it")
	addOutputFlag(cmd, &out)
	return cmd
}

func newAdminBootstrapCmd() *cobra.Command {
	var dataDir, kekFile, name string
	ttl := durationFlag{min: authority.MinAdminTokenTTL, max: authority.MaxAdminTokenTTL, orZero: true}
	var etcd etcdFlags
	var out outputFormat
	cmd := &cobra.Command{
		Use:   "bootstrap (--data-dir DIR | --etcd-endpoints URLS) --kek-file FILE",
		Short: "Create an administrator token directly in the store",
		Long: `Create an administrator token directly in the store and print it on stdout (only
its hash is stored). This is how production installations get their first
administrator: the server never writes token files outside --dev. With -o json
stdout is one object holding the token, its ID and its name instead. Further
tokens are made online with admin token create.

With --data-dir it opens a stopped server's bbolt store (the running server
holds its lock). With --etcd-endpoints it opens an HA installation's etcd
store, whose replicas may keep running; they must have started once, so that
the store exists.`,
		Example: `  flinkpki admin bootstrap --data-dir /var/lib/flinkpki --kek-file /etc/flinkpki/kek > admin.token
  flinkpki admin bootstrap --etcd-endpoints https://etcd-0:2379,https://etcd-1:2379 --kek-file kek \
      --etcd-ca-file ca.crt --etcd-cert-file client.crt --etcd-key-file client.key > admin.token
  flinkpki admin bootstrap --data-dir /var/lib/flinkpki --kek-file /etc/flinkpki/kek -o json | jq -r .token > admin.token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reportClosedPipes()
			var tok string
			var rec *store.AdminToken
			err := withAdminAuthority(cmd, dataDir, kekFile, &etcd, func(auth *authority.Authority) (err error) {
				tok, rec, err = auth.CreateAdminToken(cmd.Context(), authority.Actor{Kind: authority.ActorSystem, ID: "bootstrap"}, name, ttl.d)
				return err
			})
			if err != nil {
				return err
			}
			expires := ""
			if !rec.Expires.IsZero() {
				expires = rec.Expires.UTC().Format(time.RFC3339)
			}
			if err := printNewToken(cmd.OutOrStdout(), out, tok, newAdminTokenJSON{tok, rec.ID, name, expires}); err != nil {
				return orphanedToken("administrator token", rec.ID, revokeTokenCommand(rec.ID, dataDir, kekFile, &etcd), err)
			}
			when := ""
			if expires != "" {
				when = ", expires " + expires + " (with every token made with it)"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "administrator token %q created%s; keep it secret (store it with mode 0600)\n", name, when)
			return nil
		},
	}
	addStoreFlags(cmd, &dataDir, &kekFile, &etcd)
	cmd.Flags().StringVar(&name, "name", "admin", "a label for the token, recorded in the audit trail")
	cmd.Flags().Var(&ttl, "ttl", "how long the token is valid, "+formatDuration(authority.MinAdminTokenTTL)+" to "+formatDuration(authority.MaxAdminTokenTTL)+"; 0 (default): no expiry")
	addOutputFlag(cmd, &out)
	return cmd
}

// revokeTokenCommand is the admin revoke-token command line that revokes
// token id in the store a bootstrap just wrote it to.
func revokeTokenCommand(id, dataDir, kekFile string, e *etcdFlags) string {
	args := []string{"flinkpki", "admin", "revoke-token", id}
	if len(e.endpoints) > 0 {
		args = append(args, "--etcd-endpoints", strings.Join(e.endpoints, ","))
		if e.prefix != etcdstore.DefaultPrefix {
			args = append(args, "--etcd-prefix", e.prefix)
		}
		for _, f := range []struct{ flag, v string }{{"--etcd-ca-file", e.caFile}, {"--etcd-cert-file", e.certFile}, {"--etcd-key-file", e.keyFile}} {
			if f.v != "" {
				args = append(args, f.flag, f.v)
			}
		}
	} else {
		args = append(args, "--data-dir", dataDir)
	}
	if kekFile != "" { // else FLINKPKI_KEK_FILE, as for bootstrap
		args = append(args, "--kek-file", kekFile)
	}
	return shellLine(args)
}
