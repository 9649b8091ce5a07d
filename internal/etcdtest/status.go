package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// ErrNoLeader means no running member knows a raft leader.
var ErrNoLeader = errors.New("the etcd cluster has no leader")

// Leader returns the index of the member that is the raft leader, asking
// the running members through the maintenance Status API.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return -1, err
	}
	defer cli.Close()
	ids := map[uint64]int{}
	var leader uint64
	for i, m := range c.Members {
		if !m.Running() {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := cli.Status(sctx, m.ClientURL)
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
		return -1, ErrNoLeader
	}
	return i, nil
}

// healthy asks a member's /health endpoint, which reports true once the
// member has a leader.
func (c *Cluster) healthy(m *Member) bool {
	resp, err := c.http.Get(m.ClientURL + "/health")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"health":"true"`)
}

// WaitHealthy polls every running member's /health endpoint until all of
// them report a leader, so no gRPC connection backoff slows a start.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	for {
		ready, running := 0, 0
		for _, m := range c.Members {
			if !m.Running() {
				continue
			}
			running++
			if c.healthy(m) {
				ready++
			}
		}
		if running > 0 && ready == running {
			return nil
		}
		select {
		case <-ctx.Done():
			logs, _ := os.ReadFile(c.Members[0].Dir + ".log")
			return fmt.Errorf("etcd test cluster did not elect a leader: %d of %d running members healthy; log of m0:\n%s", ready, running, logs)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
