package credentials_test

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/credentials"
)

// childEnv makes the test binary a writer that rewrites a set forever, for
// TestWriteSurvivesKillAtAnyInstant to kill.
const childEnv = "FLINKPKI_CREDENTIALS_WRITE_CHILD"

// writeOnceEnv makes the test binary write one set into the named
// directory and print the error, for TestWriteIntoAnUnwritableDirectory.
const writeOnceEnv = "FLINKPKI_CREDENTIALS_WRITE_ONCE"

var crashNames = []string{"a.p12", "b.password", "c.yaml", "d.crt"}

func TestMain(m *testing.M) {
	if dir := os.Getenv(writeOnceEnv); dir != "" {
		fs := &credentials.FileSet{Files: []credentials.File{{Name: "a.p12", Data: []byte("x"), Mode: 0o600}}}
		if err := fs.Write(dir); err != nil {
			fmt.Print(err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if dir := os.Getenv(childEnv); dir != "" {
		for gen := time.Now().UnixNano(); ; gen++ {
			fs := &credentials.FileSet{}
			for _, n := range crashNames {
				fs.Files = append(fs.Files, credentials.File{Name: n, Data: []byte(fmt.Sprint(gen)), Mode: 0o600})
			}
			if err := fs.Write(dir); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(3)
			}
			fmt.Println("wrote") // the first tells the parent that writes go on
		}
	}
	os.Exit(m.Run())
}

// TestWriteSurvivesKillAtAnyInstant kills a process that keeps rewriting a
// set with SIGKILL at random instants; every time, a reader must see either
// no file at all or all four files of one and the same generation.
func TestWriteSurvivesKillAtAnyInstant(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out")
	rng := rand.New(rand.NewPCG(7, 11))
	sawSet := 0
	for round := 0; round < 15; round++ {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill only once the writer is in its loop: a kill during the
		// process's start (tens of milliseconds for a race-built binary on
		// a loaded machine) tests nothing.
		started := make(chan error, 1)
		go func() {
			_, err := bufio.NewReader(out).ReadString('\n')
			started <- err
			_, _ = io.Copy(io.Discard, out) // the pipe must not fill up
		}()
		select {
		case err := <-started:
			if err != nil {
				t.Fatalf("round %d: the writer wrote nothing: %v", round, err)
			}
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("round %d: the writer wrote nothing in 60 s", round)
		}
		time.Sleep(time.Duration(1+rng.IntN(80)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("writer exited on its own (%v) instead of being killed", err)
		}
		if gen, ok := readSet(t, dir); ok {
			sawSet++
			t.Logf("round %d: complete set of generation %s", round, gen)
		}
	}
	if sawSet == 0 {
		t.Errorf("no round ever found a complete set; the writer never finished a write")
	}
	// A normal write afterwards cleans up whatever the kills left.
	fs := &credentials.FileSet{Files: []credentials.File{{Name: "a.p12", Data: []byte("final"), Mode: 0o600}}}
	if err := fs.Write(dir); err != nil {
		t.Fatalf("Write after the kills: %v", err)
	}
	if d := dataDirs(t, dir); len(d) != 1 {
		t.Errorf("data directories after a clean write = %v, want one", d)
	}
}

// readSet reads the visible names; it fails the test on a mixed or partial
// set and reports whether a complete one was there.
func readSet(t *testing.T, dir string) (string, bool) {
	t.Helper()
	var gens []string
	missing := 0
	for _, n := range crashNames {
		data, err := os.ReadFile(filepath.Join(dir, n))
		switch {
		case os.IsNotExist(err):
			missing++
		case err != nil:
			t.Fatalf("read %s: %v", n, err)
		default:
			gens = append(gens, string(data))
		}
	}
	if missing == len(crashNames) {
		return "", false
	}
	if missing != 0 {
		t.Fatalf("partial set: %d of %d files missing, present: %v", missing, len(crashNames), gens)
	}
	for _, g := range gens[1:] {
		if g != gens[0] {
			t.Fatalf("mixed set: generations %v", gens)
		}
	}
	return gens[0], true
}
