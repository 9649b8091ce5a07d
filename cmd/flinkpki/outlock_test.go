package main

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/flinkpki/flinkpki/credentials"
)

// TestOneRunPerOutputDirectory: a bake into an --out another run holds is
// refused before the server is asked (no holder, no key), and runs into
// one --out at once each end whole or refused: never all exit 0 with a
// set that does not open.
func TestOneRunPerOutputDirectory(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	out := filepath.Join(t.TempDir(), "tls")

	held, err := credentials.LockDir(out)
	if err != nil {
		t.Fatal(err)
	}
	oneLineError(t, s.cli(t, s.admin, "bake", "--cluster", "orders", "--role", "jobmanager", "--holder", "jm-held", "--out", out), 1,
		"output "+out+": another flinkpki run is writing it: wait for it to end, or give each run its own --out")
	held.Release()
	if hs := s.cli(t, s.admin, "holder", "list", "--cluster", "orders", "-o", "json").ok(t).stdout; strings.Contains(hs, "jm-held") {
		t.Errorf("a bake refused for a held --out was issued:\n%s", hs)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("the refused bake left %s: %v", out, err)
	}

	var wg sync.WaitGroup
	results := make([]result, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.cli(t, s.admin, "bake", "--cluster", "orders", "--role", "jobmanager", "--holder", "jm-"+string(rune('a'+i)), "--out", out)
		}()
	}
	wg.Wait()
	ok := 0
	for i, r := range results {
		switch {
		case r.code == 0:
			ok++
		case r.code != 1 || !strings.Contains(r.stderr, "another flinkpki run is writing it"):
			t.Errorf("bake %d of 4 at once: exit %d, %s", i, r.code, r.stderr)
		}
	}
	if ok == 0 {
		t.Fatal("none of 4 bakes at once wrote its set")
	}
	target, err := os.Readlink(filepath.Join(out, "..data"))
	if err != nil {
		t.Fatalf("no ..data after the bakes: %v", err)
	}
	for _, name := range []string{"keystore.p12", "truststore.p12", "keystore.password", "flink-ssl.yaml"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Errorf("%s after the bakes (..data -> %s): %v", name, target, err)
		}
	}
}
