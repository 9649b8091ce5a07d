package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWriteFailuresNameTheUsersPathAndSayWhatToDo(t *testing.T) {
	tmp := "/backups/.b.db.tmp-2876882063"
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"a full volume", &fs.PathError{Op: "write", Path: tmp, Err: syscall.ENOSPC},
			"cannot write /backups/b.db: no space left on device; free space there, or choose another --out"},
		{"a folder without permission", fmt.Errorf("create temporary file: %w", &fs.PathError{Op: "open", Path: tmp, Err: syscall.EACCES}),
			"cannot write /backups/b.db: permission denied; choose a folder you can write to with --out"},
		{"a read-only volume at the rename", &os.LinkError{Op: "rename", Old: tmp, New: "/backups/b.db", Err: syscall.EROFS},
			"cannot write /backups/b.db: read-only file system; choose a folder you can write to with --out"},
		{"the server's own error", worded{errors.New("flinkpki at x cannot serve the request now")}, "flinkpki at x cannot serve the request now"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := writeFailure("/backups/b.db", "--out", tt.err).Error()
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// fill writes a file of n bytes into dir, as far as it goes.
func fill(t *testing.T, dir string, n int) {
	t.Helper()
	_ = os.WriteFile(filepath.Join(dir, "fill"), make([]byte, n), 0o600)
}

func TestBackupToAFullVolumeIsRefusedBeforeTheServerIsAsked(t *testing.T) {
	vol := smallTmpfs(t, 128<<10)
	fill(t, vol, 100<<10)
	s := startServer(t, "")
	out := filepath.Join(vol, "b.db")
	r := s.cli(t, s.admin, "admin", "backup", "--out", out)
	oneLineError(t, r, 1, "cannot write "+out+": no space left on device; free space there, or choose another --out")
	for _, e := range auditEntries(t, s, "") {
		if e.Action == "store.backup" {
			t.Errorf("the server was asked for a backup the client could not write: %+v", e)
		}
	}
}

func TestARestoreThatCannotBeWrittenLeavesNoDataDirectoryBehind(t *testing.T) {
	s := startServer(t, "")
	backup := filepath.Join(t.TempDir(), "b.db")
	s.cli(t, s.admin, "admin", "backup", "--out", backup).ok(t)
	vol := smallTmpfs(t, 128<<10)
	fill(t, vol, 100<<10) // room for the folders, not for the store
	dataDir := filepath.Join(vol, "new", "data")
	r := runCLI(t, nil, "admin", "restore", backup, "--data-dir", dataDir)
	oneLineError(t, r, 1, "cannot write "+filepath.Join(dataDir, dbFileName)+": no space left on device; free space there, or choose another --data-dir")
	if strings.Contains(r.stderr, ".tmp-") {
		t.Errorf("the refusal names the temporary file: %q", r.stderr)
	}
	if _, err := os.Lstat(filepath.Join(vol, "new")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the failed restore left the folders it made: %v", entries(t, vol))
	}
}

func TestRestoreIntoAFileSaysSo(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, "")
	backup := filepath.Join(dir, "b.db")
	s.cli(t, s.admin, "admin", "backup", "--out", backup).ok(t)
	file := filepath.Join(dir, "tok")
	os.WriteFile(file, []byte("x"), 0o600)
	oneLineError(t, runCLI(t, nil, "admin", "restore", backup, "--data-dir", file), 2, "--data-dir "+file+" is a file, not a directory")
	// A link to a directory that does not exist: not mkdir's "file exists".
	link := filepath.Join(dir, "dl")
	os.Symlink(filepath.Join(dir, "missing"), link)
	oneLineError(t, runCLI(t, nil, "admin", "restore", backup, "--data-dir", link), 1, "--data-dir: "+link+" is a symbolic link to "+filepath.Join(dir, "missing")+", which does not exist")
}

// TestRestoreOfNoBackupSaysSo: a missing file, or an empty one (a backup
// that was never written, or empty standard input), is named as such, not
// as a damaged database.
func TestRestoreOfNoBackupSaysSo(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	oneLineError(t, runCLI(t, nil, "admin", "restore", missing, "--data-dir", filepath.Join(dir, "d1")), 1, "read the backup "+missing+": no such file or directory")
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o600)
	oneLineError(t, runCLI(t, nil, "admin", "restore", empty, "--data-dir", filepath.Join(dir, "d2")), 1, empty+" is empty, not a backup")
	for _, d := range []string{"d1", "d2"} {
		if _, err := os.Stat(filepath.Join(dir, d)); !os.IsNotExist(err) {
			t.Errorf("a refused restore made its data directory %s: %v", d, err)
		}
	}
}

// TestAConfigurationCopyInsideItsSourceIsAUsageError: --flink-conf-out
// inside --flink-conf-src would be copied into the next copy; like --out
// there, it is refused before anything is asked of the server, exit 2.
func TestAConfigurationCopyInsideItsSourceIsAUsageError(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "config.yaml"), []byte("taskmanager.numberOfTaskSlots: 2\n"), 0o644)
	r := runCLI(t, nil, "bake", "--server", "127.0.0.1:1", "--token-file", filepath.Join(src, "config.yaml"), "--cluster", "orders", "--role", "jobmanager",
		"--holder", "jm-0", "--out", filepath.Join(t.TempDir(), "tls"), "--flink-conf-src", src, "--flink-conf-out", filepath.Join(src, "copy"))
	oneLineError(t, r, 2, "--flink-conf-out "+filepath.Join(src, "copy")+" is or lies inside --flink-conf-src "+src)
}
