package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAFullDataVolumeIsUnavailableAndRecovers fills the data volume of a
// running server: a write is then refused UNAVAILABLE, on one line naming
// the volume and what to do (so init retries, and nobody reads an internal
// error), it changes nothing, and once room is made the same request works
// and the audit trail is whole.
func TestAFullDataVolumeIsUnavailableAndRecovers(t *testing.T) {
	vol := smallTmpfs(t, 2<<20)
	dir := filepath.Join(vol, "data")
	s := startServer(t, dir, "--rotation-interval", "0", "--holder-retention", "0")
	s.cli(t, s.admin, "cluster", "create", "c1").ok(t)
	filler := filepath.Join(vol, "fill")
	_ = os.WriteFile(filler, make([]byte, 4<<20), 0o600) // as far as it goes
	before := s.cli(t, s.admin, "cluster", "list", "-o", "json").ok(t).stdout

	r := s.cli(t, s.admin, "cluster", "create", "c2")
	oneLineError(t, r, 1, "cannot serve the request now: store unavailable: the volume of "+dir+" is full: free space on it or grow it")
	if strings.Contains(r.stderr, "internal error") {
		t.Errorf("a full volume reads as an internal error: %s", r.stderr)
	}
	if now := s.cli(t, s.admin, "cluster", "list", "-o", "json").ok(t).stdout; now != before {
		t.Errorf("a write refused on a full volume changed the clusters:\nbefore %s\nafter  %s", before, now)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s.cli(t, s.admin, "cluster", "create", "c2").ok(t)
	s.cli(t, s.admin, "audit", "verify").ok(t)
}
