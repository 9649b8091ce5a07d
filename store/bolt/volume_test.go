package bolt

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/flinkpki/flinkpki/store"
)

// TestAFullVolumeIsUnavailableNotInternal: a commit that failed for want
// of room (or on a volume remounted read-only) left the store as it was and
// succeeds once room is made, so it is ErrUnavailable (clients retry; init
// does), named with the volume and what to do; other failures pass as they
// are. (Filled for real, on a small tmpfs, by hand: the message below is
// what the CLI printed.)
func TestAFullVolumeIsUnavailableNotInternal(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(filepath.Join(dir, "flinkpki.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	write := func(errno syscall.Errno) error {
		return &fs.PathError{Op: "write", Path: filepath.Join(dir, "flinkpki.db"), Err: errno}
	}
	for _, tt := range []struct {
		name string
		err  error
		want string // "" for passed as it is
	}{
		{"a full volume", write(syscall.ENOSPC), "is full: free space on it or grow it"},
		{"a quota reached", write(syscall.EDQUOT), "is full: free space on it or grow it"},
		{"a read-only volume", write(syscall.EROFS), "is read-only"},
		{"bbolt's resize, wrapped with %s", fmt.Errorf("file resize error: %s", write(syscall.ENOSPC)), "is full"},
		{"an I/O error", write(syscall.EIO), ""},
		{"a refusal of the transaction", store.ErrNotFound, ""},
	} {
		got := b.volumeErr(tt.err)
		if tt.want == "" {
			if got != tt.err {
				t.Errorf("%s: %v, want it passed as it is", tt.name, got)
			}
			continue
		}
		if !errors.Is(got, store.ErrUnavailable) || !strings.Contains(got.Error(), "the volume of "+dir+" "+tt.want) {
			t.Errorf("%s: %v, want ErrUnavailable naming the volume and %q", tt.name, got, tt.want)
		}
	}
	// Both write paths answer so (the failure comes from the transaction
	// function here, as it would from the commit).
	full := func(store.Tx) error { return write(syscall.ENOSPC) }
	if err := b.Update(t.Context(), full); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Update on a full volume: %v, want ErrUnavailable", err)
	}
	if err := b.Batch(t.Context(), full); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Batch on a full volume: %v, want ErrUnavailable", err)
	}
}
