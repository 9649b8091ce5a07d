package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/flinkpki/flinkpki/internal/atomicfile"
	flinkpkiv1 "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/bolt"
)

// dbFileName is the store file inside a data directory.
const dbFileName = "flinkpki.db"

func (a *app) newAdminCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Back up, restore, bootstrap and re-key the server's database (administrator)",
	}
	backup := a.newAdminBackupCmd()
	a.addConnFlags(backup)
	cmd.AddCommand(backup, a.newAdminRestoreCmd(), a.newAdminTokenCmd(), newAdminBootstrapCmd(), newAdminListTokensCmd(), newAdminRevokeTokenCmd(), newAdminRotateKEKCmd(), newAdminMigrateCmd())
	return cmd
}

func (a *app) newAdminBackupCmd() *cobra.Command {
	var (
		out    string
		force  bool
		output outputFormat
	)
	cmd := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Download a consistent snapshot of the server's database",
		Long: `Download a consistent snapshot of the running server's database into FILE.
The snapshot holds the CA keys encrypted with the server's key-encryption key
(KEK), which is not in it: keep the KEK, separately, to restore. The file
appears only once complete and checked. FILE is never a database another
process holds open (a running server's flinkpki.db): replacing that would lose
what the server writes after it.

--out - writes the snapshot to standard output instead, once it is complete
and checked (it is staged in the system's temporary directory, TMPDIR), for
admin restore - to read; -o json then has nowhere to go and is refused.`,
		Example: `  flinkpki admin backup --out flinkpki-$(date +%F).db
  flinkpki admin backup --out flinkpki-$(date +%F).db -o json
  flinkpki admin backup --out - | ssh standby flinkpki admin restore - --data-dir /var/lib/flinkpki`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reportClosedPipes()
			if err := requireFlag("out", out); err != nil {
				return err
			}
			dst, err := prepareBackupOut(out, force, output)
			if err != nil {
				return err
			}
			defer dst.cleanup()
			conn, err := a.dial()
			if err != nil {
				return err
			}
			defer conn.Close()
			stream, err := flinkpkiv1.NewAdminServiceClient(conn).Backup(cmd.Context(), &flinkpkiv1.BackupRequest{})
			if err != nil {
				return err
			}
			sum := newResultHash(output)
			progress := byteProgress(a.stderr, "backup", a.now)
			n, err := dst.write(func(w io.Writer) error {
				w = sum.tee(w)
				var got int64
				for {
					chunk, err := stream.Recv()
					if errors.Is(err, io.EOF) {
						return nil
					}
					if err != nil {
						return worded{err} // the server's, or the connection's
					}
					if _, err := w.Write(chunk.GetData()); err != nil {
						return err
					}
					got += int64(len(chunk.GetData()))
					progress(got)
				}
			}, func(tmp string) error {
				if err := checkStoreFile(cmd.Context(), tmp); err != nil {
					return worded{reworded{strings.ReplaceAll(err.Error(), tmp, "the snapshot the server sent"), err}}
				}
				// Again, just before the rename: a server may have
				// started on --out while the snapshot came.
				if out != "-" {
					if err := refuseLiveStore(out); err != nil {
						return worded{err}
					}
				}
				return nil
			})
			if err != nil {
				if n > 0 {
					return err // in place, and its message says so
				}
				if cmd.Context().Err() != nil {
					return fmt.Errorf("no backup was written: %w", cmd.Context().Err())
				}
				return writeFailure(dst.where, dst.flag, err)
			}
			if out == "-" {
				return a.copyBackupToStdout(dst.path, n)
			}
			fmt.Fprintf(a.stderr, "backup written to %s (%d bytes); keep the server's KEK separately: a restore needs it\n", out, n)
			if output == "json" {
				return writeJSON(a.stdout, struct {
					Path   string `json:"path"`
					Bytes  int64  `json:"bytes"`
					SHA256 string `json:"sha256"`
				}{out, n, sum.hex()})
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write the snapshot to (required); - for standard output")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing file")
	addOutputFlag(cmd, &output)
	return cmd
}

