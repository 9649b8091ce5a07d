// admin migrate: copying a whole store between bbolt and etcd, offline, and
// verifying the copy before it is let go of its migration marker.

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
)

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
		// What a server writes after the copy would be lost, and one on
		// the target would write into the copy.
		end := "target"
		if source {
			end = "source"
		}
		if err := refuseLiveReplicas(ctx, eb, "the migration "+end+" "+spec, "nothing was copied"); err != nil {
			return nil, err
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

// migrateFlags are admin migrate's flags.
type migrateFlags struct {
	from, to, kekFile string
	etcd              etcdFlags
	out               outputFormat
}

func newAdminMigrateCmd() *cobra.Command {
	var f migrateFlags
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
		RunE: func(cmd *cobra.Command, _ []string) error { return runMigrate(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.from, "from", "", "source store: bolt:PATH or etcd:URL[,URL...]")
	fl.StringVar(&f.to, "to", "", "target store (empty, or an interrupted migration's partial copy): bolt:PATH or etcd:URL[,URL...]")
	fl.StringVar(&f.kekFile, "kek-file", "", "the store's key-encryption key, checked on the source before copying (env FLINKPKI_KEK_FILE)")
	f.etcd.registerConn(cmd)
	addOutputFlag(cmd, &f.out)
	return cmd
}

// runMigrate checks the source with the key-encryption key before it
// opens the target, copies, and verifies the copy before it lets go of it:
// a new bbolt target is linked into place only then.
func runMigrate(cmd *cobra.Command, f *migrateFlags) error {
	ctx := cmd.Context()
	if f.from == "" || f.to == "" {
		return usagef("--from and --to are required")
	}
	if err := sameMigrationEnds(f.from, f.to); err != nil {
		return err
	}
	kekFile := kekFileOrEnv(f.kekFile)
	seal, err := sealerFromFile(kekFile)
	if err != nil {
		return err
	}
	tlsCfg, err := etcdstore.TLSConfig(f.etcd.caFile, f.etcd.certFile, f.etcd.keyFile)
	if err != nil {
		return err
	}
	base := &etcdstore.Config{TLS: tlsCfg}
	src, err := openMigrationEnd(ctx, f.from, f.etcd.prefix, base, true)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := checkMigrationSource(ctx, src, seal, f.from, kekFile); err != nil {
		return err
	}
	dst, err := openMigrationEnd(ctx, f.to, f.etcd.prefix, base, false)
	if err != nil {
		return err
	}
	defer dst.Close()
	counts, err := copyMigration(cmd, src, dst, f.from, f.to)
	if err != nil {
		return err
	}
	rep, err := verifyMigration(ctx, dst, seal)
	if err != nil {
		return err
	}
	if t, ok := dst.(*boltTarget); ok {
		t.keep = true
		if err := dst.Close(); err != nil {
			return err
		}
	}
	return printMigration(cmd, f, counts, rep)
}

// copyMigration copies src into dst, with progress on stderr, and words
// the refusal of a bbolt target that is a store already against --to.
func copyMigration(cmd *cobra.Command, src, dst store.Backend, from, to string) (map[string]int, error) {
	counts, err := store.Copy(cmd.Context(), src, dst, store.CopyOptions{
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
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return counts, nil
}

// verifyMigration opens the copy in dst with the key-encryption key and
// verifies its audit chain, and only then removes the migration marker,
// so that no server ever opens a copy that did not verify.
func verifyMigration(ctx context.Context, dst store.Backend, seal *store.Sealer) (*authority.AuditReport, error) {
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
		return nil, refuse(fmt.Errorf("open the target with the key-encryption key: %w", err))
	}
	var rep *authority.AuditReport
	if err := st.View(ctx, func(tx *store.Txn) error {
		var err error
		rep, err = authority.VerifyChain(tx)
		return err
	}); err != nil {
		return nil, refuse(err)
	}
	if rep.FirstBad != 0 {
		return nil, refuse(fmt.Errorf("the copy's audit chain does not verify (nor does the source's): %s", rep.Message))
	}
	if err := store.EndMigration(ctx, dst); err != nil {
		return nil, refuse(fmt.Errorf("the copy verified, but removing its migration marker failed: %w", err))
	}
	return rep, nil
}

// printMigration reports a verified migration: each bucket's count on
// stdout (or -o json), and the audit chain's verdict on stderr.
func printMigration(cmd *cobra.Command, f *migrateFlags, counts map[string]int, rep *authority.AuditReport) error {
	if f.out == "json" {
		if err := writeJSON(cmd.OutOrStdout(), struct {
			From         string         `json:"from"`
			To           string         `json:"to"`
			Records      map[string]int `json:"records"`
			AuditEntries uint64         `json:"audit_entries"`
			Verified     bool           `json:"verified"`
		}{f.from, f.to, counts, rep.Entries, true}); err != nil {
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
	fmt.Fprintf(cmd.ErrOrStderr(), "copied and verified %s -> %s; %s\n", f.from, f.to, rep.Message)
	return nil
}

// fromClause is " from SOURCE" for a migration marker that names its
// source, and "" for one that does not.
func fromClause(from string) string {
	if from == "" {
		return ""
	}
	return " from " + from
}
