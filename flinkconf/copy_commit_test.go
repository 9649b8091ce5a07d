package flinkconf

// The commit of a copy: what it replaces, removes and keeps listed in the
// manifest, and what it leaves after a failure or a kill part way.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestACopyRemovesWhatItsSourceNoLongerHas: an output directory that
// outlived its pod (an emptyDir after a sandbox restart) keeps the earlier
// copy. The next copy removes the files the earlier one wrote and the
// source no longer has (a legacy flink-conf.yaml with the earlier run's
// passwords, which Flink 1.x would read first) and the temporary files of
// a killed run (its manifest's and its space probe's too), and keeps files
// it never wrote.
func TestACopyRemovesWhatItsSourceNoLongerHas(t *testing.T) {
	src1, src2, out := t.TempDir(), t.TempDir(), filepath.Join(t.TempDir(), "out")
	writeTree(t, src1, map[string]string{ConfigYAML: "a: 1\n", LegacyYAML: "a: 1\n", "log4j.properties": "x=y\n", "sub/extra.properties": "z=1\n"})
	writeTree(t, src2, map[string]string{ConfigYAML: "a: 2\n"})
	if err := CopyAndMerge(src1, out, testKeys(t, "/first")); err != nil {
		t.Fatal(err)
	}
	killed := map[string]string{"mine.txt": "not the copy's\n", "." + ConfigYAML + ".tmp-123": "old: password\n", "." + manifestName + ".tmp-456": ConfigYAML + "\n", ".flinkpki-probe-789/space": "\x00"}
	writeTree(t, out, killed)
	if err := CopyAndMerge(src2, out, testKeys(t, "/second")); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{LegacyYAML, "log4j.properties", "sub/extra.properties", "." + ConfigYAML + ".tmp-123", "." + manifestName + ".tmp-456", ".flinkpki-probe-789"} {
		if _, err := os.Lstat(filepath.Join(out, gone)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still in the output after a copy from a source without it (err %v)", gone, err)
		}
	}
	if string(readFile(t, filepath.Join(out, "mine.txt"))) != "not the copy's\n" {
		t.Error("the copy removed a file it never wrote")
	}
	assertMerged(t, flattenYAML(t, readFile(t, filepath.Join(out, ConfigYAML))), testKeys(t, "/second"))
}

