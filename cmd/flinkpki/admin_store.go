// Admin commands that open the store themselves, and how they open it: a
// stopped server's bbolt file or an HA installation's etcd store, with the
// key-encryption key (bootstrap, list-tokens, revoke-token, rotate-kek,
// migrate). admin.go holds the group and the online backup and restore.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/internal/atomicfile"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/bolt"
	etcdstore "github.com/flinkpki/flinkpki/store/etcd"
	"github.com/flinkpki/flinkpki/token"
)

// storeRefusal words store.Check's (or Open's) refusals of the store at
// where for an offline command, on one line: no store there (noStore says
// what to check) or a key that does not open it. Other errors pass through.
func storeRefusal(err error, where, kekFile, noStore string) error {
	switch {
	case errors.Is(err, store.ErrNoStore):
		return fmt.Errorf("%s holds no flinkpki store: %s; nothing was changed", where, noStore)
	case errors.Is(err, store.ErrWrongKEK):
		return reworded{fmt.Sprintf("the key-encryption key %s does not open %s: pass the key its server runs with; nothing was changed", kekFile, where), err}
	}
	return err
}

// etcdFlags are the flags that name an HA installation's etcd store.
type etcdFlags struct {
	endpoints                 []string
	prefix                    string
	caFile, certFile, keyFile string
}

func (e *etcdFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringSliceVar(&e.endpoints, "etcd-endpoints", nil, "etcd client URLs, comma-separated: the store of an HA installation instead of --data-dir")
	e.registerConn(cmd)
}

// registerConn registers the prefix and TLS flags alone, for commands that
// name the endpoints another way (admin migrate's --from and --to).
func (e *etcdFlags) registerConn(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&e.prefix, "etcd-prefix", etcdstore.DefaultPrefix, "etcd key prefix of the installation")
	f.StringVar(&e.caFile, "etcd-ca-file", "", "CA of etcd's serving certificates")
	f.StringVar(&e.certFile, "etcd-cert-file", "", "client certificate for etcd")
	f.StringVar(&e.keyFile, "etcd-key-file", "", "client key for etcd")
}

// openStoreAt opens the store an admin command names: a stopped server's
// bbolt file under dataDir (its file lock refuses a running server), or,
// when e names endpoints, an HA installation's etcd store, whose replicas
// may keep running. The key-encryption key is in kekFile (or
// FLINKPKI_KEK_FILE). It returns the store and where it is, for messages.
// An etcd prefix no server has opened is refused, not initialised: a typo
// must not start a new store. With rotation it also opens a store whose
// key-encryption key rotation was interrupted (store.OpenForKEKRotation),
// and refuses an etcd store that a running replica still uses.
func openStoreAt(ctx context.Context, dataDir string, e *etcdFlags, kekFile string, rotation bool) (*store.Store, string, error) {
	onEtcd := e != nil && len(e.endpoints) > 0
	where, noStore := filepath.Join(dataDir, "flinkpki.db"), ""
	switch {
	case onEtcd && rotation:
		where, noStore = "etcd "+strings.Join(e.endpoints, ",")+e.prefix, "check --etcd-prefix"
	case onEtcd:
		where, noStore = "etcd "+strings.Join(e.endpoints, ",")+e.prefix, "start the servers first, or check --etcd-prefix"
	default:
		if _, err := os.Stat(where); errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("no store at %s: pass the server's --data-dir, or start flinkpki serve once to create it", where)
		} else if err != nil {
			return nil, "", fmt.Errorf("no store at %s: %w", where, err)
		}
	}
	kekFile = kekFileOrEnv(kekFile)
	seal, err := sealerFromFile(kekFile)
	if err != nil {
		return nil, "", err
	}
	var b store.Backend
	if onEtcd {
		tlsCfg, err := etcdstore.TLSConfig(e.caFile, e.certFile, e.keyFile)
		if err != nil {
			return nil, "", err
		}
		eb, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: e.endpoints, Prefix: e.prefix, TLS: tlsCfg})
		if err != nil {
			return nil, "", err
		}
		if rotation {
			if n, err := eb.Campaigners(ctx); err != nil || n > 0 {
				eb.Close()
				if err != nil {
					return nil, "", err
				}
				return nil, "", fmt.Errorf("%d flinkpki server(s) still use %s (their election keys are live): scale every replica to zero first; nothing was changed", n, where)
			}
		}
		b = eb
	} else {
		bb, err := bolt.Open(where, bolt.Options{})
		if err != nil {
			return nil, "", err // names the lock ("stop it first") or the corruption
		}
		b = bb
	}
	var st *store.Store
	switch {
	case rotation:
		st, err = store.OpenForKEKRotation(ctx, b, seal)
	case onEtcd:
		if err = store.Check(ctx, b, seal); err == nil {
			st, err = store.Open(ctx, b, seal)
		}
	default:
		st, err = store.Open(ctx, b, seal)
	}
	if err != nil {
		b.Close()
		return nil, "", storeRefusal(err, where, kekFile, noStore)
	}
	return st, where, nil
}

