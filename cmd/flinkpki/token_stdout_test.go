package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// failingWriter is a standard output whose every write fails, as a full
// volume behind "> token-file" does.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

// runCLIOut runs the CLI in-process with stdout as its standard output.
func runCLIOut(t testing.TB, env map[string]string, stdout io.Writer, args ...string) result {
	t.Helper()
	var errb bytes.Buffer
	a := &app{stdout: stdout, stderr: &errb, getenv: func(k string) string { return env[k] }, now: time.Now}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return result{code: a.run(ctx, args), stderr: errb.String()}
}

// failingOutputs are the standard outputs a token cannot be written to.
func failingOutputs(t *testing.T) map[string]func() io.Writer {
	outs := map[string]func() io.Writer{"a writer that fails": func() io.Writer { return failingWriter{} }}
	if f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0); err == nil {
		t.Cleanup(func() { f.Close() })
		outs["/dev/full"] = func() io.Writer { return f }
	}
	return outs
}

// revokeCommand is the "revoke it with flinkpki ..." command of an
// orphaned token's refusal, as arguments; it fails the test without one.
func revokeCommand(t testing.TB, stderr string) []string {
	t.Helper()
	m := regexp.MustCompile(`token ([a-z0-9]+) was created, but it could not be written to standard output \(.*\): nobody holds it; revoke it with flinkpki (.*), and run again$`).FindStringSubmatch(strings.TrimSpace(stderr))
	if m == nil {
		t.Fatalf("the refusal does not name the orphaned token and the command that revokes it: %q", stderr)
	}
	args := strings.Fields(m[2])
	if !strings.Contains(m[2], m[1]) {
		t.Fatalf("the command %q does not revoke token %s", m[2], m[1])
	}
	return args
}

func TestTokenCommandsFailAndNameTheTokenWhenStandardOutputCannotTakeIt(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	env := map[string]string{"FLINKPKI_SERVER": s.addr, "FLINKPKI_CA_FILE": s.caFile, "FLINKPKI_TOKEN_FILE": s.admin}
	commands := map[string][]string{
		"token create":               {"token", "create", "--cluster", "orders", "--role", "taskmanager"},
		"token create -o json":       {"token", "create", "--cluster", "orders", "--role", "taskmanager", "-o", "json"},
		"admin token create":         {"admin", "token", "create", "--name", "ci"},
		"admin token create -o json": {"admin", "token", "create", "--name", "ci", "-o", "json"},
	}
	for outName, out := range failingOutputs(t) {
		for name, args := range commands {
			t.Run(name+" into "+outName, func(t *testing.T) {
				r := runCLIOut(t, env, out(), args...)
				oneLineError(t, r, 1, "nobody holds it")
				// The command it names revokes the token it made, as
				// printed: in a shell without this run's environment too.
				runCLI(t, nil, revokeCommand(t, r.stderr)...).ok(t)
			})
		}
	}
}

func TestBootstrapFailsAndNamesTheTokenWhenStandardOutputCannotTakeIt(t *testing.T) {
	for outName, out := range failingOutputs(t) {
		for _, format := range []string{"table", "json"} {
			t.Run(format+" into "+outName, func(t *testing.T) {
				dir := t.TempDir()
				kek := writeKEK(t, dir, "kek")
				newStoreAt(t, filepath.Join(dir, dbFileName), kek)
				r := runCLIOut(t, nil, out(), "admin", "bootstrap", "--data-dir", dir, "--kek-file", kek, "-o", format)
				oneLineError(t, r, 1, "nobody holds it")
				runCLI(t, nil, revokeCommand(t, r.stderr)...).ok(t)
				var toks []struct {
					State string `json:"state"`
				}
				list := runCLI(t, nil, "admin", "list-tokens", "--data-dir", dir, "--kek-file", kek, "-o", "json").ok(t)
				if err := json.Unmarshal([]byte(list.stdout), &toks); err != nil {
					t.Fatal(err)
				}
				if len(toks) != 1 || toks[0].State == "valid" {
					t.Errorf("after the revoke command the store holds %+v, want the one bootstrapped token, not valid", toks)
				}
			})
		}
	}
}

func TestRevokeTokenCommandQuotesWhatAShellWouldSplit(t *testing.T) {
	got := revokeTokenCommand("abc", "/var/lib/my data", "it's.kek", &etcdFlags{})
	want := `flinkpki admin revoke-token abc --data-dir '/var/lib/my data' --kek-file 'it'\''s.kek'`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	got = revokeTokenCommand("abc", "./flinkpki-data", "", &etcdFlags{endpoints: []string{"https://e0:2379", "https://e1:2379"}, prefix: "/p/", caFile: "ca.crt"})
	want = "flinkpki admin revoke-token abc --etcd-endpoints https://e0:2379,https://e1:2379 --etcd-prefix /p/ --etcd-ca-file ca.crt"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestAClosedPipeIsReportedNotAKillingSignal: a real process whose
// standard output is a pipe nobody reads ("| true"). Go ends such a
// process with SIGPIPE at its first write, before any error handling: a
// token made would be held by nobody and named nowhere, a backup's staged
// copy left behind. These commands say what happened instead.
func TestAClosedPipeIsReportedNotAKillingSignal(t *testing.T) {
	bin := flinkpkiBin(t)
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	tmp := t.TempDir()
	env := append(os.Environ(), "FLINKPKI_SERVER="+s.addr, "FLINKPKI_CA_FILE="+s.caFile, "FLINKPKI_TOKEN_FILE="+s.admin, "TMPDIR="+tmp)
	closedPipe := func(args ...string) result {
		t.Helper()
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		defer w.Close()
		var errb bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, w, &errb
		err = cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode() // -1 when a signal ended it
		} else if err != nil {
			t.Fatal(err)
		}
		return result{code: code, stderr: errb.String()}
	}
	for _, args := range [][]string{
		{"token", "create", "--cluster", "orders", "--role", "taskmanager"},
		{"admin", "token", "create", "--name", "piped"},
	} {
		r := closedPipe(args...)
		oneLineError(t, r, 1, "nobody holds it")
		runCLI(t, nil, revokeCommand(t, r.stderr)...).ok(t)
	}
	r := closedPipe("admin", "backup", "--out", "-")
	oneLineError(t, r, 1, "standard output")
	if left, _ := filepath.Glob(filepath.Join(tmp, "*")); len(left) > 0 {
		t.Errorf("a backup to a closed pipe left %v in TMPDIR", left)
	}
}
