package main

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// binEnv names a prebuilt flinkpki binary; make test sets it.
const binEnv = "FLINKPKI_BIN"

var realBin struct {
	once sync.Once
	path string
	err  error
	log  string
}

// flinkpkiBin returns a real flinkpki binary: $FLINKPKI_BIN, or one built
// once per test process. The reliability tests need a real process, because
// only a real process can be killed with SIGKILL.
func flinkpkiBin(t testing.TB) string {
	t.Helper()
	realBin.once.Do(func() {
		if p := os.Getenv(binEnv); p != "" {
			realBin.path, realBin.err = filepath.Abs(p)
			if realBin.err == nil {
				_, realBin.err = os.Stat(realBin.path)
			}
			return
		}
		dir, err := os.MkdirTemp("", "flinkpki-bin-")
		if err != nil {
			realBin.err = err
			return
		}
		realBin.path = filepath.Join(dir, "flinkpki")
		out, err := exec.Command("go", "build", "-o", realBin.path, ".").CombinedOutput()
		realBin.err, realBin.log = err, string(out)
	})
	if realBin.err != nil {
		t.Fatalf("no flinkpki binary (set %s or make go available): %v\n%s", binEnv, realBin.err, realBin.log)
	}
	return realBin.path
}

// procServer is "flinkpki serve --dev" as a real child process, which the
// tests kill, restart on the same data directory and port, and stop with
// SIGTERM.
type procServer struct {
	bin, dir, addr string
	caFile, admin  string
	extra          []string

	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan struct{}
}

// startProcServer starts a real server on a fresh loopback port and data
// directory, and kills it when the test ends.
func startProcServer(t testing.TB, extra ...string) *procServer {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	p := &procServer{bin: flinkpkiBin(t), dir: dir, addr: freeAddr(t), extra: extra,
		caFile: filepath.Join(dir, "server-ca.crt"), admin: filepath.Join(dir, "admin.token")}
	p.start(t)
	t.Cleanup(func() {
		if p.running() {
			p.kill(t)
		}
	})
	return p
}

func (p *procServer) running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// start (re)starts the server on its directory and address and waits until
// it accepts connections.
func (p *procServer) start(t testing.TB) {
	t.Helper()
	args := append([]string{"serve", "--dev", "--data-dir", p.dir, "--listen", p.addr, "--log-level", "warn"}, p.extra...)
	p.cmd = exec.Command(p.bin, args...)
	p.log = newSyncBuffer()
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.exited = make(chan struct{})
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(p.cmd, p.exited)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if !p.running() {
			t.Fatalf("server exited with %v before serving:\n%s", p.cmd.ProcessState, p.log.String())
		}
		// serve binds its port before it opens the store, so an accepted
		// connection alone does not mean it serves; the line --dev prints
		// then does.
		if strings.Contains(p.log.String(), servingLine) {
			if c, err := net.DialTimeout("tcp", p.addr, 100*time.Millisecond); err == nil {
				c.Close()
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start within 20s:\n%s", p.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill ends the server with SIGKILL, as a power cut or an OOM kill does.
func (p *procServer) kill(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	p.wait(t)
}

// term sends SIGTERM and returns the exit code.
func (p *procServer) term(t testing.TB) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.wait(t)
	return p.cmd.ProcessState.ExitCode()
}

func (p *procServer) wait(t testing.TB) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not exit within 30s:\n%s", p.log.String())
	}
}

// cli runs the CLI in-process against p.
func (p *procServer) cli(t testing.TB, tokenFile string, args ...string) result {
	t.Helper()
	env := map[string]string{"FLINKPKI_SERVER": p.addr, "FLINKPKI_CA_FILE": p.caFile, "FLINKPKI_TOKEN_FILE": tokenFile}
	return runCLI(t, env, args...)
}

// asServer lets procServer reuse testServer's helpers (tokenFor).
func (p *procServer) asServer() *testServer {
	return &testServer{dir: p.dir, addr: p.addr, caFile: p.caFile, admin: p.admin}
}

// checkBoltFile opens a stopped server's database with bbolt itself and
// runs its page-level consistency check.
func checkBoltFile(t testing.TB, dir string) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(dir, "flinkpki.db"), 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatalf("the store does not open after the server stopped: %v", err)
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		var errs []error
		for e := range tx.Check() {
			errs = append(errs, e)
		}
		return errors.Join(errs...)
	})
	if err != nil {
		t.Fatalf("bbolt consistency check failed: %v", err)
	}
}

// caStatus is the part of "ca status -o json" the reliability tests read.
type caStatus struct {
	Lineages []struct {
		Purpose string `json:"purpose"`
		CAs     []struct {
			ID          string `json:"id"`
			State       string `json:"state"`
			Fingerprint string `json:"sha256_fingerprint"`
		} `json:"cas"`
	} `json:"lineages"`
}

func readCAStatus(t testing.TB, r result) caStatus {
	t.Helper()
	var st caStatus
	if err := json.Unmarshal([]byte(r.ok(t).stdout), &st); err != nil {
		t.Fatalf("ca status -o json: %v\n%s", err, r.stdout)
	}
	return st
}

// validLineages fails unless every lineage is in a state the rotation
// protocol allows: exactly one active CA, at most one prepared and at most
// one retiring, and nothing else.
func validLineages(t testing.TB, st caStatus) {
	t.Helper()
	if len(st.Lineages) == 0 {
		t.Fatal("the cluster has no CA lineage")
	}
	for _, l := range st.Lineages {
		n := map[string]int{}
		for _, c := range l.CAs {
			n[c.State]++
		}
		if n["active"] != 1 || n["prepared"] > 1 || n["retiring"] > 1 || n["active"]+n["prepared"]+n["retiring"] != len(l.CAs) {
			t.Fatalf("lineage %s is in a state the protocol does not allow: %+v", l.Purpose, l.CAs)
		}
	}
}

// lineageStates renders the states of one lineage in CA order, e.g.
// "retiring,active".
func lineageStates(st caStatus, purpose string) string {
	for _, l := range st.Lineages {
		if l.Purpose == purpose {
			var s []string
			for _, c := range l.CAs {
				s = append(s, c.State)
			}
			return strings.Join(s, ",")
		}
	}
	return ""
}

// waitUntil polls cond, which the workers in wg make true as they go, until
// it holds. Workers that all ended first gave up (their errors say why),
// so it fails at once instead of polling until the package's timeout; past
// a minute it fails too, once the workers have ended (each bounds its own
// retries), so none logs after the test.
func waitUntil(t *testing.T, what string, wg *sync.WaitGroup, cond func() bool) {
	t.Helper()
	ended := make(chan struct{})
	go func() { wg.Wait(); close(ended) }()
	deadline := time.After(time.Minute)
	for !cond() {
		select {
		case <-ended:
			if !cond() {
				t.Fatalf("the workers ended before %s", what)
			}
			return
		case <-deadline:
			<-ended
			t.Fatalf("%s did not happen within a minute", what)
		case <-time.After(2 * time.Millisecond):
		}
	}
}
