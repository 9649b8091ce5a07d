package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestWriteReplacesWholeWithTheModeAndLeavesNoTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("new content"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "new content" {
		t.Fatalf("content = %q, %v", got, err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Errorf("directory holds %d entries, want only the file", len(es))
	}
}

func TestAFailedFillOrCheckLeavesTheOldFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	fill := func(w io.Writer) error { _, err := w.Write([]byte("half")); return err }
	for name, run := range map[string]func() (int64, error){
		"fill":  func() (int64, error) { return WriteFrom(p, 0o600, func(io.Writer) error { return boom }, nil) },
		"check": func() (int64, error) { return WriteFrom(p, 0o600, fill, func(string) error { return boom }) },
	} {
		if _, err := run(); !errors.Is(err, boom) {
			t.Fatalf("%s: err = %v, want boom", name, err)
		}
		if got, _ := os.ReadFile(p); string(got) != "old" {
			t.Fatalf("%s: the file became %q", name, got)
		}
		if es, _ := os.ReadDir(dir); len(es) != 1 {
			t.Fatalf("%s: a temporary file was left behind (%d entries)", name, len(es))
		}
	}
	n, err := WriteFrom(p, 0o600, fill, func(tmp string) error {
		if b, _ := os.ReadFile(tmp); string(b) != "half" {
			return errors.New("check did not see the synced content")
		}
		return nil
	})
	if err != nil || n != 4 {
		t.Fatalf("WriteFrom = %d, %v; want 4 bytes", n, err)
	}
}

func TestCheckDirLeavesNothingAndRefusesAPathUnderAFile(t *testing.T) {
	dir := t.TempDir()
	if err := CheckDir(dir); err != nil {
		t.Fatalf("CheckDir(existing dir) = %v", err)
	}
	missing := filepath.Join(dir, "a", "b")
	if err := CheckDir(missing); err != nil {
		t.Fatalf("CheckDir(missing dir under a writable one) = %v", err)
	}
	if es, _ := os.ReadDir(dir); len(es) != 0 {
		t.Errorf("CheckDir left %v behind", es)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, filepath.Join(file, "sub")} {
		if err := CheckDir(p); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("CheckDir(%s) = %v, want a refusal naming a non-directory", p, err)
		}
	}
}

