package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestABakeUnderALiveHoldersNameSaysWhatItReplaces: baking an image again
// under the holder name of the last one supersedes the record of the
// earlier image, whose pods may still run; rotation would then no longer
// wait for them. bake says so on stderr, naming the serial it replaced,
// and -o json carries it; a first bake says nothing of the kind.
func TestABakeUnderALiveHoldersNameSaysWhatItReplaces(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "img").ok(t)
	bake := func() (result, issueJSON) {
		t.Helper()
		r := s.cli(t, s.admin, "bake", "--cluster", "img", "--role", "taskmanager", "--holder", "tm-image",
			"--out", filepath.Join(t.TempDir(), "tls"), "-o", "json").ok(t)
		var j issueJSON
		if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
			t.Fatalf("bake -o json: %v\n%s", err, r.stdout)
		}
		return r, j
	}
	r, first := bake()
	if first.Superseded != nil || strings.Contains(r.stderr, "replaces the live credentials") {
		t.Fatalf("a first bake reports a superseded holder: %+v\n%s", first.Superseded, r.stderr)
	}
	r, second := bake()
	if s := second.Superseded; s == nil || s.Serial != first.Serial || s.NotAfter != first.NotAfter || !strings.HasPrefix(s.Actor, "admin:") {
		t.Fatalf("a second bake under the live name: superseded %+v, want the first bake's serial %s", s, first.Serial)
	}
	want := `note: this replaces the live credentials of holder "tm-image" (serial ` + first.Serial + ", valid until " + first.NotAfter
	if !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "give each process its own --holder") {
		t.Errorf("the second bake's stderr does not say what it replaced (%q):\n%s", want, r.stderr)
	}
}
