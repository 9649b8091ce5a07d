// admin rotate-kek: re-encrypting every CA key of a stopped store under a
// new key-encryption key, and finishing a rotation that was interrupted.

package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/store"
)

// rotateKEKFlags are admin rotate-kek's flags.
type rotateKEKFlags struct {
	dataDir, kekFile, newKEKFile string
	etcd                         etcdFlags
	out                          outputFormat
}

func newAdminRotateKEKCmd() *cobra.Command {
	var f rotateKEKFlags
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
		RunE: func(cmd *cobra.Command, _ []string) error { return runRotateKEK(cmd, &f) },
	}
	addStoreFlags(cmd, &f.dataDir, &f.kekFile, &f.etcd)
	cmd.Flags().StringVar(&f.newKEKFile, "new-kek-file", "", "the new key-encryption key (32 random bytes)")
	addOutputFlag(cmd, &f.out)
	return cmd
}

// runRotateKEK reads the new key first, so that a missing or malformed one
// is refused before the store is opened, then opens the store as for a
// rotation (openStoreAt) and rotates it; a store the old key no longer
// opens may be one an earlier run rotated already (finishedRotation).
func runRotateKEK(cmd *cobra.Command, f *rotateKEKFlags) error {
	if f.newKEKFile == "" {
		return usagef("--new-kek-file is required")
	}
	next, err := readSealer(f.newKEKFile, "new key-encryption key")
	if err != nil {
		return err
	}
	if err := oneStore(cmd, &f.etcd); err != nil {
		return err
	}
	st, where, err := openStoreAt(cmd.Context(), f.dataDir, &f.etcd, f.kekFile, true)
	if errors.Is(err, store.ErrWrongKEK) {
		// A run that finished before it could say so (killed after
		// its commit): the store is under the new key already.
		// Opened as for a rotation, like the first: on etcd, every
		// replica must still be stopped for the history's drop.
		done, _, derr := openStoreAt(cmd.Context(), f.dataDir, &f.etcd, f.newKEKFile, true)
		if derr == nil {
			defer done.Close()
			return finishedRotation(cmd, done, next, f.newKEKFile, f.out)
		}
	}
	if err != nil {
		return err
	}
	defer st.Close()
	return rotateStoreKEK(cmd, st, where, next, f)
}

// rotateStoreKEK re-encrypts the CA keys of st (at where) under next, audited
// as kek.rotate, then drops the old ciphertexts from etcd's history. Its
// errors say which key the store is under when the rotation failed.
func rotateStoreKEK(cmd *cobra.Command, st *store.Store, where string, next *store.Sealer, f *rotateKEKFlags) error {
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
	if len(f.etcd.endpoints) == 0 {
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
		return fmt.Errorf("rotate key-encryption key of %s: %w: the store is under the new key; start the servers with --kek-file %s", where, err, f.newKEKFile)
	case errors.Is(err, store.ErrKEKRotation):
		return fmt.Errorf("rotate key-encryption key of %s: %w; servers refuse the store until this command, run again with the same --kek-file and --new-kek-file, finishes it", where, err)
	case err != nil && len(f.etcd.endpoints) > 0:
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
	fmt.Fprintf(stderr, "re-encrypted %d CA keys; start the servers with --kek-file %s\n", n, f.newKEKFile)
	if f.out == "json" {
		return writeJSON(cmd.OutOrStdout(), res)
	}
	return nil
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