// backupOut is the file admin backup writes the snapshot to: --out, or for
// --out - a temporary file that is copied to standard output once checked.
// where names it in messages, and flag is what to change when it fails.
type backupOut struct {
	path, where, flag string
	cleanup           func()
	// tmp is the temporary file for --out -, open and locked; nil for a
	// file, which is replaced atomically (atomicfile.WriteFrom).
	tmp *os.File
}

// write fills the backup's file and runs check on it; for --out - it fills
// the temporary file itself, which is the only copy a killed run leaves.
func (b backupOut) write(fill func(io.Writer) error, check func(tmpPath string) error) (int64, error) {
	if b.tmp == nil {
		return atomicfile.WriteFrom(b.path, 0o600, fill, check)
	}
	if err := fill(b.tmp); err != nil {
		return 0, err
	}
	n, err := b.tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	if err := check(b.path); err != nil {
		return 0, err
	}
	return n, nil
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

// prepareBackupOut checks --out before the server is asked for anything:
// not a database in use, not an existing file unless force, a folder that
// takes files; for "-" the temporary directory, and no -o json result to
// share standard output with the backup.
func prepareBackupOut(out string, force bool, output outputFormat) (backupOut, error) {
	if out != "-" {
		if err := refuseLiveStore(out); err != nil {
			return backupOut{}, err
		}
		replace := "choose another --out or pass --force to replace it"
		if force {
			replace = ""
		}
		if err := checkOutFile(out, "flinkpki-backup.db", replace); err != nil {
			return backupOut{}, err
		}
		return backupOut{path: out, where: out, flag: "--out", cleanup: func() {}}, nil
	}
	if output == "json" {
		return backupOut{}, usagef("--out - writes the backup to standard output, where -o json would write its result too: name a file with --out, or drop -o json")
	}
	where, flag := "the backup's copy in "+os.TempDir(), "TMPDIR"
	if err := atomicfile.CheckDir(os.TempDir()); err != nil {
		return backupOut{}, writeFailure(where, flag, err)
	}
	tmp, err := createStoreCopy(stdoutBackupPattern)
	if err != nil {
		return backupOut{}, writeFailure(where, flag, err)
	}
	cleanup := func() {
		os.Remove(tmp.Name())
		tmp.Close()
	}
	return backupOut{path: tmp.Name(), where: where, flag: flag, cleanup: cleanup, tmp: tmp}, nil
}

func (a *app) newAdminRestoreCmd() *cobra.Command {
	var (
		dataDir string
		out     outputFormat
	)
	cmd := &cobra.Command{
		Use:   "restore FILE --data-dir DIR",
		Short: "Restore a backup into an empty data directory (offline)",
		Long: `Restore a backup made by admin backup into an empty data directory, for a
server that is not running. The restored server signs with the same CAs once
it is started with the same key-encryption key (KEK) as the backed-up one,
and presents a certificate from the same serving CA, so clients keep their
server-ca.crt. Nothing but the database is written: the KEK is yours to
supply.

FILE - reads the backup from standard input, for a pod that has the data
volume but no copy of the file (deploy/bootstrap/pod-restore.yaml, fed with
kubectl attach -i -c restore flinkpki-restore < backup.db; see the deploy
README), or from admin backup --out - in a pipe. It is checked in the
system's temporary directory before the data directory is touched.`,
		Example: `  flinkpki admin restore flinkpki-2025-01-31.db --data-dir /var/lib/flinkpki
  flinkpki serve --data-dir /var/lib/flinkpki --kek-file /etc/flinkpki/kek
  flinkpki admin restore flinkpki-2025-01-31.db --data-dir /var/lib/flinkpki -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := requireFlag("data-dir", dataDir); err != nil {
				return err
			}
			name, backup := args[0], args[0]
			if name == "-" {
				tmp, err := a.stdinToTemp(ctx)
				if err != nil {
					return err
				}
				defer tmp.Close()
				defer os.Remove(tmp.Name())
				args[0] = tmp.Name()
				name = "the backup from standard input"
			}
			if fi, err := os.Stat(args[0]); err != nil {
				return fmt.Errorf("read the backup %s: %w", name, atomicfile.Cause(err))
			} else if fi.Size() == 0 {
				return fmt.Errorf("%s is empty, not a backup: use a file flinkpki admin backup wrote", name)
			}
			if err := checkStoreFile(ctx, args[0]); err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("nothing was restored, and --data-dir %s was not touched: %w", dataDir, ctx.Err())
				}
				if name != args[0] {
					msg := strings.ReplaceAll(err.Error(), "store "+args[0], name) // "store FILE has ..."
					return reworded{strings.ReplaceAll(msg, args[0], name), err}
				}
				return err
			}
			made, err := ensureEmptyDir(dataDir)
			if err != nil {
				return err
			}
			restored := false
			defer func() {
				if !restored {
					atomicfile.RemoveDirs(made)
				}
			}()
			src, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("open backup: %w", err)
			}
			defer src.Close()
			dst := filepath.Join(dataDir, dbFileName)
			sum := newResultHash(out)
			n, err := atomicfile.WriteFrom(dst, 0o600, func(w io.Writer) error {
				_, err := io.Copy(sum.tee(w), src)
				return err
			}, func(tmp string) error {
				if err := checkStoreFile(ctx, tmp); err != nil {
					return worded{err}
				}
				return nil
			})
			if err != nil {
				if n > 0 {
					return err // in place, and its message says so
				}
				if ctx.Err() != nil {
					return fmt.Errorf("nothing was restored: --data-dir %s is as it was: %w", dataDir, ctx.Err())
				}
				return writeFailure(dst, "--data-dir", err)
			}
			restored = true
			fmt.Fprintf(a.stderr, "restored %s (%d bytes) to %s\n", name, n, dst)
			fmt.Fprintf(a.stderr, "next: start the server with the KEK of the backed-up server:\n  flinkpki serve --data-dir %s --kek-file KEK_FILE\n", dataDir)
			fmt.Fprintf(a.stderr, "its serving CA is the backed-up one, so clients keep their server-ca.crt; then check: flinkpki audit verify\n")
			if out == "json" {
				// Backup is the FILE argument as given, "-" for standard input.
				return writeJSON(a.stdout, struct {
					Backup  string `json:"backup"`
					DataDir string `json:"data_dir"`
					Path    string `json:"path"`
					Bytes   int64  `json:"bytes"`
					SHA256  string `json:"sha256"`
				}{backup, dataDir, dst, n, sum.hex()})
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "empty data directory to restore into (required; created 0700 if missing)")
	addOutputFlag(cmd, &out)
	return cmd
}

// checkStoreFile reads path whole and opens it read-only as a flinkpki
// store, so a wrong, truncated or damaged file, or a database no flinkpki
// server ever opened, is refused before it replaces anything.
func checkStoreFile(ctx context.Context, path string) error {
	// The file is a backup: the advice for a damaged store (restore from
	// a backup) would send the operator round in a circle.
	asBackup := func(err error) error {
		return reworded{strings.Replace(err.Error(), bolt.RestoreAdvice, "use another backup", 1), err}
	}
	// Every page, not only the meta pages that opening a store checks: a
	// damaged page would otherwise be restored, and panic the server that
	// opens it (or this check).
	if err := bolt.Verify(path); err != nil {
		return fmt.Errorf("%s is not a usable flinkpki database: %w", path, asBackup(err))
	}
	b, err := bolt.Open(path, bolt.Options{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("%s is not a usable flinkpki database: %w", path, asBackup(err))
	}
	defer b.Close()
	err = store.Check(ctx, b, nil)
	if errors.Is(err, store.ErrNoStore) {
		return fmt.Errorf("%s is not a usable flinkpki database: it holds no flinkpki store (no server has ever opened it): use a file written by flinkpki admin backup", path)
	}
	if err != nil {
		return fmt.Errorf("%s is not a usable flinkpki database: %w", path, asBackup(err))
	}
	return nil
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

// checkOutFile checks --out before a command that writes a file there does
// anything: a directory is a usage error (example names a file in it), and
// an existing file is refused with exists (what to do instead) unless
// exists is "" (the command replaces it); its folder must exist and take
// files.
func checkOutFile(out, example, exists string) error {
	if isDir(out) {
		return usagef("--out %s is a directory: name the file, for example --out %s", out, filepath.Join(out, example))
	}
	if _, err := os.Lstat(out); err == nil && exists != "" {
		return fmt.Errorf("%s already exists: %s", out, exists)
	}
	dir := filepath.Dir(out)
	if !isDir(dir) {
		return fmt.Errorf("cannot write %s: %s is not an existing directory; create it first", out, dir)
	}
	// A folder that cannot be written (or a full volume) shows now, not
	// after the server has been asked (and has audited the request).
	if err := atomicfile.CheckDir(dir); err != nil {
		return writeFailure(out, "--out", err)
	}
	return nil
}

// refuseLiveStore refuses to replace out when it is a file another process
// holds locked for writing: a bbolt database in use (a running server's
// flinkpki.db). bbolt locks its file with flock, exclusive for a server and
// shared for a reader, so a non-blocking shared flock tells
// (atomicfile.HeldForWriting); a reader keeps what it reads, and another
// backup of the same file, which holds it shared for a moment, is no
// server. A file renamed over a server's would leave it writing into the
// unlinked old file, and what it wrote from then on would be gone at its
// next start.
func refuseLiveStore(out string) error {
	if fi, err := os.Lstat(out); err != nil || !fi.Mode().IsRegular() {
		return nil // a link is replaced, not what it points to
	}
	// What cannot be read is no store this user runs.
	if inUse, _ := atomicfile.HeldForWriting(out); inUse {
		return fmt.Errorf("--out %s is a database another process holds open (a running flinkpki server's): replacing it would lose what that server writes from now on; write the backup elsewhere", out)
	}
	return nil
}

// worded marks an error whose message already says, in the user's terms,
// what failed (the server's, a check's): writeFailure passes it on as it is.
type worded struct{ err error }

func (w worded) Error() string { return w.err.Error() }
func (w worded) Unwrap() error { return w.err }

// writeFailure words a failure to write path (a file atomicfile writes
// under a temporary name beside it first) against path itself, on one line,
// with what to do: free space, or change flag (the option that chose the
// folder). An error marked worded passes through unchanged.
func writeFailure(path, flag string, err error) error {
	var w worded
	if errors.As(err, &w) {
		return w.err
	}
	reason := atomicfile.Cause(err).Error()
	advice := "choose another " + flag
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		advice = "free space there, or choose another " + flag
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		advice = "choose a folder you can write to with " + flag
	}
	return reworded{fmt.Sprintf("cannot write %s: %s; %s", path, reason, advice), err}
}

// copyBackupToStdout sends the checked backup at path (n bytes) to
// standard output, for admin backup --out -.
func (a *app) copyBackupToStdout(path string, n int64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read the backup's copy: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(a.stdout, f); err != nil {
		return fmt.Errorf("the backup could not be written to standard output: %w; what was written is incomplete: run again", err)
	}
	fmt.Fprintf(a.stderr, "backup written to standard output (%d bytes); keep the server's KEK separately: a restore needs it\n", n)
	return nil
}

// isDir reports whether path names an existing directory.
func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// resultHash is the SHA-256 of the bytes a command writes, for its -o json
// result; for the table it is nil and costs nothing.
type resultHash struct{ h hash.Hash }

func newResultHash(out outputFormat) *resultHash {
	if out != "json" {
		return &resultHash{}
	}
	return &resultHash{h: sha256.New()}
}

// tee returns w, writing into the hash as well when there is one.
func (r *resultHash) tee(w io.Writer) io.Writer {
	if r.h == nil {
		return w
	}
	return io.MultiWriter(w, r.h)
}

// hex is the hash in lower-case hex, "" without one.
func (r *resultHash) hex() string {
	if r.h == nil {
		return ""
	}
	return hex.EncodeToString(r.h.Sum(nil))
}

// reworded is err with another message; errors.Is still sees err.
type reworded struct {
	msg string
	err error
}

func (r reworded) Error() string { return r.msg }
func (r reworded) Unwrap() error { return r.err }

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

// byteProgress reports, on w, how much of a long transfer has arrived: a
// line at most every two seconds once it has run for two (a small store's
// backup says nothing until its result line).
func byteProgress(w io.Writer, what string, now func() time.Time) func(n int64) {
	start := now()
	last := start
	return func(n int64) {
		if t := now(); t.Sub(last) >= 2*time.Second {
			fmt.Fprintf(w, "%s: %.1f MB received (%s)\n", what, float64(n)/1e6, t.Sub(start).Round(time.Second))
			last = t
		}
	}
}
