package credentials

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestOneRunHoldsAnOutputDirectory: a second lock on a held directory is
// refused at once, changing nothing; a directory the lock made is removed
// again unless the run wrote into it (Keep).
func TestOneRunHoldsAnOutputDirectory(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a", "tls")
	first, err := LockDir(dir)
	if err != nil {
		t.Fatalf("first lock: %v", err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
		t.Fatalf("the locked directory: %v, %v; want a directory of mode 0700", st, err)
	}
	if _, err := LockDir(dir); !errors.Is(err, ErrBusy) {
		t.Fatalf("a second lock while the first is held: %v, want ErrBusy", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the refused lock removed the held directory: %v", err)
	}
	first.Release()
	if _, err := os.Stat(filepath.Dir(dir)); !os.IsNotExist(err) {
		t.Fatalf("a run that wrote nothing left the directories its lock made: %v", err)
	}

	second, err := LockDir(dir)
	if err != nil {
		t.Fatalf("a lock after the first was released: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	second.Keep()
	second.Release()
	if _, err := os.Stat(filepath.Join(dir, "f")); err != nil {
		t.Fatalf("a kept directory is gone: %v", err)
	}
}
