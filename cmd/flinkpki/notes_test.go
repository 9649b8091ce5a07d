package main

import (
	"strings"
	"testing"
)

// TestAShortLeafValidityIsCalledOut: Flink reads its keystores only at
// start, so leaves shorter than a streaming job's pods live break new
// connections of a long-running process; cluster create says so (the
// cluster is still made: a test cluster may want that), and says nothing
// for a validity of a week or more.
func TestAShortLeafValidityIsCalledOut(t *testing.T) {
	s := startServer(t, "")
	r := s.cli(t, s.admin, "cluster", "create", "short", "--leaf-validity", "1h").ok(t)
	if !strings.Contains(r.stderr, "note: leaves valid for 1h: Flink reads its keystores only at start") {
		t.Errorf("cluster create --leaf-validity 1h did not call it out:\n%s", r.stderr)
	}
	for _, args := range [][]string{{"weekly", "--leaf-validity", "7d"}, {"default"}} {
		r := s.cli(t, s.admin, append([]string{"cluster", "create"}, args...)...).ok(t)
		if strings.Contains(r.stderr, "note:") {
			t.Errorf("cluster create %v: an unasked note:\n%s", args, r.stderr)
		}
	}
}
