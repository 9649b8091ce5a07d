package credentials_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flinkpki/flinkpki/credentials"
	"github.com/flinkpki/flinkpki/keystore"
)

// dataDirs lists the hidden timestamped data directories in dir.
func dataDirs(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "..") {
			out = append(out, e.Name())
		}
	}
	return out
}

// checkWritten compares every file of fs with what dir shows, following
// the symlinks as a reader would.
func checkWritten(t testing.TB, fs *credentials.FileSet, dir string) {
	t.Helper()
	for _, f := range fs.Files {
		p := filepath.Join(dir, f.Name)
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("stat %s: %v", p, err)
		}
		if st.Mode().Perm() != f.Mode {
			t.Errorf("%s has mode %v, want %v", f.Name, st.Mode().Perm(), f.Mode)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, f.Data) {
			t.Errorf("%s on disk differs from the built set", f.Name)
		}
	}
}

func TestWriteCreatesTheDirectoryAndTheFiles(t *testing.T) {
	c := newCluster(t, "write", "ecdsa-p256", 10)
	dir := filepath.Join(t.TempDir(), "nested", "out")
	fs := buildAndWrite(t, c.material(t, "jm", "ecdsa-p256", 0), keystore.PKCS12, dir)
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("created directory has mode %v, want 0700", st.Mode().Perm())
	}
	checkWritten(t, fs, dir)
	if d := dataDirs(t, dir); len(d) != 1 {
		t.Errorf("data directories = %v, want exactly one", d)
	}
}

// TestWriteTakesOthersWriteOffAnExistingDirectory: an existing --out that
// group or others may write (made with a loose umask, say) would let them
// swap the set's symlinks for stores of their own: Write takes that
// permission off a directory of its own user and leaves reading as it
// was. A sticky directory, where nobody else can replace our names, keeps
// its mode.
func TestWriteTakesOthersWriteOffAnExistingDirectory(t *testing.T) {
	c := newCluster(t, "write", "ecdsa-p256", 10)
	for _, tc := range []struct {
		mode, want os.FileMode
	}{
		{0o777, 0o755},
		{0o775 | os.ModeSetgid, 0o755 | os.ModeSetgid},
		{0o750, 0o750},
		{0o777 | os.ModeSticky, 0o777 | os.ModeSticky},
	} {
		dir := filepath.Join(t.TempDir(), "out")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, tc.mode); err != nil {
			t.Fatal(err)
		}
		fs := buildAndWrite(t, c.material(t, "jm", "ecdsa-p256", 0), keystore.PKCS12, dir)
		st, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode() &^ os.ModeDir; got != tc.want {
			t.Errorf("an existing directory of mode %v has mode %v after Write, want %v", tc.mode, got, tc.want)
		}
		checkWritten(t, fs, dir)
	}
}

func TestWriteAgainSwapsTheSetAndRemovesTheOldOne(t *testing.T) {
	c := newCluster(t, "rewrite", "ecdsa-p256", 10)
	m := c.material(t, "tm", "ecdsa-p256", 0)
	dir := t.TempDir()
	first := buildAndWrite(t, m, keystore.PKCS12, dir)
	oldData := dataDirs(t, dir)
	second := buildAndWrite(t, m, keystore.PKCS12, dir)
	if bytes.Equal(first.File("keystore.password").Data, second.File("keystore.password").Data) {
		t.Fatal("two builds produced the same password")
	}
	checkWritten(t, second, dir)
	newData := dataDirs(t, dir)
	if len(newData) != 1 || newData[0] == oldData[0] {
		t.Errorf("data directories after rewrite = %v (before: %v), want one new directory", newData, oldData)
	}

	// A format change replaces keystore.p12 by keystore.jks.
	third := buildAndWrite(t, m, keystore.JKS, dir)
	checkWritten(t, third, dir)
	for _, gone := range []string{"keystore.p12", "truststore.p12"} {
		if _, err := os.Lstat(filepath.Join(dir, gone)); !os.IsNotExist(err) {
			t.Errorf("%s still exists after switching to JKS: %v", gone, err)
		}
	}
}

