package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCloseToOthersChangesOnlyTheDirectoryItNames: a directory others may
// write loses that permission and keeps the rest (setgid too); a sticky
// one keeps its mode; a symbolic link, to a directory or to a file of the
// same user (say, a key that a link swapped in for the output points at),
// is not followed, and what it points at keeps its mode.
func TestCloseToOthersChangesOnlyTheDirectoryItNames(t *testing.T) {
	base := t.TempDir()
	mk := func(name string, mode os.FileMode, dir bool) string {
		t.Helper()
		p := filepath.Join(base, name)
		var err error
		if dir {
			err = os.Mkdir(p, 0o700)
		} else {
			err = os.WriteFile(p, nil, 0o600)
		}
		if err == nil {
			err = os.Chmod(p, mode)
		}
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	mode := func(p string) os.FileMode {
		t.Helper()
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode() &^ os.ModeDir
	}
	open := mk("open", 0o777, true)
	group := mk("group", 0o775|os.ModeSetgid, true)
	sticky := mk("sticky", 0o777|os.ModeSticky, true)
	target := mk("target", 0o777, true)
	key := mk("key", 0o600, false)
	for _, l := range [][2]string{{target, "dirlink"}, {key, "filelink"}} {
		if err := os.Symlink(l[0], filepath.Join(base, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		path    string
		changed bool
		check   string
		want    os.FileMode
	}{
		{open, true, open, 0o755},
		{group, true, group, 0o755 | os.ModeSetgid},
		{sticky, false, sticky, 0o777 | os.ModeSticky},
		{filepath.Join(base, "dirlink"), false, target, 0o777},
		{filepath.Join(base, "filelink"), false, key, 0o600},
	} {
		if got := CloseToOthers(tt.path); got != tt.changed {
			t.Errorf("CloseToOthers(%s) = %v, want %v", filepath.Base(tt.path), got, tt.changed)
		}
		if got := mode(tt.check); got != tt.want {
			t.Errorf("after CloseToOthers(%s), %s has mode %v, want %v", filepath.Base(tt.path), filepath.Base(tt.check), got, tt.want)
		}
	}
}
