// How the admin commands that open the store themselves open it: a stopped
// server's bbolt file or an HA installation's etcd store, with the
// key-encryption key. The commands are in admin_token_offline.go
// (bootstrap, list-tokens, revoke-token), admin_rotatekek.go,
// admin_migrate.go and admin_servingca.go; admin.go holds the group.

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/bolt"
	etcdstore "github.com/flinkpki/flinkpki/store/etcd"
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
	where, noStore, err := storeLocation(dataDir, e, onEtcd, rotation)
	if err != nil {
		return nil, "", err
	}
	kekFile = kekFileOrEnv(kekFile)
	seal, err := sealerFromFile(kekFile)
	if err != nil {
		return nil, "", err
	}
	b, err := openStoreBackend(ctx, where, e, onEtcd, rotation)
	if err != nil {
		return nil, "", err
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

// storeLocation names the store openStoreAt opens, for its messages, with
// what to check when it holds no store (noStore). A bbolt file must exist
// already: opening a missing one would create a new, empty store.
func storeLocation(dataDir string, e *etcdFlags, onEtcd, rotation bool) (where, noStore string, err error) {
	where, noStore = filepath.Join(dataDir, dbFileName), ""
	switch {
	case onEtcd && rotation:
		where, noStore = etcdWhere(e.endpoints, e.prefix), "check --etcd-prefix"
	case onEtcd:
		where, noStore = etcdWhere(e.endpoints, e.prefix), "start the servers first, or check --etcd-prefix"
	default:
		if _, err := os.Stat(where); errors.Is(err, fs.ErrNotExist) {
			return "", "", fmt.Errorf("no store at %s: pass the server's --data-dir, or start flinkpki serve once to create it", where)
		} else if err != nil {
			return "", "", fmt.Errorf("no store at %s: %w", where, err)
		}
	}
	return where, noStore, nil
}

// openStoreBackend opens the backend at where: the bbolt file, whose lock
// refuses a running server, or the etcd store e names. etcd holds no such
// lock, so for a rotation, which wants every replica stopped, a replica
// shows by its live election key instead.
func openStoreBackend(ctx context.Context, where string, e *etcdFlags, onEtcd, rotation bool) (store.Backend, error) {
	if !onEtcd {
		bb, err := bolt.Open(where, bolt.Options{})
		if err != nil {
			return nil, err // names the lock ("stop it first") or the corruption
		}
		return bb, nil
	}
	tlsCfg, err := etcdstore.TLSConfig(e.caFile, e.certFile, e.keyFile)
	if err != nil {
		return nil, err
	}
	eb, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: e.endpoints, Prefix: e.prefix, TLS: tlsCfg})
	if err != nil {
		return nil, err
	}
	if rotation {
		if err := refuseLiveReplicas(ctx, eb, where, "nothing was changed"); err != nil {
			return nil, err
		}
	}
	return eb, nil
}

// refuseLiveReplicas closes eb and refuses when flinkpki servers still use
// the etcd store (named what): a bbolt file is locked by the server that
// uses it; on etcd the servers show by their election keys. nothing says
// what the refusal left undone.
func refuseLiveReplicas(ctx context.Context, eb *etcdstore.Backend, what, nothing string) error {
	n, err := eb.Campaigners(ctx)
	if err == nil && n == 0 {
		return nil
	}
	eb.Close()
	if err != nil {
		return err
	}
	return fmt.Errorf("%d flinkpki server(s) still use %s (their election keys are live): scale every replica to zero first; %s", n, what, nothing)
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

// etcdWhere names an etcd store in messages: its endpoints and prefix.
func etcdWhere(endpoints []string, prefix string) string {
	return "etcd " + strings.Join(endpoints, ",") + prefix
}

// kekFileOrEnv is --kek-file, or FLINKPKI_KEK_FILE when it is not given.
func kekFileOrEnv(kekFile string) string {
	if kekFile == "" {
		return os.Getenv("FLINKPKI_KEK_FILE")
	}
	return kekFile
}

// sealerFromFile reads the store's key-encryption key at kekFile, already
// resolved with kekFileOrEnv, and makes its sealer.
func sealerFromFile(kekFile string) (*store.Sealer, error) {
	if kekFile == "" {
		return nil, usagef("--kek-file is required (or set FLINKPKI_KEK_FILE)")
	}
	return readSealer(kekFile, "key-encryption key")
}

// readSealer reads the key-encryption key at path (what names it in the
// error) and makes its sealer.
func readSealer(path, what string) (*store.Sealer, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	kek, err := store.ParseKEK(raw)
	if err != nil {
		return nil, err
	}
	return store.NewSealer(kek, nil)
}