// oneStore refuses a command that names a bbolt and an etcd store at once.
func oneStore(cmd *cobra.Command, e *etcdFlags) error {
	if len(e.endpoints) > 0 && cmd.Flags().Changed("data-dir") {
		return usagef("--data-dir and --etcd-endpoints name two stores: give one")
	}
	return nil
}

// openAdminStore opens the store an admin command names (openStoreAt).
func openAdminStore(cmd *cobra.Command, dataDir, kekFile string, etcd *etcdFlags) (*store.Store, error) {
	if err := oneStore(cmd, etcd); err != nil {
		return nil, err
	}
	st, _, err := openStoreAt(cmd.Context(), dataDir, etcd, kekFile, false)
	return st, err
}

// withAdminAuthority runs fn on an Authority over the store an admin
// command names (openAdminStore), and closes the store after.
func withAdminAuthority(cmd *cobra.Command, dataDir, kekFile string, etcd *etcdFlags, fn func(*authority.Authority) error) error {
	st, err := openAdminStore(cmd, dataDir, kekFile, etcd)
	if err != nil {
		return err
	}
	defer st.Close()
	auth, err := authority.New(authority.Config{Store: st})
	if err != nil {
		return err
	}
	return fn(auth)
}

// addStoreFlags registers the flags openAdminStore reads.
func addStoreFlags(cmd *cobra.Command, dataDir, kekFile *string, etcd *etcdFlags) {
	cmd.Flags().StringVar(dataDir, "data-dir", "./flinkpki-data", "data directory of the stopped server")
	cmd.Flags().StringVar(kekFile, "kek-file", "", "the store's key-encryption key (env FLINKPKI_KEK_FILE)")
	etcd.register(cmd)
}

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

// shellLine is args as a line a POSIX shell splits back into them.
func shellLine(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(a)
	}
	return strings.Join(quoted, " ")
}

