// admin restore: a backup, from a file or standard input, checked and
// written into an empty data directory for a server that is not running.

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
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flinkpki/flinkpki/internal/atomicfile"
	"github.com/flinkpki/flinkpki/store/bolt"
)

// restoreFlags are admin restore's flags.
type restoreFlags struct {
	dataDir string
	out     outputFormat
}

func (a *app) newAdminRestoreCmd() *cobra.Command {
	var f restoreFlags
	cmd := &cobra.Command{
		Use:   "restore FILE --data-dir DIR",
		Short: "Restore a backup into an empty data directory (offline)",
		Long: `Restore a backup made by admin backup into an empty data directory, for a
server that is not running. The restored server signs with the same CAs once
it is started with the same key-encryption key (KEK) as the backed-up one,
and presents a certificate from the same serving CA, so clients keep their
server-ca.crt (unless the serving CA was replaced with admin serving-ca after
the backup was taken: then publish the restored server's server-ca.crt, or
replace the serving CA again). Nothing but the database is written: the KEK
is yours to supply.

FILE - reads the backup from standard input, for a pod that has the data
volume but no copy of the file (deploy/bootstrap/pod-restore.yaml, fed with
kubectl attach -i -c restore flinkpki-restore < backup.db; see the deploy
README), or from admin backup --out - in a pipe. It is checked in the
system's temporary directory before the data directory is touched.`,
		Example: `  flinkpki admin restore flinkpki-2025-01-31.db --data-dir /var/lib/flinkpki
  flinkpki serve --data-dir /var/lib/flinkpki --kek-file /etc/flinkpki/kek
  flinkpki admin restore flinkpki-2025-01-31.db --data-dir /var/lib/flinkpki -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runRestore(cmd.Context(), &f, args[0]) },
	}
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "", "empty data directory to restore into (required; created 0700 if missing)")
	addOutputFlag(cmd, &f.out)
	return cmd
}

// runRestore restores backup (a file, or "-" for standard input, copied
// to a temporary file first) into --data-dir, once the backup is checked,
// and says how to start the server on it.
func (a *app) runRestore(ctx context.Context, f *restoreFlags, backup string) error {
	if err := requireFlag("data-dir", f.dataDir); err != nil {
		return err
	}
	path, name := backup, backup
	if name == "-" {
		tmp, err := a.stdinToTemp(ctx)
		if err != nil {
			return err
		}
		defer tmp.Close()
		defer os.Remove(tmp.Name())
		path = tmp.Name()
		name = "the backup from standard input"
	}
	asOf, err := checkBackup(ctx, path, name, f.dataDir)
	if err != nil {
		return err
	}
	sum := newResultHash(f.out)
	dst, n, err := restoreFile(ctx, path, f.dataDir, sum)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "restored %s (%d bytes) to %s\n", name, n, dst)
	asOfText := ""
	if !asOf.IsZero() {
		asOfText = asOf.UTC().Format(time.RFC3339)
		fmt.Fprintf(a.stderr, "the backup holds the store as of its newest audit entry, %s (%s ago): what the backed-up server did since (CA steps, enrollments, token revocations) is undone; read the README's \"Backup and restore\" before this server takes requests\n",
			asOfText, formatDuration(max(time.Since(asOf), 0).Truncate(time.Minute)))
	}
	fmt.Fprintf(a.stderr, "next: start the server with the KEK of the backed-up server:\n  flinkpki serve --data-dir %s --kek-file KEK_FILE\n", f.dataDir)
	fmt.Fprintf(a.stderr, "its serving CA is the backed-up one, so clients keep their server-ca.crt (unless it was replaced since the backup: compare flinkpki server-ca after the first start); then check: flinkpki audit verify\n")
	if f.out == "json" {
		// Backup is the FILE argument as given, "-" for standard input.
		// AsOf is the backup's newest audit entry ("" when it has none).
		return writeJSON(a.stdout, struct {
			Backup  string `json:"backup"`
			DataDir string `json:"data_dir"`
			Path    string `json:"path"`
			Bytes   int64  `json:"bytes"`
			SHA256  string `json:"sha256"`
			AsOf    string `json:"as_of"`
		}{backup, f.dataDir, dst, n, sum.hex(), asOfText})
	}
	return nil
}

// checkBackup refuses the backup at path (name, as the user knows it) when
// it is missing, empty or no usable store, before the data directory is
// touched. It answers the time the backup holds the store as of
// (checkStoreFile).
func checkBackup(ctx context.Context, path, name, dataDir string) (time.Time, error) {
	if fi, err := os.Stat(path); err != nil {
		return time.Time{}, fmt.Errorf("read the backup %s: %w", name, atomicfile.Cause(err))
	} else if fi.Size() == 0 {
		return time.Time{}, fmt.Errorf("%s is empty, not a backup: use a file flinkpki admin backup wrote", name)
	}
	asOf, err := checkStoreFile(ctx, path)
	if err != nil {
		if ctx.Err() != nil {
			return time.Time{}, fmt.Errorf("nothing was restored, and --data-dir %s was not touched: %w", dataDir, ctx.Err())
		}
		if name != path {
			msg := strings.ReplaceAll(err.Error(), "store "+path, name) // "store FILE has ..."
			return time.Time{}, reworded{strings.ReplaceAll(msg, path, name), err}
		}
		return time.Time{}, err
	}
	return asOf, nil
}

// restoreFile writes the backup at path, through sum, into the store file
// of dataDir, which must be empty, and checks the copy before it takes its
// place. A restore that fails before its file is in place removes the
// folders it made for dataDir, so it leaves nothing behind; one that fails
// after (n > 0) leaves the file, and its error says so. It returns the
// store file and its size.
func restoreFile(ctx context.Context, path, dataDir string, sum *resultHash) (string, int64, error) {
	made, err := ensureEmptyDir(dataDir)
	if err != nil {
		return "", 0, err
	}
	restored := false
	defer func() {
		if !restored {
			atomicfile.RemoveDirs(made)
		}
	}()
	src, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("open backup: %w", err)
	}
	defer src.Close()
	dst := filepath.Join(dataDir, dbFileName)
	n, err := atomicfile.WriteFrom(dst, 0o600, func(w io.Writer) error {
		_, err := io.Copy(sum.tee(w), src)
		return err
	}, func(tmp string) error {
		if _, err := checkStoreFile(ctx, tmp); err != nil {
			return worded{err}
		}
		return nil
	})
	if err != nil {
		if n > 0 {
			return "", 0, err // in place, and its message says so
		}
		if ctx.Err() != nil {
			return "", 0, fmt.Errorf("nothing was restored: --data-dir %s is as it was: %w", dataDir, ctx.Err())
		}
		return "", 0, writeFailure(dst, "--data-dir", err)
	}
	restored = true
	return dst, n, nil
}

// ensureEmptyDir creates dir (0700) or accepts it only when empty, so a
// restore never mixes with or overwrites a live data directory. It returns
// the directories it made, outermost first, for a failed restore to remove.
func ensureEmptyDir(dir string) ([]string, error) {
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return nil, usagef("--data-dir %s is a file, not a directory: name an empty directory, or one to create, to restore into", dir)
	}
	if err := atomicfile.DanglingLink(dir); err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	entries, err := os.ReadDir(dir)
	// The root of a fresh ext4 volume (a Kubernetes PVC mounted as the
	// data directory) holds lost+found and nothing of ours.
	entries = slices.DeleteFunc(entries, func(e fs.DirEntry) bool { return e.Name() == "lost+found" && e.IsDir() })
	// What an interrupted restore left (its copy under a temporary name),
	// the health file a bbolt server rewrites, and a killed first start's
	// unfinished store are no live data: a restore replaces or ignores them.
	leftovers := atomicfile.Leftovers(filepath.Join(dir, dbFileName))
	entries = slices.DeleteFunc(entries, func(e fs.DirEntry) bool {
		return e.Type().IsRegular() && (bolt.IsScratch(e.Name()) || slices.Contains(leftovers, filepath.Join(dir, e.Name())))
	})
	switch {
	case errors.Is(err, fs.ErrNotExist):
		made, err := atomicfile.MkdirAll(dir, 0o700)
		if err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
		return made, nil
	case err != nil:
		return nil, fmt.Errorf("read data directory: %w", err)
	case len(entries) > 0:
		names := make([]string, 0, 3)
		for _, e := range entries[:min(len(entries), 3)] {
			names = append(names, e.Name())
		}
		more := ""
		if len(entries) > 3 {
			more = fmt.Sprintf(" and %d more", len(entries)-3)
		}
		return nil, fmt.Errorf("data directory %s is not empty (it holds %s%s): restore only into an empty directory, so no live data is overwritten", dir, strings.Join(names, ", "), more)
	}
	return nil, nil
}

// stdinToTemp copies standard input into a new file (0600) in the system's
// temporary directory (createStoreCopy) and returns it, open and locked;
// the caller closes and removes it. A signal (ctx's end) while it waits on
// standard input removes the file and gives up, rather than wait for an
// input that may never end.
func (a *app) stdinToTemp(ctx context.Context) (*os.File, error) {
	if a.stdin == nil {
		return nil, usagef("restore -: no standard input")
	}
	f, err := createStoreCopy(stdinRestorePattern)
	if err != nil {
		return nil, fmt.Errorf("read the backup from standard input: %w (the temporary directory must be writable: TMPDIR)", err)
	}
	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(f, a.stdin)
		copied <- err
	}()
	select {
	case err = <-copied:
	case <-ctx.Done():
		// The copy goroutine may still write: the file is removed by
		// name, and the process is about to exit.
		err = ctx.Err()
	}
	if err != nil {
		os.Remove(f.Name())
		f.Close()
		return nil, fmt.Errorf("read the backup from standard input: %w", err)
	}
	return f, nil
}