// TestACommitCutShortLeavesNoFileTheManifestForgets: the manifest lists a
// copy's new files before the first is moved into place, so a commit cut
// short among its renames (a kill, here a rename that fails) leaves every
// file it put in place on the list, and the next copy can remove those
// its source no longer has.
func TestACommitCutShortLeavesNoFileTheManifestForgets(t *testing.T) {
	src, out := t.TempDir(), filepath.Join(t.TempDir(), "out")
	writeTree(t, src, map[string]string{ConfigYAML: "a: 1\n", "old.txt": "x\n"})
	if err := CopyAndMerge(src, out, testKeys(t, "/tls")); err != nil {
		t.Fatal(err)
	}
	src2 := t.TempDir()
	writeTree(t, src2, map[string]string{"a-new.txt": "n\n", ConfigYAML: "a: 2\n", "z.txt": "z\n"})
	c, err := ReadConf(src2, out)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Stage(testKeys(t, "/tls"))
	if err != nil {
		t.Fatal(err)
	}
	// z.txt cannot be moved into place: a non-empty directory took it.
	if err := os.MkdirAll(filepath.Join(out, "z.txt", "busy"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(); err == nil {
		t.Fatal("Commit moved a file onto a non-empty directory")
	}
	if _, err := os.Stat(filepath.Join(out, "a-new.txt")); err != nil {
		t.Fatalf("the file renamed before the failure is not in place: %v", err)
	}
	m := string(readFile(t, filepath.Join(out, manifestName)))
	for _, want := range []string{"a-new.txt", "old.txt", ConfigYAML} {
		if !slices.Contains(strings.Split(m, "\n"), want) {
			t.Errorf("after the cut-short commit the manifest lacks %s:\n%s", want, m)
		}
	}
	// The next copy, from a source with config.yaml alone, removes both.
	os.RemoveAll(filepath.Join(out, "z.txt"))
	copyConfigAloneRemoves(t, out, "a-new.txt", "old.txt")
}

// copyConfigAloneRemoves copies a source holding config.yaml alone into
// out and checks that the files gone are: a copy removes what the copies
// before it wrote and its source no longer has.
func copyConfigAloneRemoves(t *testing.T, out string, gone ...string) {
	t.Helper()
	src := t.TempDir()
	writeTree(t, src, map[string]string{ConfigYAML: "a: 3\n"})
	if err := CopyAndMerge(src, out, testKeys(t, "/tls")); err != nil {
		t.Fatal(err)
	}
	for _, g := range gone {
		if _, err := os.Stat(filepath.Join(out, g)); !os.IsNotExist(err) {
			t.Errorf("%s outlived the copies whose sources dropped it", g)
		}
	}
}

// TestACopyNeverReplacesAFileItDidNotWrite: an output directory holding
// files no copy wrote (an image's own /opt/flink/conf, a file someone put
// there) is refused when the configuration is read, naming the file,
// before anything is written; a file that holds what the source does may
// be replaced (nothing is lost), and so may the files an earlier copy
// wrote (the manifest lists them).
func TestACopyNeverReplacesAFileItDidNotWrite(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]string{ConfigYAML: "a: 1\n", "log4j.properties": "x=y\n"})
	for _, tt := range []struct {
		name, file, content string
		refused             bool
	}{
		{"another configuration", ConfigYAML, "my: own\n", true},
		{"another log4j file", "log4j.properties", "MY OWN\n", true},
		{"the source's own log4j file", "log4j.properties", "x=y\n", false},
		{"the source's own configuration", ConfigYAML, "a: 1\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			writeTree(t, out, map[string]string{tt.file: tt.content})
			_, err := ReadConf(src, out)
			if !tt.refused {
				if err != nil {
					t.Fatalf("ReadConf refused an output whose %s holds the source's own content: %v", tt.file, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), filepath.Join(out, tt.file)+" already exists and was not written by flinkpki (.flinkpki-conf-files does not list it)") {
				t.Fatalf("ReadConf over a foreign %s: err %v, want a refusal naming it", tt.file, err)
			}
			if got := string(readFile(t, filepath.Join(out, tt.file))); got != tt.content {
				t.Errorf("the refused copy changed %s: %q", tt.file, got)
			}
			if names, _ := os.ReadDir(out); len(names) != 1 {
				t.Errorf("the refused copy left %d entries in the output, want the one file", len(names))
			}
		})
	}
	// A second copy replaces what the first wrote.
	out := filepath.Join(t.TempDir(), "out")
	for i := range 2 {
		if err := CopyAndMerge(src, out, testKeys(t, fmt.Sprintf("/tls-%d", i))); err != nil {
			t.Fatalf("copy %d into an output only copies wrote: %v", i, err)
		}
	}
}

// TestACommitWhoseLastManifestWriteFailsIsDone: once every file is in
// place, a failure to narrow the manifest to this copy's files (a disk that
// filled meanwhile) is no failure of the copy: the manifest written before
// the renames lists them all, so the next copy still removes exactly what
// copies wrote. Commit succeeded; init and bake said the copy was not there.
func TestACommitWhoseLastManifestWriteFailsIsDone(t *testing.T) {
	src, out := t.TempDir(), filepath.Join(t.TempDir(), "out")
	writeTree(t, src, map[string]string{ConfigYAML: "a: 1\n", "old.txt": "x\n"})
	if err := CopyAndMerge(src, out, testKeys(t, "/tls")); err != nil {
		t.Fatal(err)
	}
	src2 := t.TempDir()
	writeTree(t, src2, map[string]string{ConfigYAML: "a: 2\n", "new.txt": "n\n"})
	c, err := ReadConf(src2, out)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	c.write.manifest = func(path string, data []byte, perm fs.FileMode) error {
		if calls++; calls == 2 {
			return errors.New("no space left on device")
		}
		return fileWrites.manifest(path, data, perm)
	}
	if err := c.Write(testKeys(t, "/tls-2")); err != nil {
		t.Fatalf("a copy whose files are all in place failed: %v", err)
	}
	if calls != 2 {
		t.Fatalf("the manifest was written %d times, want 2 (the union, then the narrowed list)", calls)
	}
	assertMerged(t, flattenYAML(t, readFile(t, filepath.Join(out, ConfigYAML))), testKeys(t, "/tls-2"))
	if _, err := os.Stat(filepath.Join(out, "new.txt")); err != nil {
		t.Errorf("new.txt is not in place: %v", err)
	}
	if m := strings.Split(string(readFile(t, filepath.Join(out, manifestName))), "\n"); !slices.Contains(m, "new.txt") || !slices.Contains(m, ConfigYAML) {
		t.Errorf("the manifest left in place lacks a file of the copy: %q", m)
	}
	copyConfigAloneRemoves(t, out, "new.txt", "old.txt")
}

