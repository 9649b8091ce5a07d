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

// TestFlinkConfigTakesTheStoreTypeChoiceUnderBothNames: flink config's
// --flink-before-1-20 and init's and bake's --legacy-store-types are one
// choice; flink config takes both names, and each leaves out the
// keystore-type/truststore-type keys that Flink before 1.20 does not know.
func TestFlinkConfigTakesTheStoreTypeChoiceUnderBothNames(t *testing.T) {
	args := []string{"flink", "config", "--cluster", "orders", "--role", "taskmanager", "--key-type", "ecdsa-p256"}
	if out := runCLI(t, nil, args...).ok(t).stdout; !strings.Contains(out, "security.ssl.internal.keystore-type: PKCS12") {
		t.Fatalf("flink config without the flag lacks the store type:\n%s", out)
	}
	for _, flag := range []string{"--flink-before-1-20", "--legacy-store-types"} {
		if out := runCLI(t, nil, append(args, flag)...).ok(t).stdout; strings.Contains(out, "-type:") {
			t.Errorf("flink config %s still names store types:\n%s", flag, out)
		}
	}
}
