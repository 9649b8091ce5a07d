package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcdBinary finds the etcd server the tests run: $FLINKPKI_ETCD_BIN, or
// etcd on PATH (Debian package etcd-server).
func etcdBinary() (string, error) {
	if p := os.Getenv("FLINKPKI_ETCD_BIN"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("etcd")
	if err != nil {
		return "", errors.New("the etcd server binary is not on PATH: install it (apt-get install etcd-server) or set FLINKPKI_ETCD_BIN; the store/etcd tests need a real etcd cluster")
	}
	return p, nil
}

// dataRoot makes a directory for the members' data. It prefers /dev/shm:
// etcd preallocates and fsyncs its write-ahead log, which takes seconds on
// a slow disk and makes elections miss their heartbeats; in memory the
// whole cluster starts in well under a second.
func dataRoot() (string, error) {
	if dir, err := os.MkdirTemp("/dev/shm", "flinkpki-etcd-test-"); err == nil {
		return dir, nil
	}
	return os.MkdirTemp("", "flinkpki-etcd-test-")
}

// newCluster starts a private cluster of n members for one test.
func newCluster(t testing.TB, n int) *testCluster {
	t.Helper()
	root, err := dataRoot()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	c, err := startCluster(n, root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stop)
	return c
}

// member is one etcd server process on loopback.
type member struct {
	name, client, peer, dir string
	args                    []string
	cmd                     *exec.Cmd
	exited                  chan struct{}
}

// testCluster is a real etcd cluster of local processes.
type testCluster struct {
	bin     string
	members []*member
	http    *http.Client // for /health; carries the client certificate under TLS
}

func freePorts(n int) ([]int, error) {
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

// startCluster starts n members with data under root and waits until they
// have elected a leader.
func startCluster(n int, root string) (*testCluster, error) {
	return startTLSCluster(n, root, nil, nil)
}

// startTLSCluster starts members that serve clients over TLS when
// serverArgs (etcd's --cert-file and friends) are given; hc then reaches
// their /health endpoint.
func startTLSCluster(n int, root string, serverArgs []string, hc *http.Client) (*testCluster, error) {
	bin, err := etcdBinary()
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2 * n)
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
	c := &testCluster{bin: bin, http: hc}
	var initial []string
	for i := range n {
		m := &member{
			name:   fmt.Sprintf("m%d", i),
			client: fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2*i]),
			peer:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			dir:    filepath.Join(root, fmt.Sprintf("m%d", i)),
		}
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peer)
	}
	for _, m := range c.members {
		m.args = []string{
			"--name", m.name, "--data-dir", m.dir,
			"--listen-client-urls", m.client, "--advertise-client-urls", m.client,
			"--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new", "--initial-cluster-token", filepath.Base(root),
			"--heartbeat-interval", "50", "--election-timeout", "500",
			"--max-txn-ops", "1024", "--logger", "zap", "--log-level", "error",
		}
		m.args = append(m.args, serverArgs...)
		if err := c.start(m); err != nil {
			c.stop()
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.waitLeader(ctx); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

func (c *testCluster) start(m *member) error {
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return err
	}
	logf, err := os.OpenFile(m.dir+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	m.cmd = exec.Command(c.bin, m.args...)
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // no orphans if the test binary dies
	if err := m.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start etcd %s: %w", m.name, err)
	}
	m.exited = make(chan struct{})
	go func() {
		m.cmd.Wait()
		logf.Close()
		close(m.exited)
	}()
	return nil
}

func (c *testCluster) endpoints() []string {
	var out []string
	for _, m := range c.members {
		out = append(out, m.client)
	}
	return out
}

// kill stops member i at once, like a crashed machine.
func (c *testCluster) kill(i int) {
	m := c.members[i]
	if m.cmd != nil && m.cmd.Process != nil {
		m.cmd.Process.Signal(syscall.SIGKILL)
		<-m.exited
	}
}

func (c *testCluster) stop() {
	for i := range c.members {
		c.kill(i)
	}
}

// leader returns the index of the member that is the raft leader, asking
// the members through the maintenance Status API.
func (c *testCluster) leader(ctx context.Context) (int, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return -1, err
	}
	defer cli.Close()
	ids := map[uint64]int{}
	var leader uint64
	for i, m := range c.members {
		select {
		case <-m.exited:
			continue
		default:
		}
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := cli.Status(sctx, m.client)
		cancel()
		if err != nil {
			continue
		}
		ids[st.Header.MemberId] = i
		if st.Leader != 0 {
			leader = st.Leader
		}
	}
	i, ok := ids[leader]
	if leader == 0 || !ok {
		return -1, errors.New("the etcd cluster has no leader")
	}
	return i, nil
}

// waitLeader polls every member's /health endpoint, which reports true
// once the member has a leader, so no gRPC connection backoff slows the
// start.
func (c *testCluster) waitLeader(ctx context.Context) error {
	healthy := func(m *member) bool {
		resp, err := c.http.Get(m.client + "/health")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"health":"true"`)
	}
	for {
		ready := 0
		for _, m := range c.members {
			if healthy(m) {
				ready++
			}
		}
		if ready == len(c.members) {
			return nil
		}
		select {
		case <-ctx.Done():
			logs, _ := os.ReadFile(c.members[0].dir + ".log")
			return fmt.Errorf("etcd test cluster did not elect a leader: %d of %d members healthy; log of m0:\n%s", ready, len(c.members), logs)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