// TestAFileACopyCouldNotRemoveStaysItsOwn: a file the previous copy wrote
// and the new source dropped, which the copy fails to remove, stays listed
// in the manifest: the copy says it failed, and a later copy whose source
// has that name again replaces it, as its own, instead of refusing it as a
// file no copy wrote.
func TestAFileACopyCouldNotRemoveStaysItsOwn(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	src1, src2, src3 := t.TempDir(), t.TempDir(), t.TempDir()
	writeTree(t, src1, map[string]string{ConfigYAML: "a: 1\n", "log4j.properties": "l1\n"})
	writeTree(t, src2, map[string]string{ConfigYAML: "a: 2\n"})
	writeTree(t, src3, map[string]string{ConfigYAML: "a: 3\n", "log4j.properties": "l3\n"})
	if err := CopyAndMerge(src1, out, testKeys(t, "/tls")); err != nil {
		t.Fatal(err)
	}
	c, err := ReadConf(src2, out)
	if err != nil {
		t.Fatal(err)
	}
	c.write.remove = func(string) error { return errors.New("operation not permitted") }
	if err := c.Write(testKeys(t, "/tls")); err == nil || !strings.Contains(err.Error(), "remove "+filepath.Join(out, "log4j.properties")) {
		t.Fatalf("a copy that could not remove a dropped file: %v, want the failure", err)
	}
	if m := strings.Split(string(readFile(t, filepath.Join(out, manifestName))), "\n"); !slices.Contains(m, "log4j.properties") {
		t.Fatalf("the manifest forgot the file the copy could not remove: %q", m)
	}
	if err := CopyAndMerge(src3, out, testKeys(t, "/tls")); err != nil {
		t.Fatalf("a copy over a file an earlier copy wrote: %v", err)
	}
	if got := string(readFile(t, filepath.Join(out, "log4j.properties"))); got != "l3\n" {
		t.Errorf("log4j.properties holds %q, want the new source's", got)
	}
}

// TestACopyKeepsSourceFilesNamedLikeLeftovers: the clean-up of what a
// killed run left beside a file (.a.tmp-*) runs only once every file of
// the copy is in place, and spares the copy's own files: a source holding
// a beside a.tmp-x (whose staged file is .a.tmp-x.tmp-N), or a hidden
// .a.tmp-x beside a, is copied whole.
func TestACopyKeepsSourceFilesNamedLikeLeftovers(t *testing.T) {
	src, out := t.TempDir(), filepath.Join(t.TempDir(), "out")
	files := map[string]string{ConfigYAML: "a: 1\n", "a": "one\n", "a.tmp-x": "two\n", ".a.tmp-y": "three\n"}
	writeTree(t, src, files)
	for i := range 2 { // into a new output, then over the first copy
		if err := CopyAndMerge(src, out, testKeys(t, "/tls")); err != nil {
			t.Fatalf("copy %d: %v", i, err)
		}
		for name, want := range files {
			if name == ConfigYAML {
				continue
			}
			if got, err := os.ReadFile(filepath.Join(out, name)); err != nil || string(got) != want {
				t.Errorf("copy %d: %s holds %q (%v), want %q", i, name, got, err, want)
			}
		}
	}
}

// TestACommitSyncsWhatItRenamedAndCreated: the renames of a copy outlast a
// power loss only once the directories they went into are synced, and a
// directory Stage created only once its parent is.
func TestACommitSyncsWhatItRenamedAndCreated(t *testing.T) {
	src, base := t.TempDir(), t.TempDir()
	out := filepath.Join(base, "conf")
	writeTree(t, src, map[string]string{ConfigYAML: "a: 1\n", "sub/deep/x.properties": "x=1\n"})
	c, err := ReadConf(src, out)
	if err != nil {
		t.Fatal(err)
	}
	var synced []string
	c.write.sync = func(dir string) error {
		synced = append(synced, dir)
		return fileWrites.sync(dir)
	}
	if err := c.Write(testKeys(t, "/tls")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{base, out, filepath.Join(out, "sub"), filepath.Join(out, "sub", "deep")} {
		if !slices.Contains(synced, want) {
			t.Errorf("the copy did not sync %s (synced %v)", want, synced)
		}
	}
}
