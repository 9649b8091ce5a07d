//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal and returns its terminal side.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return tty
}

// TestABackupIsNotWrittenToATerminal: admin backup --out - on a terminal
// would put the store's pages (sealed CA keys, token hashes) into its
// scrollback: refused as a usage error before the server is asked (none
// runs here), saying how to pipe or redirect it. A pipe or a file is
// still fine (TestBackupToStandardOutputPairsWithRestoreFromStandardInput).
func TestABackupIsNotWrittenToATerminal(t *testing.T) {
	tty := openPTY(t)
	var errb bytes.Buffer
	a := &app{stdout: tty, stderr: &errb, getenv: func(string) string { return "" }, now: time.Now}
	code := a.run(context.Background(), []string{"admin", "backup", "--out", "-", "--server", freeAddr(t), "--token-file", writeFile(t, "token", "fpa_x")})
	oneLineError(t, result{code: code, stderr: errb.String()}, 2, "--out - would write the binary snapshot (sealed CA keys, token hashes) to the terminal")
	if isTerminal(&errb) || !isTerminal(tty) {
		t.Errorf("isTerminal tells a buffer (%v) from a terminal (%v) wrong", isTerminal(&errb), isTerminal(tty))
	}
}