// shellQuote quotes s for a POSIX shell when it holds anything but
// characters that need no quoting.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:,=@%+", r))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func newAdminRotateKEKCmd() *cobra.Command {
	var dataDir, kekFile, newKEKFile string
	var etcd etcdFlags
	var out outputFormat
	cmd := &cobra.Command{
		Use:   "rotate-kek (--data-dir DIR | --etcd-endpoints URLS) --kek-file OLD --new-kek-file NEW",
		Short: "Re-encrypt every CA key under a new key-encryption key, with the servers stopped",
		Long: `Re-encrypt every CA private key (and the serving CA's) under a new key-encryption
key, while the servers are stopped, and audit it (kek.rotate). Afterwards
start the servers with --kek-file NEW; the old key no longer opens the store.

A stopped server's bbolt store (--data-dir) is rotated in one transaction, on
a copy of the database that then replaces it (it needs twice the database's
size free beside it), so that no page of the file keeps a key under the old
KEK: a failure changes nothing. On etcd, the rotation then compacts etcd's
history (etcd-wide) and defragments every member, for the same reason.
Backups and etcd snapshots taken before (and the etcd members' write-ahead
logs, until newer writes push the old ones out) still open with the old key:
destroy them, or keep the old key as safe as they are. Run again on a store
already rotated, it changes nothing on bbolt and drops etcd's history again.

An HA installation's etcd store (--etcd-endpoints,
every replica scaled to zero first: a running replica is refused) holds more
CA keys than one etcd transaction may write, so they are re-encrypted a
hundred at a time, with the progress on stderr. Until the last transaction,
servers refuse the store; if the run is interrupted, run the same command
again with the same two keys to finish it.`,
		Example: `  flinkpki admin rotate-kek --data-dir /var/lib/flinkpki --kek-file kek --new-kek-file kek.new
  kubectl -n flinkpki scale deployment/flinkpki --replicas=0
  flinkpki admin rotate-kek --etcd-endpoints https://etcd-0:2379 --etcd-ca-file ca.crt \
      --etcd-cert-file tls.crt --etcd-key-file tls.key --kek-file kek --new-kek-file kek.new`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if newKEKFile == "" {
				return usagef("--new-kek-file is required")
			}
			raw, err := os.ReadFile(newKEKFile)
			if err != nil {
				return fmt.Errorf("read new key-encryption key: %w", err)
			}
			kek, err := store.ParseKEK(raw)
			if err != nil {
				return err
			}
			next, err := store.NewSealer(kek, nil)
			if err != nil {
				return err
			}
			if err := oneStore(cmd, &etcd); err != nil {
				return err
			}
			st, where, err := openStoreAt(cmd.Context(), dataDir, &etcd, kekFile, true)
			if errors.Is(err, store.ErrWrongKEK) {
				// A run that finished before it could say so (killed after
				// its commit): the store is under the new key already.
				// Opened as for a rotation, like the first: on etcd, every
				// replica must still be stopped for the history's drop.
				done, _, derr := openStoreAt(cmd.Context(), dataDir, &etcd, newKEKFile, true)
				if derr == nil {
					defer done.Close()
					return finishedRotation(cmd, done, next, newKEKFile, out)
				}
			}
			if err != nil {
				return err
			}
			defer st.Close()
			stderr := cmd.ErrOrStderr()
			// Progress only for a rotation that takes a while (etcd, many
			// keys); the result line says the count anyway.
			last := time.Now()
			progress := func(done int) {
				if now := time.Now(); now.Sub(last) >= time.Second {
					fmt.Fprintf(stderr, "re-encrypted %d CA keys\n", done)
					last = now
				}
			}
			audit := &store.AuditEntry{Time: time.Now().UTC(), Actor: authority.Actor{Kind: authority.ActorSystem, ID: "admin-cli"}.String(), Action: "kek.rotate", Outcome: "ok"}
			if len(etcd.endpoints) == 0 {
				// The rotation works on a copy of the file and stops only
				// between its steps: say so at once, rather than seem to
				// ignore Ctrl-C while a large store is copied.
				rotated := make(chan struct{})
				defer close(rotated)
				go func() {
					select {
					case <-cmd.Context().Done():
						fmt.Fprintf(stderr, "interrupt noted: rotate-kek stops at its next safe point, with the store unchanged, or finishes if the re-keyed copy is already replacing it\n")
					case <-rotated:
					}
				}()
			}
			n, err := st.RotateKEK(cmd.Context(), next, store.RotateKEKOptions{Progress: progress, Audit: audit})
			switch {
			case errors.Is(err, store.ErrReplaced):
				return fmt.Errorf("rotate key-encryption key of %s: %w: the store is under the new key; start the servers with --kek-file %s", where, err, newKEKFile)
			case errors.Is(err, store.ErrKEKRotation):
				return fmt.Errorf("rotate key-encryption key of %s: %w; servers refuse the store until this command, run again with the same --kek-file and --new-kek-file, finishes it", where, err)
			case err != nil && len(etcd.endpoints) > 0:
				return fmt.Errorf("rotate key-encryption key of %s (the store is under the old key): %w", where, err)
			case err != nil:
				return fmt.Errorf("rotate key-encryption key of %s (nothing was changed): %w", where, err)
			}
			res := map[string]any{"reencrypted": n, "kek_id": next.ID()}
			if _, err := st.DropHistory(cmd.Context()); err != nil {
				// The rotation stands; what is left is the old ciphertexts
				// in etcd's files, for whoever holds the old key.
				warning := fmt.Sprintf("the CA keys are under the new key, but %v: defragment each member (etcdctl defrag --endpoints URL) before the old key is let go", err)
				res["warning"] = warning
				fmt.Fprintf(stderr, "warning: %s\n", oneLine(warning))
			}
			// For people on stderr, with -o json too: the next step.
			fmt.Fprintf(stderr, "re-encrypted %d CA keys; start the servers with --kek-file %s\n", n, newKEKFile)
			if out == "json" {
				return writeJSON(cmd.OutOrStdout(), res)
			}
			return nil
		},
	}
	addStoreFlags(cmd, &dataDir, &kekFile, &etcd)
	cmd.Flags().StringVar(&newKEKFile, "new-kek-file", "", "the new key-encryption key (32 random bytes)")
	addOutputFlag(cmd, &out)
	return cmd
}

