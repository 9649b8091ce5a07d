//go:build unix

package bolt_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/store/bolt"
)

// TestHealthyAnswersWithinItsContext: serve gives each check a 2 s
// context; a volume that hangs (an NFS hard mount, a stalled block device)
// must turn the check into a failure at that deadline, not block the
// health watch for ever with the status stuck at SERVING, and later checks
// fail at once instead of piling up writes behind the hung one. A FIFO in
// place of the health file stands in for a write that never returns.
// (From the review of this change.)
func TestHealthyAnswersWithinItsContext(t *testing.T) {
	dir := t.TempDir()
	b, err := bolt.Open(filepath.Join(dir, "flinkpki.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, ".flinkpki-health")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.Healthy(ctx) }()
	var res error
	hung := false
	select {
	case res = <-done:
		// The hung write is still there: the next check does not start
		// another one.
		if err := b.Healthy(context.Background()); err == nil || !strings.Contains(err.Error(), "has not finished the previous check's write") {
			t.Errorf("a check behind a hung write: %v, want it failed at once", err)
		}
		if f, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			defer f.Close()
		}
	case <-time.After(5 * time.Second):
		hung = true
		// Release the blocked open, and let Healthy end before Close.
		if f, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			res = <-done
			f.Close()
		}
	}
	b.Close()
	if hung {
		t.Fatal("Healthy ignored its context: a hung volume keeps the health SERVING")
	}
	if res == nil {
		t.Error("Healthy passed on a write that cannot complete")
	}
}
