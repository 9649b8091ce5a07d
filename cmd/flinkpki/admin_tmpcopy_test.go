package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTheCopiesKilledPipedBackupsAndRestoresLeaveAreRemovedByTheNextRun:
// admin backup --out - and admin restore - keep a whole copy of the store
// (sealed CA keys, token hashes, the audit trail) in TMPDIR while they
// run. A run killed with SIGKILL (an OOM kill, a node crash) leaves its
// copy, one file per run, and the next run of either removes it.
func TestTheCopiesKilledPipedBackupsAndRestoresLeaveAreRemovedByTheNextRun(t *testing.T) {
	bin := flinkpkiBin(t)
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	backup := s.cli(t, s.admin, "admin", "backup", "--out", "-").ok(t).stdout
	tmp, data1, data2 := t.TempDir(), filepath.Join(t.TempDir(), "data"), filepath.Join(t.TempDir(), "data")
	t.Setenv("TMPDIR", tmp) // t.TempDir would make its directories there from now on
	env := append(os.Environ(), "FLINKPKI_SERVER="+s.addr, "FLINKPKI_CA_FILE="+s.caFile, "FLINKPKI_TOKEN_FILE="+s.admin)
	kill := func(cmd *exec.Cmd) {
		t.Helper()
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
	}

	// A backup killed while it sends its checked copy to a pipe that
	// takes 4 KiB: the first byte read says the copy is complete.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const fSetPipeSize = 1031 // F_SETPIPE_SZ
	if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, w.Fd(), fSetPipeSize, 4096); errno != 0 {
		t.Fatal(errno)
	}
	cmd := exec.Command(bin, "admin", "backup", "--out", "-")
	cmd.Env, cmd.Stdout = env, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := io.ReadFull(r, make([]byte, 1)); err != nil {
		t.Fatalf("read the backup's first byte: %v", err)
	}
	kill(cmd)
	if left := entries(t, tmp); len(left) != 1 {
		t.Fatalf("the killed backup left %v in TMPDIR, want its one copy", left)
	}

	// A restore killed while it reads half a backup from standard input.
	stdin, feed, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Close()
	cmd = exec.Command(bin, "admin", "restore", "-", "--data-dir", data1)
	cmd.Env, cmd.Stdin = env, stdin
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	go feed.Write([]byte(backup[:len(backup)/2]))
	for deadline := time.Now().Add(20 * time.Second); len(entries(t, tmp)) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("restore - made no copy in TMPDIR within 20s: %v", entries(t, tmp))
		}
	}
	kill(cmd)
	if left := entries(t, tmp); len(left) != 2 {
		t.Fatalf("the killed runs left %v in TMPDIR, want one copy each", left)
	}

	again := s.cli(t, s.admin, "admin", "backup", "--out", "-").ok(t)
	runCLIStdin(t, nil, strings.NewReader(again.stdout), "admin", "restore", "-", "--data-dir", data2).ok(t)
	if now := entries(t, tmp); len(now) > 0 {
		t.Errorf("TMPDIR holds %v after a backup --out - and a restore - ran to the end", now)
	}
}

// TestABackupLeavesTheStagingFileOfAnotherBackupOfTheSameFile: two admin
// backup --out FILE --force at once (a CronJob whose runs overlap). The
// first to finish removes the temporary files killed runs left beside
// FILE, but not the one the other run still writes, which it holds
// locked: that run would fail, blaming the snapshot the server sent. Nor
// is FILE, held shared for a moment by the other run that just renamed
// its copy there (or by a reader), taken for a running server's database.
func TestABackupLeavesTheStagingFileOfAnotherBackupOfTheSameFile(t *testing.T) {
	s := startServer(t, "")
	dir := t.TempDir()
	out := filepath.Join(dir, "nightly.db")
	killed, live := filepath.Join(dir, ".nightly.db.tmp-killed"), filepath.Join(dir, ".nightly.db.tmp-live")
	for _, p := range []string{killed, live, out} {
		if err := os.WriteFile(p, []byte("part of a snapshot"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{live, out} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
			t.Fatal(err)
		}
	}
	s.cli(t, s.admin, "admin", "backup", "--out", out, "--force").ok(t)
	if _, err := os.Stat(live); err != nil {
		t.Errorf("the staging file of a backup that is still going was removed: %v", err)
	}
	if _, err := os.Stat(killed); !os.IsNotExist(err) {
		t.Errorf("the staging file a killed backup left was kept: %v", err)
	}
}