// finishedRotation answers a rotate-kek run again on a store already under
// the new key (an earlier run finished, or was killed after its last
// commit): exit 0, as a run that finishes the rotation. A bbolt store is
// done: the rotation replaced the file whole. etcd still holds the old
// key's values in its history when the earlier run died before it dropped
// it, so that is done again (it is harmless to repeat).
func finishedRotation(cmd *cobra.Command, st *store.Store, next *store.Sealer, newKEKFile string, out outputFormat) error {
	already := fmt.Sprintf("the store is under --new-kek-file %s already (an earlier rotate-kek finished)", newKEKFile)
	kept, err := st.DropHistory(cmd.Context())
	if err != nil {
		return fmt.Errorf("%s, but etcd's history, which may hold the CA keys under the old key, was not dropped: %w; run this again, or defragment each member (etcdctl defrag --endpoints URL)", already, err)
	}
	done := "nothing was changed"
	if kept {
		done = "etcd's history is compacted and its members defragmented again"
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s; %s: start the servers with --kek-file %s\n", already, done, newKEKFile)
	if out == "json" {
		return writeJSON(cmd.OutOrStdout(), map[string]any{"reencrypted": 0, "kek_id": next.ID()})
	}
	return nil
}

// openMigrationEnd opens "bolt:PATH" or "etcd:URL,URL" for admin migrate.
// A bbolt source is opened read-only, so a mistyped path is refused instead
// of created.
func openMigrationEnd(ctx context.Context, spec, prefix string, tlsCfg *etcdstore.Config, source bool) (store.Backend, error) {
	flag := "to"
	if source {
		flag = "from"
	}
	kind, rest, ok := strings.Cut(spec, ":")
	if !ok || rest == "" {
		return nil, usagef("--%s %q: want bolt:PATH or etcd:URL[,URL...]", flag, spec)
	}
	switch kind {
	case "bolt":
		if !source {
			return openBoltTarget(rest)
		}
		if _, err := os.Stat(rest); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("migration source %s does not exist: check --from (a bbolt source is the flinkpki.db of a stopped server)", rest)
		}
		b, err := bolt.Open(rest, bolt.Options{ReadOnly: true})
		if err != nil {
			return nil, fmt.Errorf("migration source: %w", err)
		}
		return b, nil
	case "etcd":
		cfg := *tlsCfg
		cfg.Endpoints = strings.Split(rest, ",")
		cfg.Prefix = prefix
		eb, err := etcdstore.Open(ctx, cfg)
		if err != nil {
			return nil, err
		}
		// A bbolt file is locked by the server that uses it; on etcd the
		// servers show by their election keys. What a server writes after
		// the copy would be lost, and one on the target would write into
		// the copy.
		if n, err := eb.Campaigners(ctx); err != nil || n > 0 {
			eb.Close()
			if err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%d flinkpki server(s) still use the migration %s %s (their election keys are live): scale every replica to zero first; nothing was copied", n, map[bool]string{true: "source", false: "target"}[source], spec)
		}
		return eb, nil
	}
	return nil, usagef("--%s %q: the store kind must be bolt or etcd", flag, spec)
}

