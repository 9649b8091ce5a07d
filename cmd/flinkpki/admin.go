// The admin group, and what its backup and restore share: the check that
// a file is a usable store, and the temporary copies of one they keep while
// they run.

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flinkpki/flinkpki/internal/atomicfile"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/bolt"
)

// dbFileName is the store file inside a data directory.
const dbFileName = "flinkpki.db"

func (a *app) newAdminCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Back up, restore, bootstrap and re-key the server's database, replace its serving CA (administrator)",
	}
	backup := a.newAdminBackupCmd()
	a.addConnFlags(backup)
	cmd.AddCommand(backup, a.newAdminRestoreCmd(), a.newAdminTokenCmd(), newAdminBootstrapCmd(), newAdminListTokensCmd(), newAdminRevokeTokenCmd(), newAdminRotateKEKCmd(), newAdminMigrateCmd(), newAdminServingCACmd())
	return cmd
}

// Name patterns of the copies of a store that admin backup --out - and
// admin restore - keep in the temporary directory while they run. Each
// run holds its copy locked (atomicfile.CreateLocked) and first removes
// the ones no run holds: what killed runs left (sealed CA keys, token
// hashes, the audit trail).
const (
	stdoutBackupPattern = "flinkpki-backup-stdout-*.db"
	stdinRestorePattern = "flinkpki-restore-stdin-*.db"
)

// createStoreCopy creates the locked temporary file for a copy of a store
// under pattern, in the temporary directory, after removing the copies
// killed runs left there.
func createStoreCopy(pattern string) (*os.File, error) {
	atomicfile.RemoveUnused(filepath.Join(os.TempDir(), pattern))
	return atomicfile.CreateLocked(os.TempDir(), pattern)
}

// checkStoreFile reads path whole and opens it read-only as a flinkpki
// store, so a wrong, truncated or damaged file, or a database no flinkpki
// server ever opened, is refused before it replaces anything. It answers
// the time of the store's newest audit entry (newestAudit).
func checkStoreFile(ctx context.Context, path string) (time.Time, error) {
	// The file is a backup: the advice for a damaged store (restore from
	// a backup) would send the operator round in a circle.
	asBackup := func(err error) error {
		return reworded{strings.Replace(err.Error(), bolt.RestoreAdvice, "use another backup", 1), err}
	}
	// Every page, not only the meta pages that opening a store checks: a
	// damaged page would otherwise be restored, and panic the server that
	// opens it (or this check).
	if err := bolt.Verify(path); err != nil {
		return time.Time{}, fmt.Errorf("%s is not a usable flinkpki database: %w", path, asBackup(err))
	}
	b, err := bolt.Open(path, bolt.Options{ReadOnly: true})
	if err != nil {
		return time.Time{}, fmt.Errorf("%s is not a usable flinkpki database: %w", path, asBackup(err))
	}
	defer b.Close()
	err = store.Check(ctx, b, nil)
	if errors.Is(err, store.ErrNoStore) {
		return time.Time{}, fmt.Errorf("%s is not a usable flinkpki database: it holds no flinkpki store (no server has ever opened it): use a file written by flinkpki admin backup", path)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("%s is not a usable flinkpki database: %w", path, asBackup(err))
	}
	return newestAudit(ctx, b), nil
}

// newestAudit is the time of the newest audit entry of the checked store
// on b: every change a server makes is audited with it, so a copy of the
// store holds nothing after that. It is zero when the trail is empty or
// cannot be read.
func newestAudit(ctx context.Context, b store.Backend) time.Time {
	st, err := store.Open(ctx, b, nil) // checked: opening writes nothing
	if err != nil {
		return time.Time{}
	}
	var asOf time.Time
	_ = st.View(ctx, func(tx *store.Txn) error {
		head, _, err := tx.AuditHead()
		if err != nil || head == 0 {
			return err
		}
		return tx.ForEachAudit(head, func(e *store.AuditEntry) (bool, error) {
			asOf = e.Time
			return false, nil
		})
	})
	return asOf
}
