package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMigrateRefusesATargetThatIsNoNewStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kek := writeKEK(t, dir, "kek")
	src := filepath.Join(dir, "source.db")
	newStoreAt(t, src, kek)
	link := filepath.Join(dir, "link.db")
	if err := os.Symlink("source.db", link); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero.db")
	os.WriteFile(zero, nil, 0o600)
	before := treeOf(t, dir)
	tests := []struct {
		name, to string
		code     int
		want     string
	}{
		{"the source itself", "bolt:" + src, 2, "are the same store"},
		{"the source by another name", "bolt:" + link, 2, "are the same store"},
		{"an empty file", "bolt:" + zero, 1, "is an empty file, not a store: remove it (migrate creates the target), or name another --to"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, nil, "admin", "migrate", "--from", "bolt:"+src, "--to", tt.to, "--kek-file", kek)
			oneLineError(t, r, tt.code, tt.want)
			if strings.Contains(r.stderr, "restore it from a backup") || strings.Contains(r.stderr, "locked by another") {
				t.Errorf("the refusal gives advice for another problem: %q", r.stderr)
			}
		})
	}
	assertUnchanged(t, dir, before)
}