// TestCheckDirRefusesADanglingLink: a symbolic link whose target does not
// exist looks missing to os.Stat, but os.MkdirAll cannot create it, so
// CheckDir refuses it (and a path below it), naming the link and its
// target, instead of probing its parent and passing.
func TestCheckDirRefusesADanglingLink(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "tls")
	if err := os.Symlink("target-missing", link); err != nil {
		t.Fatal(err)
	}
	want := link + " is a symbolic link to " + filepath.Join(dir, "target-missing") + ", which does not exist"
	for _, p := range []string{link, filepath.Join(link, "sub")} {
		err := CheckDir(p)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckDir(%s) = %v, want %q", p, err, want)
		}
		if err := os.MkdirAll(p, 0o700); err == nil {
			t.Fatalf("MkdirAll(%s) succeeded: the link is not in the way, the test proves nothing", p)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("CheckDir left %d entries, want the link alone", len(entries))
	}
	// A link to a directory that exists is a directory like any other.
	if err := os.Mkdir(filepath.Join(dir, "target-missing"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := CheckDir(link); err != nil {
		t.Errorf("CheckDir(a link to a directory) = %v", err)
	}
	if err := DanglingLink(filepath.Join(dir, "nothing")); err != nil {
		t.Errorf("DanglingLink(a missing path) = %v, want nil", err)
	}
}

// TestCheckDirRemovesProbesKilledRunsLeft: a run killed while probing
// leaves its probe directory (a probe's bytes); the next CheckDir there
// removes it at once, as its file is no longer locked, but keeps the probe
// of a run that is going: its file locked, or, in the moment between the
// directory and its file, a recent directory without one. An old one
// without its file is a killed run's. (TestCheckDirRoomProbesForWhatItIsAskedFor
// checks the size.)
func TestCheckDirRemovesProbesKilledRunsLeft(t *testing.T) {
	dir := t.TempDir()
	probe := func(name string) string { return filepath.Join(dir, ".flinkpki-probe-"+name) }
	for _, name := range []string{"killed", "running", "starting", "old-empty"} {
		if err := os.MkdirAll(probe(name), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"killed", "running"} {
		os.WriteFile(filepath.Join(probe(name), "space"), make([]byte, 1024), 0o600)
	}
	f, err := os.Open(filepath.Join(probe("running"), "space"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(probe("old-empty"), past, past); err != nil {
		t.Fatal(err)
	}
	if err := CheckDirRoom(dir, 1<<20); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"killed": false, "running": true, "starting": true, "old-empty": false} {
		if _, err := os.Stat(probe(name)); (err == nil) != want {
			t.Errorf("probe directory %q: kept = %v, want %v", name, err == nil, want)
		}
	}
}

// TestRemoveLeftoversKeepsAWriteThatIsGoing: two writers of one path (two
// admin backup --out FILE at once): the first to finish removes the
// temporary files killed runs left, but not the one the other is still
// writing and checking, which it holds locked; that one then finishes too.
func TestRemoveLeftoversKeepsAWriteThatIsGoing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "backup.db")
	killed := filepath.Join(dir, ".backup.db.tmp-killed")
	if err := os.WriteFile(killed, []byte("old secrets"), 0o600); err != nil {
		t.Fatal(err)
	}
	fill := func(w io.Writer) error { _, err := w.Write([]byte("second")); return err }
	_, err := WriteFrom(p, 0o600, fill, func(tmp string) error {
		// The first writer finishes while this one checks its file.
		if err := Write(p, []byte("first"), 0o600); err != nil {
			return err
		}
		RemoveLeftovers(p)
		if _, err := os.Stat(tmp); err != nil {
			return fmt.Errorf("the other writer's clean-up removed this one's file: %w", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); string(got) != "second" {
		t.Errorf("%s holds %q, want the second write", p, got)
	}
	if _, err := os.Stat(killed); !os.IsNotExist(err) {
		t.Errorf("the killed run's temporary file was kept: %v", err)
	}
	if inUse, err := InUse(p); err != nil || inUse {
		t.Errorf("InUse(the file in place) = %v, %v: its write left it locked", inUse, err)
	}
}

// TestCreateLockedIsKeptUntilClosed: RemoveUnused, which a run calls first
// to remove what killed runs left under its pattern, keeps a file another
// run holds (CreateLocked), and removes it once it is closed (a kill).
func TestCreateLockedIsKeptUntilClosed(t *testing.T) {
	dir := t.TempDir()
	f, err := CreateLocked(dir, "copy-*.db")
	if err != nil {
		t.Fatal(err)
	}
	if removed := RemoveUnused(filepath.Join(dir, "copy-*.db")); len(removed) != 0 {
		t.Fatalf("RemoveUnused removed %v, a file in use", removed)
	}
	f.Close()
	if removed := RemoveUnused(filepath.Join(dir, "copy-*.db")); !slices.Equal(removed, []string{f.Name()}) {
		t.Fatalf("RemoveUnused removed %v, want the closed file %s", removed, f.Name())
	}
}

// TestCheckDirRoomProbesForWhatItIsAskedFor: CheckDirRoom writes as much as
// it is asked for, so a volume with room for the default probe but not for
// a large copy is refused. The volume is a 1 MiB tmpfs (root mounts it);
// without root the test fails and says why.
func TestCheckDirRoomProbesForWhatItIsAskedFor(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("mounting a small tmpfs needs root; run the tests as root (CI does)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a 1 MiB tmpfs: %v: %s", err, out)
	}
	defer exec.Command("umount", dir).Run()
	if err := CheckDirRoom(dir, 512<<10); err != nil {
		t.Fatalf("512 KiB on a 1 MiB volume: %v", err)
	}
	if err := CheckDirRoom(dir, 2<<20); err == nil || !strings.Contains(err.Error(), "cannot write 2048 KiB") {
		t.Fatalf("2 MiB on a 1 MiB volume: %v, want it refused with the size", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the probes left %d entries", len(entries))
	}
}

// TestMkdirAllReturnsWhatItCreated: MkdirAll names the directories it made,
// outermost first, and none that were there, so RemoveDirs undoes exactly
// its work and leaves the rest (a directory that was there, or one that
// holds something now).
func TestMkdirAllReturnsWhatItCreated(t *testing.T) {
	base := t.TempDir()
	created, err := MkdirAll(filepath.Join(base, "a", "b", "c"), 0o700)
	want := []string{filepath.Join(base, "a"), filepath.Join(base, "a", "b"), filepath.Join(base, "a", "b", "c")}
	if err != nil || !slices.Equal(created, want) {
		t.Fatalf("MkdirAll = %v, %v; want %v", created, err, want)
	}
	if again, err := MkdirAll(filepath.Join(base, "a", "b", "d"), 0o700); err != nil || !slices.Equal(again, []string{filepath.Join(base, "a", "b", "d")}) {
		t.Fatalf("MkdirAll beside existing directories = %v, %v; want only the new one", again, err)
	}
	RemoveDirs(created) // a/b holds d, so a/b and a stay
	if _, err := os.Stat(filepath.Join(base, "a", "b", "d")); err != nil {
		t.Errorf("RemoveDirs removed a directory that holds another: %v", err)
	}
	if _, err := os.Stat(filepath.Join(base, "a", "b", "c")); !os.IsNotExist(err) {
		t.Errorf("RemoveDirs kept the empty directory MkdirAll made: %v", err)
	}
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o600)
	if got, err := MkdirAll(filepath.Join(file, "x"), 0o700); err == nil || len(got) != 0 {
		t.Errorf("MkdirAll below a file = %v, %v; want an error and nothing created", got, err)
	}
}

// TestHeldForWritingSeesOnlyAnExclusiveLock: a bbolt writer (a server)
// holds its file exclusively, a reader or a WriteFrom shared; only the
// first counts, and the probe disturbs no other probe.
func TestHeldForWritingSeesOnlyAnExclusiveLock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "db")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		lock int
		want bool
	}{{syscall.LOCK_SH, false}, {syscall.LOCK_EX, true}} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(f.Fd()), c.lock); err != nil {
			t.Fatal(err)
		}
		if got, err := HeldForWriting(p); err != nil || got != c.want {
			t.Errorf("HeldForWriting with lock %d held = %v, %v; want %v", c.lock, got, err, c.want)
		}
		f.Close()
	}
}