func TestWriteRefusesAndChangesNothing(t *testing.T) {
	c := newCluster(t, "refuse-write", "ecdsa-p256", 10)
	m := c.material(t, "jm", "ecdsa-p256", 0)
	tests := []struct {
		name  string
		setup func(t *testing.T, base string) string // returns the --out dir
		want  string
	}{
		{"an output path that is a regular file is refused", func(t *testing.T, base string) string {
			p := filepath.Join(base, "file")
			writeTestFile(t, p, "keep me")
			return p
		}, "is not a directory"},
		// Tests run as root, which ignores permission bits; a path below a
		// regular file is unwritable for everyone.
		{"an output path below a regular file cannot be created", func(t *testing.T, base string) string {
			writeTestFile(t, filepath.Join(base, "file"), "keep me")
			return filepath.Join(base, "file", "out")
		}, "cannot"},
		{"a visible name that is a regular file is not clobbered", func(t *testing.T, base string) string {
			dir := filepath.Join(base, "out")
			writeTestFile(t, filepath.Join(dir, "tls.crt"), "keep me")
			return dir
		}, "not written by flinkpki"},
		{"a visible name that is a foreign symlink is not clobbered", func(t *testing.T, base string) string {
			dir := filepath.Join(base, "out")
			writeTestFile(t, filepath.Join(dir, "elsewhere"), "keep me")
			if err := os.Symlink("elsewhere", filepath.Join(dir, "ca.crt")); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "not written by flinkpki"},
		{"a ..data that is not our symlink is refused", func(t *testing.T, base string) string {
			dir := filepath.Join(base, "out")
			writeTestFile(t, filepath.Join(dir, "..data", "x"), "keep me")
			return dir
		}, "not a flinkpki symlink"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			dir := tt.setup(t, base)
			before := snapshot(t, base)
			// Check, run before anything is issued, refuses the same.
			if err := credentials.Check(credentials.Options{Format: keystore.PKCS12, Dir: dir}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Check error = %v, want one mentioning %q", err, tt.want)
			}
			fs := build(t, m, keystore.PKCS12, "/out")
			err := fs.Write(dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Write error = %v, want one mentioning %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if after := snapshot(t, base); after != before {
				t.Errorf("a refused write changed the tree:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func TestCheckCoversEveryNameOfTheSetAndWritesNothing(t *testing.T) {
	c := newCluster(t, "check", "ecdsa-p256", 10)
	m := c.material(t, "tm", "ecdsa-p256", 0)
	for _, f := range []keystore.Format{keystore.PKCS12, keystore.JKS} {
		for _, rest := range []bool{false, true} {
			base := t.TempDir()
			o := credentials.Options{Format: f, Dir: filepath.Join(base, "out"), REST: rest}
			before := snapshot(t, base)
			if err := credentials.Check(o); err != nil {
				t.Fatalf("Check(missing dir) = %v", err)
			}
			if after := snapshot(t, base); after != before {
				t.Fatalf("Check wrote into the tree:\nbefore %s\nafter  %s", before, after)
			}
			// A set written before may be replaced.
			fs := buildAndWrite(t, m, f, o.Dir, func(x *credentials.Options) { x.REST = rest })
			if err := credentials.Check(o); err != nil {
				t.Fatalf("Check(dir of an earlier set) = %v", err)
			}
			// Any name the set writes, held by someone else, is refused.
			for _, file := range fs.Files {
				dir := filepath.Join(t.TempDir(), "out")
				writeTestFile(t, filepath.Join(dir, file.Name), "keep me")
				o.Dir = dir
				if err := credentials.Check(o); err == nil || !strings.Contains(err.Error(), "not written by flinkpki") {
					t.Errorf("%s %v: Check with a foreign %s = %v, want a refusal", f, rest, file.Name, err)
				}
			}
		}
	}
	o := credentials.Options{Dir: filepath.Join(t.TempDir(), "my tls")}
	if err := credentials.Check(o); err == nil || !strings.Contains(err.Error(), "unquoted") {
		t.Errorf("Check(a directory with a space) = %v, want a refusal", err)
	}
}

func TestWriteFailureRemovesTheDirectoryItCreated(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "new", "out")
	fs := &credentials.FileSet{Files: []credentials.File{
		{Name: "good", Data: []byte("x"), Mode: 0o600},
		{Name: "../escape", Data: []byte("x"), Mode: 0o600},
	}}
	if err := fs.Write(dir); err == nil {
		t.Fatal("Write accepted a file name with a path separator")
	}
	if entries, _ := os.ReadDir(base); len(entries) != 0 {
		t.Errorf("failed Write left %v behind in %s (it created %s and its parent)", entries, base, dir)
	}
}

func writeTestFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// snapshot describes a tree (names, link targets, file contents) so that
// "nothing changed" can be asserted.
func snapshot(t testing.TB, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		b.WriteString(rel + " " + info.Mode().String())
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			b.WriteString(" -> " + target)
		case info.Mode().IsRegular():
			data, _ := os.ReadFile(p)
			b.WriteString(" " + string(data))
		}
		b.WriteString("; ")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
