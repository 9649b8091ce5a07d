//go:build flinke2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proc is one child process started in its own process group, so that a stop
// (or the driver's trap, through the pgid file) takes the whole tree with it.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// pidDir is where every started process leaves its pgid; run.sh kills what is
// listed there on exit, so nothing survives a timeout or a crash of the test.
func pidDir() string { return os.Getenv("FLINK_E2E_PID_DIR") }

// startProc starts argv with env added, stdout and stderr going to logPath.
// The process is stopped on test cleanup whatever happens.
func startProc(t testing.TB, name string, argv, env []string, logPath string) *proc {
	t.Helper()
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("open log of %s: %v", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("start %s (%s): %v", name, argv[0], err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	if dir := pidDir(); dir != "" {
		pidFile := filepath.Join(dir, fmt.Sprintf("%d", cmd.Process.Pid))
		_ = os.WriteFile(pidFile, []byte(name+"\n"), 0o600)
	}
	go func() {
		p.err = cmd.Wait()
		out.Close()
		if dir := pidDir(); dir != "" {
			_ = os.Remove(filepath.Join(dir, fmt.Sprintf("%d", cmd.Process.Pid)))
		}
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// alive reports whether the process has not exited yet.
func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the process group (a JVM then runs Flink's shutdown
// hooks, which deregister a TaskManager at once), and SIGKILL after a grace.
func (p *proc) stop(t testing.TB) {
	t.Helper()
	if !p.alive() {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(8 * time.Second):
		t.Logf("%s did not stop within 8s of SIGTERM; killing it", p.name)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL) // stray children of the group
}

// runCmd runs a short command to completion and returns its stdout; stderr
// is folded into the error so that a failure explains itself.
func runCmd(ctx context.Context, env []string, argv ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s: %w: %s", strings.Join(argv[:min(len(argv), 4)], " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), stderr.String(), err
}

// freePort asks the kernel for a free loopback port.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond every interval until it returns nil or the timeout
// passes; the last error explains the failure.
func waitFor(timeout, interval time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still not true after %s: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}

// errNotYet marks a condition that is not met yet.
var errNotYet = errors.New("not yet")

// lineAround returns the log line holding offset i.
func lineAround(b []byte, i int) string {
	s := string(b)
	start := strings.LastIndex(s[:i], "\n") + 1
	end := strings.Index(s[i:], "\n")
	if end < 0 {
		end = len(s) - i
	}
	line := s[start : i+end]
	if len(line) > 300 {
		line = line[:300] + "…"
	}
	return line
}
