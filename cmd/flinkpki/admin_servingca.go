// admin serving-ca: the server's own serving CA (every client's
// server-ca.crt) replaced the way a cluster CA is rotated, written without
// the server: prepared and trusted by clients before it signs, the old one
// trusted until it is retired.

package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/internal/atomicfile"
	"github.com/flinkpki/flinkpki/store"
)

// servingRetireWait is how long after an activation on etcd the retiring
// serving CA may be retired without --force: running replicas check which
// serving CA signs every servingCertCheck, and one that has not yet would
// still present a certificate of the retiring CA to clients that no longer
// trust it. Three checks: one that failed (etcd out of reach a moment) is
// made again.
const servingRetireWait = 3 * servingCertCheck

// servingActor is who the audit trail names for the serving CA's steps:
// whoever opened the store with its key-encryption key.
const servingActor = "system:serving-ca"

func newAdminServingCACmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serving-ca",
		Short: "Replace the server's own serving CA (server-ca.crt) without breaking clients",
		Long: `The server's serving CA is the trust anchor every client holds as server-ca.crt
(init containers, the CLI, grpcurl). It is made for ten years on first start.
Replace it (before it expires, or when its key may have leaked) in three steps,
as a cluster CA is rotated:

  1. prepare: a new serving CA, trusted alongside the active one. --out FILE
     gets the new server-ca.crt (both CAs); publish it to every client (the
     ConfigMap init containers mount, operators' machines) before step 2.
  2. activate: the new CA signs the serving certificates; the old one stays
     trusted. A server on bbolt uses it when it starts; running replicas on
     etcd switch at their next check (every 5 minutes), or when restarted.
  3. retire: the old CA leaves server-ca.crt. On etcd, refused until 15
     minutes after the activation, three checks of every replica (--force
     once they have all restarted).

Each step opens the store itself, like admin bootstrap: with --data-dir a
stopped server's bbolt store, with --etcd-endpoints an HA installation's
store, whose replicas may keep running. Each is one transaction with its
audit entry, and changes nothing when refused. Each command writes the
server-ca.crt clients should hold to --out (atomically, and only when it
succeeds; without --out the steps print it on stdout: do not redirect it
onto the file clients read, which a refused step would leave empty), and
status prints the serving CAs (-o json: both).`,
		Example: `  flinkpki admin serving-ca status --data-dir /var/lib/flinkpki --kek-file /etc/flinkpki/kek
  flinkpki admin serving-ca prepare --data-dir /var/lib/flinkpki --kek-file /etc/flinkpki/kek --out server-ca.crt
  kubectl -n flink create configmap flinkpki-server-ca --from-file=server-ca.crt --dry-run=client -o yaml | kubectl apply -f -
  flinkpki admin serving-ca activate --data-dir /var/lib/flinkpki --kek-file /etc/flinkpki/kek --out server-ca.crt
  flinkpki admin serving-ca retire --data-dir /var/lib/flinkpki --kek-file /etc/flinkpki/kek --out server-ca.crt`,
	}
	cmd.AddCommand(
		servingStepCmd("status", "Show the serving CAs and the server-ca.crt clients should hold", `Show the serving CAs in the store: the active one, which signs the
serving certificates, and a prepared or retiring one while the serving CA is
replaced, with their SHA-256 fingerprints and expiry. -o json adds the PEM
of the server-ca.crt clients should hold now.`, nil),
		servingStepCmd("prepare", "Make the next serving CA, trusted before it signs", `Make the next serving CA (P-256, ten years) and write the server-ca.crt that
trusts it alongside the active one (--out, or stdout). Publish that file to
every client before admin serving-ca activate: a client that lacks the new CA
is refused from the activation on. Refused while a serving CA is prepared or
retiring already.`, prepareServingCA),
		servingStepCmd("activate", "Let the prepared serving CA sign; the old one stays trusted", `Let the prepared serving CA sign the serving certificates. The old one becomes
retiring: still in server-ca.crt, its key gone from the store's records (the
sealed copy lingers in bbolt's free pages, etcd's history until compaction,
and earlier backups). A server on bbolt signs with the new CA when it
starts; replicas on etcd switch at their next check (every 5 minutes) or
when restarted.`, activateServingCA),
		servingStepCmd("retire", "Drop the old serving CA from server-ca.crt", `Drop the retiring serving CA: server-ca.crt holds the active one alone.
Clients that hold the two-CA bundle keep working; give them the new file at
leisure. On etcd it is refused until 15 minutes after the activation, three
checks of every running replica (--force once every replica has restarted
since; a replica of a release before admin serving-ca never checks, and
switches only when restarted).`, retireServingCA),
	)
	return cmd
}

// servingStep changes the serving CAs in tx at now, and answers what the
// audit entry and stderr say of it. onEtcd: the store is shared by
// replicas that may be running; force: admin serving-ca retire --force.
type servingStep func(tx *store.Txn, now time.Time, onEtcd, force bool) (said string, details map[string]string, err error)

