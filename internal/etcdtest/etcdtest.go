// Package etcdtest runs real etcd clusters of local processes for tests:
// the store/etcd tests and the HA acceptance tests of the server start
// members on loopback, kill them like crashed machines and start them
// again, so failover is tested against etcd itself rather than a fake.
//
// Members keep their data under /dev/shm when it exists: etcd
// preallocates and fsyncs its write-ahead log, which takes seconds on a
// slow disk and makes elections miss their heartbeats; in memory a
// three-member cluster starts in well under a second.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BinaryEnv names an etcd server binary to use instead of etcd on PATH.
const BinaryEnv = "FLINKPKI_ETCD_BIN"

// ErrNoBinary means the etcd server is not installed.
var ErrNoBinary = errors.New("the etcd server binary is not on PATH: install it (apt-get install etcd-server) or set " + BinaryEnv + "; these tests need a real etcd cluster")

// Binary finds the etcd server the tests run: $FLINKPKI_ETCD_BIN, or etcd
// on PATH (Debian package etcd-server).
func Binary() (string, error) {
	if p := os.Getenv(BinaryEnv); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("etcd")
	if err != nil {
		return "", ErrNoBinary
	}
	return p, nil
}

// DataRoot makes a directory for the members' data, in memory when the
// machine has /dev/shm. The caller removes it.
func DataRoot() (string, error) {
	if dir, err := os.MkdirTemp("/dev/shm", "flinkpki-etcd-test-"); err == nil {
		return dir, nil
	}
	return os.MkdirTemp("", "flinkpki-etcd-test-")
}

// FreePorts returns n distinct loopback ports that were free a moment ago.
func FreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Member is one etcd server process on loopback.
type Member struct {
	Name      string
	ClientURL string
	PeerURL   string
	Dir       string // data directory; the log is Dir + ".log"

	args   []string
	cmd    *exec.Cmd
	exited chan struct{}
}

// Running reports whether the member's process is alive.
func (m *Member) Running() bool {
	if m.exited == nil {
		return false
	}
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// Cluster is a real etcd cluster of local processes.
type Cluster struct {
	Members []*Member

	bin  string
	http *http.Client // for /health; carries the client certificate under TLS
}

// New starts a private cluster of n members for one test and stops it,
// removing its data, when the test ends. Its members run with
// --max-txn-ops 1024; extra etcd flags follow (and override) the defaults:
// "--max-txn-ops", "128" is etcd's own bound.
func New(t testing.TB, n int, extra ...string) *Cluster {
	t.Helper()
	root, err := DataRoot()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	c, err := start(n, root, nil, nil, extra)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// Start starts n members with data under root and waits until they have
// elected a leader. It suits TestMain, which has no testing.TB.
func Start(n int, root string) (*Cluster, error) {
	return StartTLS(n, root, nil, nil)
}

// StartTLS starts members that serve clients over TLS when serverArgs
// (etcd's --cert-file and friends) are given; hc then reaches their
// /health endpoint and must carry what the members demand.
func StartTLS(n int, root string, serverArgs []string, hc *http.Client) (*Cluster, error) {
	return start(n, root, serverArgs, hc, nil)
}

func start(n int, root string, serverArgs []string, hc *http.Client, extra []string) (*Cluster, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	ports, err := FreePorts(2 * n)
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if serverArgs != nil {
		scheme = "https"
	}
	if hc == nil {
		hc = &http.Client{}
	}
	hc.Timeout = 200 * time.Millisecond
	c := &Cluster{bin: bin, http: hc}
	var initial []string
	for i := range n {
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2*i]),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			Dir:       filepath.Join(root, fmt.Sprintf("m%d", i)),
		}
		c.Members = append(c.Members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	for _, m := range c.Members {
		m.args = []string{
			"--name", m.Name, "--data-dir", m.Dir,
			"--listen-client-urls", m.ClientURL, "--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.PeerURL, "--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new", "--initial-cluster-token", filepath.Base(root),
			"--heartbeat-interval", "50", "--election-timeout", "500",
			"--max-txn-ops", "1024", "--logger", "zap", "--log-level", "error",
		}
		m.args = append(append(m.args, serverArgs...), extra...)
		if err := c.start(m); err != nil {
			c.Stop()
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitHealthy(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(m *Member) error {
	if err := os.MkdirAll(m.Dir, 0o700); err != nil {
		return err
	}
	logf, err := os.OpenFile(m.Dir+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	m.cmd = exec.Command(c.bin, m.args...)
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no orphans if the test binary dies
	if err := m.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start etcd %s: %w", m.Name, err)
	}
	exited := make(chan struct{})
	m.exited = exited
	go func(cmd *exec.Cmd) {
		cmd.Wait()
		logf.Close()
		close(exited)
	}(m.cmd)
	return nil
}

// Endpoints returns the client URLs of all members, running or not, as a
// flinkpki replica is configured with them.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.ClientURL)
	}
	return out
}

// Kill stops member i at once with SIGKILL, like a crashed machine.
func (c *Cluster) Kill(i int) {
	m := c.Members[i]
	if m.Running() {
		m.cmd.Process.Signal(syscall.SIGKILL)
		<-m.exited
	}
}

// Restart starts a killed member again on its data directory, so it
// rejoins the cluster with the state it had.
func (c *Cluster) Restart(i int) error {
	m := c.Members[i]
	if m.Running() {
		return fmt.Errorf("etcd member %s is still running", m.Name)
	}
	return c.start(m)
}

// Stop kills every member.
func (c *Cluster) Stop() {
	for i := range c.Members {
		c.Kill(i)
	}
}

// Signal sends sig to member i's process: SIGSTOP and SIGCONT make a member
// that hangs (a stalled disk, a paused VM) while its connections stay open.
func (c *Cluster) Signal(i int, sig syscall.Signal) error {
	m := c.Members[i]
	if !m.Running() {
		return fmt.Errorf("etcd member %s is not running", m.Name)
	}
	return m.cmd.Process.Signal(sig)
}