// sameMigrationEnds refuses --from and --to that name one store: one bbolt
// file (by any path to it), or the same etcd endpoints (--etcd-prefix is
// shared by both). The copy would go into its own source, which the lock
// of the source (held by this very command) or the target's emptiness
// check would refuse with a sentence about something else.
func sameMigrationEnds(from, to string) error {
	fromKind, fromRest, _ := strings.Cut(from, ":")
	toKind, toRest, _ := strings.Cut(to, ":")
	same := false
	switch {
	case fromKind != toKind || fromRest == "" || toRest == "":
	case fromKind == "bolt":
		a, aerr := os.Stat(fromRest)
		b, berr := os.Stat(toRest)
		same = aerr == nil && berr == nil && os.SameFile(a, b)
	case fromKind == "etcd":
		a, b := strings.Split(fromRest, ","), strings.Split(toRest, ",")
		slices.Sort(a)
		slices.Sort(b)
		same = slices.Equal(a, b)
	}
	if same {
		return usagef("--from %s and --to %s are the same store: migrate copies into another, empty one; name a new file or another etcd for --to", from, to)
	}
	return nil
}

// boltTarget is a new bbolt migration target: the copy is built under a
// temporary name beside its path and linked into place by Close only once
// Keep said it verified, so a migration that fails or is interrupted
// leaves no file at the path (nor a folder it made for it), and its
// re-run does not find a half-filled target.
type boltTarget struct {
	*bolt.Backend
	path, tmp string
	made      []string // folders made for the target, outermost first (atomicfile.MkdirAll)
	keep      bool
	closed    bool
}

// openBoltTarget opens the bbolt target at path: an existing file as it
// is (the copy then refuses it unless it is an empty store), or a new one
// built as boltTarget says, in path's folder, made (0700) if missing.
func openBoltTarget(path string) (store.Backend, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().IsRegular() && fi.Size() == 0 {
			return nil, fmt.Errorf("migration target %s is an empty file, not a store: remove it (migrate creates the target), or name another --to; nothing was copied", path)
		}
		b, err := bolt.Open(path, bolt.Options{})
		if errors.Is(err, store.ErrCorrupt) {
			// A file that is no store is not restored from a backup here:
			// it is the wrong target.
			msg := strings.Replace(err.Error(), bolt.RestoreAdvice, "it is no store to migrate into: name another --to (migrate creates a new one)", 1)
			return nil, reworded{"migration target: " + msg, err}
		}
		return b, err
	}
	dir := filepath.Dir(path)
	made, err := atomicfile.MkdirAll(dir, 0o700)
	if err != nil {
		return nil, fmt.Errorf("migration target: create its folder: %w", err)
	}
	t := &boltTarget{path: path, made: made}
	// What an interrupted run left (bolt.Open of a new store leaves it).
	atomicfile.RemoveUnused(filepath.Join(dir, bolt.MigratingPattern))
	f, err := os.CreateTemp(dir, bolt.MigratingPattern)
	if err == nil {
		// A unique name, for bolt.Open to create a new store at.
		t.tmp = f.Name()
		f.Close()
		if err = os.Remove(t.tmp); err == nil {
			t.Backend, err = bolt.Open(t.tmp, bolt.Options{})
		}
	}
	if err != nil {
		t.discard()
		return nil, fmt.Errorf("migration target: %w", err)
	}
	return t, nil
}

// Close closes the copy and links it into place when it was kept, or
// removes it.
func (t *boltTarget) Close() error {
	if t.closed {
		return nil
	}
	t.closed = true
	err := t.Backend.Close()
	if !t.keep || err != nil {
		t.discard()
		return err
	}
	if err := os.Link(t.tmp, t.path); err != nil {
		t.discard()
		return fmt.Errorf("migration target: put the verified copy at %s: %w", t.path, err)
	}
	// The temporary name goes before the folder is synced, so that a
	// crash leaves the store under one name.
	os.Remove(t.tmp)
	return atomicfile.SyncDir(filepath.Dir(t.path))
}