func servingStepCmd(name, short, long string, step servingStep) *cobra.Command {
	var dataDir, kekFile, outFile string
	var etcd etcdFlags
	var out outputFormat
	var force bool
	cmd := &cobra.Command{
		Use:   name + " (--data-dir DIR | --etcd-endpoints URLS) --kek-file FILE",
		Short: short,
		Long: long + `

With --data-dir it opens a stopped server's bbolt store (the running server
holds its lock); with --etcd-endpoints an HA installation's store, whose
replicas may keep running.`,
		Example: "  flinkpki admin serving-ca " + name + " --data-dir /var/lib/flinkpki --kek-file /etc/flinkpki/kek\n" +
			"  flinkpki admin serving-ca " + name + " --etcd-endpoints https://etcd-0:2379 --etcd-ca-file ca.crt \\\n" +
			"      --etcd-cert-file tls.crt --etcd-key-file tls.key --kek-file kek -o json",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if outFile != "" {
				if err := checkOutFile(outFile, serverCAFileName, ""); err != nil {
					return err
				}
			}
			st, err := openAdminStore(cmd, dataDir, kekFile, &etcd)
			if err != nil {
				return err
			}
			defer st.Close()
			said, cas, err := runServingStep(cmd.Context(), st, name, step, len(etcd.endpoints) > 0, force)
			if err != nil {
				return err
			}
			// The step is done: what fails from here says so.
			done := func(err error) error {
				if step == nil {
					return err
				}
				return fmt.Errorf("serving-ca %s was done (admin serving-ca status shows it), but %w", name, err)
			}
			if step != nil && len(etcd.endpoints) == 0 {
				// The stopped server's own copy, as it would write it at start.
				if err := writeTrustBundle(dataDir, cas.bundle); err != nil {
					return done(fmt.Errorf("writing %s failed: %w", filepath.Join(dataDir, serverCAFileName), err))
				}
			}
			if outFile != "" {
				if err := atomicfile.Write(outFile, cas.bundle, 0o644); err != nil {
					return done(fmt.Errorf("writing --out %s failed: %w (admin serving-ca status -o json has the PEM)", outFile, err))
				}
			}
			if err := printServingCAs(cmd.OutOrStdout(), out, step == nil || outFile != "", cas); err != nil {
				return done(err)
			}
			if said != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), said)
			}
			return nil
		},
	}
	addStoreFlags(cmd, &dataDir, &kekFile, &etcd)
	addOutputFlag(cmd, &out)
	cmd.Flags().StringVar(&outFile, "out", "", "write the server-ca.crt clients should hold to this file (replaced atomically, and only when the command succeeds) instead of stdout")
	if name == "retire" {
		cmd.Flags().BoolVar(&force, "force", false, "retire on etcd before the replicas' checks are due: every replica has restarted since the activation")
	}
	return cmd
}

