// admin backup: a consistent snapshot of the running server's database,
// downloaded into a file or onto standard output once it is checked.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/flinkpki/flinkpki/internal/atomicfile"
	flinkpkiv1 "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
	"github.com/flinkpki/flinkpki/store/bolt"
)

// backupFlags are admin backup's flags.
type backupFlags struct {
	out    string
	force  bool
	output outputFormat
}

func (a *app) newAdminBackupCmd() *cobra.Command {
	var f backupFlags
	cmd := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Download a consistent snapshot of the server's database",
		Long: `Download a consistent snapshot of the running server's database into FILE.
The snapshot holds the CA keys encrypted with the server's key-encryption key
(KEK), which is not in it: keep the KEK, separately, to restore. The file
appears only once complete and checked. FILE is never a database another
process holds open (a running server's flinkpki.db): replacing that would lose
what the server writes after it. The file is staged beside FILE as a hidden
.NAME.tmp-*; a backup that succeeds removes such copies that killed backups
left in its folder (those that begin like a store and no running backup
holds), which hold sealed CA keys, and says so.

--out - writes the snapshot to standard output instead, once it is complete
and checked (it is staged in the system's temporary directory, TMPDIR), for
admin restore - to read; -o json then has nowhere to go and is refused, and
so is a terminal (pipe it or redirect it).`,
		Example: `  flinkpki admin backup --out flinkpki-$(date +%F).db
  flinkpki admin backup --out flinkpki-$(date +%F).db -o json
  flinkpki admin backup --out - | ssh standby flinkpki admin restore - --data-dir /var/lib/flinkpki`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runBackup(cmd.Context(), &f) },
	}
	cmd.Flags().StringVar(&f.out, "out", "", "file to write the snapshot to (required); - for standard output")
	cmd.Flags().BoolVar(&f.force, "force", false, "replace an existing file")
	addOutputFlag(cmd, &f.output)
	return cmd
}

// runBackup checks --out before the server is asked for anything, then
// receives the snapshot into it; a failure before anything is in place
// is worded against the file it was to be.
func (a *app) runBackup(ctx context.Context, f *backupFlags) error {
	reportClosedPipes()
	if err := requireFlag("out", f.out); err != nil {
		return err
	}
	dst, err := prepareBackupOut(f.out, f.force, f.output, a.stdout)
	if err != nil {
		return err
	}
	defer dst.cleanup()
	conn, err := a.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	stream, err := flinkpkiv1.NewAdminServiceClient(conn).Backup(ctx, &flinkpkiv1.BackupRequest{})
	if err != nil {
		return err
	}
	sum := newResultHash(f.output)
	n, err := a.receiveBackup(ctx, stream, dst, sum, f.out)
	if err != nil {
		if n > 0 {
			return err // in place, and its message says so
		}
		if ctx.Err() != nil {
			return fmt.Errorf("no backup was written: %w", ctx.Err())
		}
		return writeFailure(dst.where, dst.flag, err)
	}
	if f.out == "-" {
		return a.copyBackupToStdout(dst.path, n)
	}
	fmt.Fprintf(a.stderr, "backup written to %s (%d bytes); keep the server's KEK separately: a restore needs it\n", f.out, n)
	if gone := removeKilledBackups(filepath.Dir(f.out)); len(gone) > 0 {
		fmt.Fprintf(a.stderr, "removed what %d killed backup(s) left in %s: %s\n", len(gone), filepath.Dir(f.out), strings.Join(gone, ", "))
	}
	if f.output == "json" {
		return writeJSON(a.stdout, struct {
			Path   string `json:"path"`
			Bytes  int64  `json:"bytes"`
			SHA256 string `json:"sha256"`
		}{f.out, n, sum.hex()})
	}
	return nil
}

// receiveBackup writes the snapshot the server streams into dst, through
// sum, with progress on stderr, and checks it before it takes its place:
// a usable store, and still no live store at --out, which a server may
// have started on while the snapshot came.
func (a *app) receiveBackup(ctx context.Context, stream flinkpkiv1.AdminService_BackupClient, dst backupOut, sum *resultHash, out string) (int64, error) {
	progress := byteProgress(a.stderr, "backup", a.now)
	return dst.write(func(w io.Writer) error {
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
		if _, err := checkStoreFile(ctx, tmp); err != nil {
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

// prepareBackupOut checks --out before the server is asked for anything:
// not a database in use, not an existing file unless force, a folder that
// takes files; for "-" a standard output that is no terminal, the
// temporary directory, and no -o json result to share it with the backup.
func prepareBackupOut(out string, force bool, output outputFormat, stdout io.Writer) (backupOut, error) {
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
	if isTerminal(stdout) {
		return backupOut{}, usagef("--out - would write the binary snapshot (sealed CA keys, token hashes) to the terminal: pipe it (| ssh HOST flinkpki admin restore - ...) or redirect it (> FILE), or give --out FILE")
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

// isTerminal reports whether w is a terminal, where binary output must not
// go.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// removeKilledBackups removes from dir, where a backup was just written,
// the copies that killed backups left under other names, and returns their
// names. A date-stamped --out is never written again, so the clean-up of
// one name (atomicfile.RemoveLeftovers) never meets them, and they hold
// sealed CA keys, token hashes and audit entries. Only hidden temporary
// files (.NAME.tmp-*) that begin with a store's meta page and that no
// running backup holds locked go; a restore's leftover of the store itself
// (.flinkpki.db.tmp-*), which tells serve to refuse, stays.
func removeKilledBackups(dir string) []string {
	removed := atomicfile.RemoveUnusedIf(filepath.Join(dir, ".*.tmp-*"), func(p string) bool {
		st, err := os.Lstat(p)
		return err == nil && st.Mode().IsRegular() && !strings.HasPrefix(filepath.Base(p), "."+dbFileName+".tmp-") && bolt.LooksLikeStore(p)
	})
	for i, p := range removed {
		removed[i] = filepath.Base(p)
	}
	return removed
}