// discard removes the unfinished copy and the folders made for it.
func (t *boltTarget) discard() {
	if t.tmp != "" {
		os.Remove(t.tmp)
	}
	atomicfile.RemoveDirs(t.made)
}

// copyProgress reports a migration's progress on w once it has run for a
// second (a small store copies in less, without a word): then a line as
// each bucket starts, and at most one a second while a large one is copied.
func copyProgress(w io.Writer, now func() time.Time) func(bucket string, keys int) {
	start := now()
	var last time.Time
	var current string
	return func(bucket string, keys int) {
		t := now()
		if t.Sub(start) >= time.Second && (bucket != current || t.Sub(last) >= time.Second) {
			fmt.Fprintf(w, "copying %s: %d keys\n", bucket, keys)
			last = t
		}
		current = bucket
	}
}

// checkMigrationSource runs store.Open's schema and key-encryption key
// checks on the source, writing nothing, so a wrong KEK or an empty source
// is refused before the target is opened.
func checkMigrationSource(ctx context.Context, src store.Backend, seal *store.Sealer, from, kekFile string) error {
	if err := store.Check(ctx, src, seal); err != nil {
		if errors.Is(err, store.ErrMigration) {
			// Its refusal's advice (this very command again) is for a
			// target: as a source, it is another migration's to finish.
			return fmt.Errorf("the migration source %s is itself the target of a migration that did not finish: finish that one first (flinkpki admin migrate with its --from and this store as --to), or copy from its own source", from)
		}
		return storeRefusal(err, "the migration source "+from, kekFile, "no server has ever opened it; check --from and --etcd-prefix")
	}
	return nil
}