// runServingStep runs step, when not nil, and its audit entry (action
// serving-ca.NAME) in one transaction, and reads the serving CAs in the
// same one, so they are the step's result: a refused step changes nothing.
func runServingStep(ctx context.Context, st *store.Store, name string, step servingStep, onEtcd, force bool) (string, *servingCAs, error) {
	var said string
	var cas *servingCAs
	run := st.Update
	if step == nil {
		run = st.View
	}
	err := run(ctx, func(tx *store.Txn) error {
		if step != nil {
			now := time.Now()
			var details map[string]string
			var err error
			if said, details, err = step(tx, now, onEtcd, force); err != nil {
				return err
			}
			if err := tx.AppendAudit(&store.AuditEntry{Time: now.UTC(), Actor: servingActor, Action: "serving-ca." + name, Outcome: "ok", Details: details}); err != nil {
				return err
			}
		}
		var err error
		cas, err = readServingCAs(tx)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, errors.New("the store has no serving CA yet: start flinkpki serve on it once; nothing was changed")
	}
	return said, cas, err
}

// servingFingerprint is the SHA-256 fingerprint of a serving CA record's
// certificate.
func servingFingerprint(rec *store.CA) (string, error) {
	cert, err := x509.ParseCertificate(rec.CertDER)
	if err != nil {
		return "", fmt.Errorf("serving CA certificate (%s): %w", rec.ID, err)
	}
	return ca.Fingerprint(cert), nil
}

// servingIn reads the serving CA in slot: nil, without an error, when the
// slot is empty.
func servingIn(tx *store.Txn, slot store.ServingSlot) (*store.CA, error) {
	rec, err := tx.ServingCA(slot)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return rec, err
}

func prepareServingCA(tx *store.Txn, now time.Time, _, _ bool) (string, map[string]string, error) {
	active, err := tx.ServerCA()
	if err != nil {
		return "", nil, err
	}
	prepared, err := servingIn(tx, store.ServingPrepared)
	if err != nil {
		return "", nil, err
	}
	if prepared != nil {
		fp, _ := servingFingerprint(prepared)
		return "", nil, fmt.Errorf("serving CA %s is prepared already (since %s): publish the server-ca.crt that trusts it (admin serving-ca status --out FILE), then admin serving-ca activate; nothing was changed", fp, prepared.Created.UTC().Format(time.RFC3339))
	}
	retiring, err := servingIn(tx, store.ServingRetiring)
	if err != nil {
		return "", nil, err
	}
	if retiring != nil {
		fp, _ := servingFingerprint(retiring)
		return "", nil, fmt.Errorf("serving CA %s is still retiring: retire it first (admin serving-ca retire); nothing was changed", fp)
	}
	next, err := newServingCA(now, max(active.Generation, 1)+1)
	if err != nil {
		return "", nil, err
	}
	next.State = "prepared"
	if err := tx.PutServingCA(store.ServingPrepared, next); err != nil {
		return "", nil, err
	}
	fp, err := servingFingerprint(next)
	if err != nil {
		return "", nil, err
	}
	return fmt.Sprintf("prepared serving CA %s, valid until %s: publish the new server-ca.crt (both CAs) to every client, then run admin serving-ca activate",
		fp, now.Add(servingCAValidity).UTC().Format("2006-01-02")), map[string]string{"id": next.ID, "fingerprint": fp}, nil
}

func activateServingCA(tx *store.Txn, now time.Time, onEtcd, _ bool) (string, map[string]string, error) {
	next, err := servingIn(tx, store.ServingPrepared)
	switch {
	case err != nil:
		return "", nil, err
	case next == nil:
		return "", nil, errors.New("no serving CA is prepared: run admin serving-ca prepare first, and publish its server-ca.crt; nothing was changed")
	case next.Key == nil:
		return "", nil, fmt.Errorf("%w: the prepared serving CA %s has no key; nothing was changed", store.ErrCorrupt, next.ID)
	}
	old, err := tx.ServerCA()
	if err != nil {
		return "", nil, err
	}
	old.Key, old.State, old.Retiring = nil, "retiring", now // it signs nothing more
	next.State, next.Activated = "active", now
	if err := tx.PutServingCA(store.ServingRetiring, old); err != nil {
		return "", nil, err
	}
	if err := tx.PutServingCA(store.ServingActive, next); err != nil {
		return "", nil, err
	}
	if err := tx.DeleteServingCA(store.ServingPrepared); err != nil {
		return "", nil, err
	}
	fp, err := servingFingerprint(next)
	if err != nil {
		return "", nil, err
	}
	oldFP, _ := servingFingerprint(old)
	when := "the server uses it when it starts"
	if onEtcd {
		when = "running replicas switch to it within " + formatDuration(servingCertCheck) + ", or when restarted"
	}
	return fmt.Sprintf("serving CA %s signs now (%s); %s stays trusted until admin serving-ca retire", fp, when, oldFP),
		map[string]string{"id": next.ID, "fingerprint": fp, "retiring": oldFP}, nil
}

func retireServingCA(tx *store.Txn, now time.Time, onEtcd, force bool) (string, map[string]string, error) {
	old, err := servingIn(tx, store.ServingRetiring)
	if err != nil {
		return "", nil, err
	}
	if old == nil {
		return "", nil, errors.New("no serving CA is retiring: retire follows admin serving-ca activate; nothing was changed")
	}
	if ready := old.Retiring.Add(servingRetireWait); onEtcd && !force && now.Before(ready) {
		return "", nil, fmt.Errorf("the serving CA was activated at %s, and running replicas switch to it at their next check (every %s): retire after %s, or pass --force once every replica has restarted since; nothing was changed",
			old.Retiring.UTC().Format(time.RFC3339), formatDuration(servingCertCheck), ready.UTC().Format(time.RFC3339))
	}
	if err := tx.DeleteServingCA(store.ServingRetiring); err != nil {
		return "", nil, err
	}
	fp, err := servingFingerprint(old)
	if err != nil {
		return "", nil, err
	}
	return fmt.Sprintf("serving CA %s retired: the new server-ca.crt holds the active serving CA alone; clients that hold both keep working", fp),
		map[string]string{"id": old.ID, "fingerprint": fp}, nil
}

// servingCAJSON is one serving CA in admin serving-ca -o json: its state
// and ID, and its certificate as server-ca -o json shows it.
type servingCAJSON struct {
	State string `json:"state"`
	ID    string `json:"id"`
	serverCACertJSON
}

// printServingCAs writes cas: as a table (status) or the bundle's PEM (the
// steps), or as one JSON object with both.
func printServingCAs(w io.Writer, out outputFormat, table bool, cas *servingCAs) error {
	rows := []servingCAJSON{}
	for i, rec := range cas.all {
		rows = append(rows, servingCAJSON{rec.State, rec.ID, serverCACertJSONOf(cas.certs[i])})
	}
	switch {
	case out == "json":
		return writeJSON(w, struct {
			ServingCAs []servingCAJSON `json:"serving_cas"`
			PEM        string          `json:"pem"`
		}{rows, string(cas.bundle)})
	case table:
		tw := newTable(w)
		tw.row("STATE", "ID", "SHA-256", "NOT AFTER")
		for _, r := range rows {
			tw.row(r.State, r.ID, r.SHA256Fingerprint, r.NotAfter)
		}
		return tw.Flush()
	}
	_, err := w.Write(cas.bundle)
	return err
}
