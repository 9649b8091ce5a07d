package etcd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Leader is one replica's candidacy in a named election, so only one
// replica runs the CA rotation scheduler at a time. It campaigns in the
// background and campaigns again after losing its session (a network
// partition, an etcd outage).
//
// IsLeader is advisory: the leadership ends when the candidate's key
// disappears, which the old leader learns by a watch event a moment after
// the new leader does, and a partitioned leader learns only when its
// keepalives fail. Every decision the leader acts on is still committed
// through the store's guarded transactions, so a stale leader can waste
// work but never fork state.
type Leader struct {
	b      *Backend
	key    string
	value  string
	leader atomic.Bool
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	sess *concurrency.Session // current session, nil between sessions
}

// Elect joins the election called name and campaigns until ctx ends or
// Close is called. It returns once the first etcd session is open, so an
// unreachable cluster is reported here.
func (b *Backend) Elect(ctx context.Context, name string) (*Leader, error) {
	if name == "" {
		return nil, errors.New("election name is empty")
	}
	host, _ := os.Hostname()
	lctx, cancel := context.WithCancel(ctx)
	l := &Leader{
		b: b, key: b.cfg.Prefix + ".election/" + name + "/",
		value:  fmt.Sprintf("%s/%d", host, os.Getpid()),
		cancel: cancel, done: make(chan struct{}),
	}
	sess, err := l.session(lctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("join election %q: %w", name, err)
	}
	go l.run(lctx, sess)
	return l, nil
}

// IsLeader reports whether this replica holds the leadership now.
func (l *Leader) IsLeader() bool { return l.leader.Load() }

// Close resigns and leaves the election: the lease is revoked, so another
// candidate takes over at once instead of after the TTL.
func (l *Leader) Close() error {
	l.cancel()
	// etcd's Campaign resigns with the client's own context when its
	// context ends, which waits for etcd however long it is gone; closing
	// the client ends that. So shutdown waits a bounded time here.
	select {
	case <-l.done:
	case <-time.After(2 * l.b.cfg.OpTimeout):
	}
	return nil
}

func (l *Leader) session(ctx context.Context) (*concurrency.Session, error) {
	ttl := max(int(l.b.cfg.ElectionTTL/time.Second), 1)
	gctx, cancel := l.b.opCtx(ctx)
	defer cancel()
	lease, err := l.b.cli.Grant(gctx, int64(ttl))
	if err != nil {
		return nil, l.b.wrap(ctx, "grant election lease", err)
	}
	sess, err := concurrency.NewSession(l.b.cli, concurrency.WithLease(lease.ID), concurrency.WithContext(ctx))
	if err != nil {
		return nil, l.b.wrap(ctx, "open election session", err)
	}
	l.mu.Lock()
	l.sess = sess
	l.mu.Unlock()
	return sess, nil
}

// run campaigns, holds the leadership while the session lives, and starts
// over with a new session when it dies, until ctx ends.
func (l *Leader) run(ctx context.Context, sess *concurrency.Session) {
	defer close(l.done)
	for attempt := 0; ; attempt++ {
		if sess != nil {
			l.campaign(ctx, sess)
			l.leader.Store(false)
			// Revoke the lease so the others need not wait for its TTL.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.b.cfg.OpTimeout)
			_, _ = l.b.cli.Revoke(rctx, sess.Lease())
			cancel()
			sess.Close()
			l.mu.Lock()
			l.sess = nil
			l.mu.Unlock()
		}
		if ctx.Err() != nil {
			return
		}
		if err := backoff(ctx, min(attempt, 7)+3); err != nil {
			return
		}
		sess, _ = l.session(ctx)
	}
}

// campaign waits for the leadership and holds it until the session dies
// or ctx ends.
func (l *Leader) campaign(ctx context.Context, sess *concurrency.Session) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sess.Done():
			cancel()
		case <-cctx.Done():
		}
	}()
	el := concurrency.NewElection(sess, l.key)
	if err := el.Campaign(cctx, l.value); err != nil {
		return
	}
	// Campaign can return after the session expired; make sure our
	// candidate key still exists before claiming the leadership.
	gctx, gcancel := l.b.opCtx(cctx)
	resp, err := l.b.cli.Get(gctx, el.Key())
	gcancel()
	if err != nil || len(resp.Kvs) == 0 || resp.Kvs[0].Lease != int64(sess.Lease()) {
		return
	}
	// Watch our key from here on: a revoked or expired lease deletes it,
	// and the leadership ends then, not when the keepalive loop notices.
	// A watch lost with the etcd leader ends it too, to be safe.
	wch := l.b.cli.Watch(clientv3.WithRequireLeader(cctx), el.Key(), clientv3.WithRev(resp.Header.Revision+1))
	l.leader.Store(true)
	for {
		select {
		case <-cctx.Done():
			return
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil || wr.Canceled {
				return
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE {
					return
				}
			}
		}
	}
}

// PresenceElection is the election a replica without background work
// joins, only so that Campaigners counts it; nobody acts on its leader.
const PresenceElection = "serving"

// Campaigners counts the servers that campaign in any election under the
// prefix: each running replica holds a key there while its lease lives
// (the scheduler's election, or PresenceElection for a replica without
// background work). Offline commands use it to refuse a store still in
// use. A server is counted once, however many elections it joined.
func (b *Backend) Campaigners(ctx context.Context) (int, error) {
	octx, cancel := b.opCtx(ctx)
	defer cancel()
	resp, err := b.cli.Get(octx, b.cfg.Prefix+".election/", clientv3.WithPrefix())
	if err != nil {
		return 0, b.wrap(ctx, "count election candidates", err)
	}
	servers := map[string]bool{}
	for _, kv := range resp.Kvs {
		servers[string(kv.Value)] = true
	}
	return len(servers), nil
}