func newAdminMigrateCmd() *cobra.Command {
	var from, to, kekFile string
	var etcd etcdFlags
	var out outputFormat
	cmd := &cobra.Command{
		Use:   "migrate --from bolt:PATH --to etcd:ENDPOINTS --kek-file FILE",
		Short: "Copy the whole store between bbolt and etcd, offline, and verify it",
		Long: `Copy every record from one store to another while no server uses either, then
verify: every bucket's count and every value must match, and the audit chain
must verify on the target. The source is checked with the key-encryption key
before anything is copied, and the target must be empty. The target is marked
before the copy starts and unmarked once it verified: servers and admin
commands refuse a marked store, and a migration that was interrupted (killed)
is finished by running the same command again, which clears the partial copy
and copies again. Works in both directions.`,
		Example: `  flinkpki admin migrate --from bolt:/var/lib/flinkpki/flinkpki.db --to etcd:https://etcd-0:2379,https://etcd-1:2379 \
    --kek-file /etc/flinkpki/kek --etcd-ca-file ca.crt --etcd-cert-file client.crt --etcd-key-file client.key
  flinkpki admin migrate --from bolt:old/flinkpki.db --to bolt:new/flinkpki.db --kek-file kek -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if from == "" || to == "" {
				return usagef("--from and --to are required")
			}
			if err := sameMigrationEnds(from, to); err != nil {
				return err
			}
			seal, err := sealerFromFile(kekFile)
			if err != nil {
				return err
			}
			tlsCfg, err := etcdstore.TLSConfig(etcd.caFile, etcd.certFile, etcd.keyFile)
			if err != nil {
				return err
			}
			base := &etcdstore.Config{TLS: tlsCfg}
			src, err := openMigrationEnd(ctx, from, etcd.prefix, base, true)
			if err != nil {
				return err
			}
			defer src.Close()
			if err := checkMigrationSource(ctx, src, seal, from, kekFileOrEnv(kekFile)); err != nil {
				return err
			}
			dst, err := openMigrationEnd(ctx, to, etcd.prefix, base, false)
			if err != nil {
				return err
			}
			defer dst.Close()
			counts, err := store.Copy(ctx, src, dst, store.CopyOptions{
				From:     from,
				Progress: copyProgress(cmd.ErrOrStderr(), time.Now),
				Restarted: func(prevFrom string) {
					fmt.Fprintf(cmd.ErrOrStderr(), "the target held the partial copy of an interrupted migration%s: cleared it, copying again\n", fromClause(prevFrom))
				},
			})
			if path, ok := strings.CutPrefix(to, "bolt:"); ok && errors.Is(err, store.ErrExists) {
				err = reworded{strings.Replace(err.Error(), store.NotEmptyAdvice, path+" is a store already: name a file that does not exist yet for --to (migrate creates it); nothing was copied", 1), err}
			}
			if err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			// Past the copy, a refusal empties the target again (a new
			// bbolt one, built aside, is discarded on Close instead).
			_, newBolt := dst.(*boltTarget)
			refuse := func(err error) error {
				if newBolt {
					return err
				}
				return store.ClearAfter(ctx, dst, err)
			}
			// The copy carries the migration marker, which every other
			// opener refuses, until it verified.
			st, err := store.OpenMigrationTarget(ctx, dst, seal)
			if err != nil {
				return refuse(fmt.Errorf("open the target with the key-encryption key: %w", err))
			}
			var rep *authority.AuditReport
			if err := st.View(ctx, func(tx *store.Txn) error {
				var err error
				rep, err = authority.VerifyChain(tx)
				return err
			}); err != nil {
				return refuse(err)
			}
			if rep.FirstBad != 0 {
				return refuse(fmt.Errorf("the copy's audit chain does not verify (nor does the source's): %s", rep.Message))
			}
			if err := store.EndMigration(ctx, dst); err != nil {
				return refuse(fmt.Errorf("the copy verified, but removing its migration marker failed: %w", err))
			}
			if t, ok := dst.(*boltTarget); ok {
				t.keep = true
				if err := dst.Close(); err != nil {
					return err
				}
			}
			if out == "json" {
				if err := writeJSON(cmd.OutOrStdout(), struct {
					From         string         `json:"from"`
					To           string         `json:"to"`
					Records      map[string]int `json:"records"`
					AuditEntries uint64         `json:"audit_entries"`
					Verified     bool           `json:"verified"`
				}{from, to, counts, rep.Entries, true}); err != nil {
					return err
				}
			} else {
				names := make([]string, 0, len(counts))
				for b := range counts {
					names = append(names, b)
				}
				sort.Strings(names)
				for _, b := range names {
					fmt.Fprintf(cmd.OutOrStdout(), "%-14s %d\n", b, counts[b])
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "copied and verified %s -> %s; %s\n", from, to, rep.Message)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "source store: bolt:PATH or etcd:URL[,URL...]")
	f.StringVar(&to, "to", "", "target store (empty, or an interrupted migration's partial copy): bolt:PATH or etcd:URL[,URL...]")
	f.StringVar(&kekFile, "kek-file", "", "the store's key-encryption key, checked on the source before copying (env FLINKPKI_KEK_FILE)")
	etcd.registerConn(cmd)
	addOutputFlag(cmd, &out)
	return cmd
}

// fromClause is " from SOURCE" for a migration marker that names its
// source, and "" for one that does not.
func fromClause(from string) string {
	if from == "" {
		return ""
	}
	return " from " + from
}

// kekFileOrEnv is --kek-file, or FLINKPKI_KEK_FILE when it is not given.
func kekFileOrEnv(kekFile string) string {
	if kekFile == "" {
		return os.Getenv("FLINKPKI_KEK_FILE")
	}
	return kekFile
}

func sealerFromFile(kekFile string) (*store.Sealer, error) {
	kekFile = kekFileOrEnv(kekFile)
	if kekFile == "" {
		return nil, usagef("--kek-file is required (or set FLINKPKI_KEK_FILE)")
	}
	raw, err := os.ReadFile(kekFile)
	if err != nil {
		return nil, fmt.Errorf("read key-encryption key: %w", err)
	}
	kek, err := store.ParseKEK(raw)
	if err != nil {
		return nil, err
	}
	return store.NewSealer(kek, nil)
}
