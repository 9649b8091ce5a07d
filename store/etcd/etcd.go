// Package etcd is the highly available store backend, on an etcd cluster.
//
// Several flinkpki replicas share one etcd. Every logical change (one
// Update or Batch) is one etcd transaction guarded by revision
// comparisons: fn runs against a snapshot of the store at one revision,
// its writes are buffered, and the commit applies them only if nothing it
// read has changed since. When another replica won the race, fn runs again
// on the new state. So two replicas can never both spend the last use of
// an enrollment token, both activate the same CA, or both append to the
// audit chain from the same head.
//
// Keys are Prefix + bucket + "/" + key, so range reads come back in the
// same byte order as bbolt's cursors, and several installations can share
// one etcd under different prefixes.
package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flinkpki/flinkpki/store"
)

// DefaultPrefix is the key prefix used when Config.Prefix is empty.
const DefaultPrefix = "/flinkpki/"

// ErrTooManyConflicts means a transaction lost the race against other
// writers more often than Config.MaxRetries allows. Errors carrying it
// also wrap store.ErrUnavailable, so callers and the API treat them as
// "retry later".
var ErrTooManyConflicts = store.ErrContended

// Config says how to reach etcd. Zero values pick defaults.
type Config struct {
	// Endpoints are the client URLs of the etcd members, for example
	// https://etcd-0:2379.
	Endpoints []string
	// Prefix is prepended to every key; it must end with "/". Default
	// DefaultPrefix.
	Prefix string
	// TLS holds the CA pool and, for mutual TLS, the client certificate.
	// Nil means plain text.
	TLS *tls.Config
	// Username and Password enable etcd's own authentication.
	Username, Password string
	// DialTimeout bounds connecting to a member. Default 5s.
	DialTimeout time.Duration
	// OpTimeout bounds each request to etcd, so an unreachable cluster
	// fails a call with store.ErrUnavailable instead of hanging. Default 5s.
	OpTimeout time.Duration
	// MaxRetries bounds how often Update reruns fn after a conflict.
	// Default 20.
	MaxRetries int
	// MaxBatch bounds the issuances that share one etcd transaction (group
	// commit). Each adds a few compares and writes, and etcd refuses more
	// than --max-txn-ops (128 by default) of either: the default of 20 fits
	// that; raise both together for throughput.
	MaxBatch int
	// ElectionTTL is the lease time of a leader elected with Elect: how
	// long a crashed leader blocks the others. Default 10s.
	ElectionTTL time.Duration
	// Logger receives the etcd client's logs. Default: discarded.
	Logger *zap.Logger
}

// Backend implements store.Backend on etcd.
type Backend struct {
	cli     *clientv3.Client
	cfg     Config
	where   string // endpoints, for error messages
	buckets map[string]bool
	batch   store.GroupCommit
}

// maxWritesPerTxn bounds the writes of one transaction that rewrites many
// records (store.RotateKEK), below etcd's default --max-txn-ops of 128.
const maxWritesPerTxn = 100

// MaxWritesPerTxn implements store.WriteLimiter.
func (b *Backend) MaxWritesPerTxn() int { return maxWritesPerTxn }

// Open connects to etcd. It does not wait for the cluster: the first
// operation reports an unreachable cluster with store.ErrUnavailable.
// Buckets need no creation on etcd; store.Open writes the schema record.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("no etcd endpoints given: pass --etcd-endpoints")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		return nil, fmt.Errorf("etcd key prefix %q must end with \"/\"", cfg.Prefix)
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 5 * time.Second
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = defaultMaxBatch
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = 20
	}
	if cfg.ElectionTTL <= 0 {
		cfg.ElectionTTL = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	removeStaleBackups() // what backups killed with their process left in TMPDIR
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		TLS:         cfg.TLS,
		Username:    cfg.Username,
		Password:    cfg.Password,
		DialTimeout: cfg.DialTimeout,
		// A member that hangs (a stalled disk, a paused VM) holds every
		// request sent its way until the keepalive drops it: 5 s is the
		// least etcd's --grpc-keepalive-min-time lets a client ping at.
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Logger:               cfg.Logger,
		Context:              context.WithoutCancel(ctx),
	})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd at %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	b := &Backend{cli: cli, cfg: cfg, where: strings.Join(cfg.Endpoints, ","), buckets: map[string]bool{}}
	b.batch = store.GroupCommit{Max: cfg.MaxBatch, Commit: b.commitGroup}
	for _, bk := range store.Buckets {
		b.buckets[string(bk)] = true
	}
	return b, nil
}

// Prefix returns the key prefix of this installation.
func (b *Backend) Prefix() string { return b.cfg.Prefix }

// Client returns the underlying etcd client, for tools and tests.
func (b *Backend) Client() *clientv3.Client { return b.cli }

// Close implements store.Backend.
func (b *Backend) Close() error { return b.cli.Close() }

// Healthy reports whether the cluster has a leader and answers a
// linearizable read, so the server can report NOT_SERVING while etcd is
// lost.
func (b *Backend) Healthy(ctx context.Context) error {
	octx, cancel := b.opCtx(ctx)
	defer cancel()
	_, err := b.cli.Get(octx, b.cfg.Prefix+"meta/schema", clientv3.WithCountOnly())
	return b.wrap(ctx, "health check", err)
}

// View implements store.Backend: fn reads one consistent snapshot, taken
// at the revision of its first read.
func (b *Backend) View(ctx context.Context, fn func(store.Tx) error) error {
	unavailableRetries := 0
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		t := b.newTxn(ctx, true)
		err := fn(t)
		if t.err != nil {
			err = t.err
		}
		// A read that timed out on one member (hung, or cut off) is read
		// again: the client sends the next request to the next member, and
		// a read changes nothing, so it is safe to repeat, while the
		// caller's time lasts.
		if errors.Is(err, store.ErrUnavailable) {
			if unavailableRetries++; unavailableRetries <= maxReadRetries && ctx.Err() == nil {
				continue
			}
			return err
		}
		// A snapshot compacted away mid-read is read again, from the top.
		if !errors.Is(err, errConflict) {
			return err
		}
		if attempt+1 >= b.cfg.MaxRetries {
			return fmt.Errorf("%w: etcd compacted this read's snapshot away %d times in a row; try again", store.ErrUnavailable, attempt+1)
		}
	}
}

// maxReadRetries bounds how often View reads again after etcd could not
// answer: one member hung leaves the others.
const maxReadRetries = 2

// Update implements store.Backend with optimistic concurrency: fn runs on
// a snapshot, and its buffered writes are committed in one etcd
// transaction only if every key and range it read is unchanged. When
// another writer got there first, fn runs again, up to Config.MaxRetries
// times in all (fewer under store.WithAttempts), then the call fails with
// ErrTooManyConflicts. fn must therefore, as with Batch, not change state
// outside the transaction.
//
// When etcd cannot be reached the error wraps store.ErrUnavailable. A
// commit that timed out may still have been applied; the caller's retry
// then sees the new state.
func (b *Backend) Update(ctx context.Context, fn func(store.Tx) error) error {
	most := b.cfg.MaxRetries
	if n := store.Attempts(ctx); n > 0 && n < most {
		most = n
	}
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		t := b.newTxn(ctx, false)
		err := fn(t)
		if t.err != nil {
			err = t.err
		}
		if err == nil {
			err = t.commit()
		}
		if !errors.Is(err, errConflict) {
			return err
		}
		if attempt+1 >= most {
			return fmt.Errorf("%w after %d attempts: %w: retry the request", ErrTooManyConflicts, attempt+1, store.ErrUnavailable)
		}
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
	}
}

// errConflict marks a failed revision comparison or a compacted snapshot:
// fn must run again on fresh state.
var errConflict = errors.New("conflict")

// backoff waits a random time that grows with attempt, so racing replicas
// spread out instead of colliding again.
func backoff(ctx context.Context, attempt int) error {
	limit := min(time.Millisecond<<min(attempt, 7), 100*time.Millisecond)
	t := time.NewTimer(rand.N(limit) + 100*time.Microsecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// opCtx bounds one etcd request and makes it fail fast when the member it
// reaches has no leader.
func (b *Backend) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(clientv3.WithRequireLeader(ctx), b.cfg.OpTimeout)
}

// wrap turns an etcd client error into a store error: unreachable or
// leaderless clusters become store.ErrUnavailable, a compacted snapshot a
// conflict, and the caller's own cancellation stays its context error.
func (b *Backend) wrap(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("etcd %s: %w", what, cerr)
	}
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		return fmt.Errorf("etcd %s: snapshot compacted: %w", what, errConflict)
	case errors.Is(err, rpctypes.ErrTooManyOps):
		return fmt.Errorf("etcd %s: the transaction has more operations than etcd's --max-txn-ops allows: raise it on every member (1024 is safe): %w", what, err)
	case unavailable(err):
		return fmt.Errorf("%w: etcd at %s unreachable: %s: %w", store.ErrUnavailable, b.where, what, err)
	}
	return fmt.Errorf("etcd %s: %w", what, err)
}

// unavailable reports errors that mean "the cluster cannot answer now":
// timeouts, lost connections, no leader, leader changes.
func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, clientv3.ErrNoAvailableEndpoints) {
		return true
	}
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code() == codes.Unavailable || ee.Code() == codes.DeadlineExceeded
	}
	st := status.Convert(err)
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	case codes.Unknown:
		// etcd 3.4 returns the request's expired deadline as Unknown.
		return st.Message() == context.DeadlineExceeded.Error()
	}
	return false
}

// DropHistory implements store.HistoryDropper: it compacts etcd's history
// up to the current revision, physically, and then defragments every
// member, so that earlier values (a CA key sealed under a retired
// key-encryption key) are gone from the members' files, not only from the
// keyspace. The compaction is etcd-wide: other users of the same etcd lose
// their history too (etcd run with --auto-compaction loses it within the
// hour anyway). A member that cannot be defragmented is named in the error;
// the compaction stands.
func (b *Backend) DropHistory(ctx context.Context) error {
	resp, err := b.cli.Get(ctx, b.cfg.Prefix+"meta/schema", clientv3.WithCountOnly())
	if err != nil {
		return b.wrap(ctx, "read the current revision", err)
	}
	if _, err := b.cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return b.wrap(ctx, "compact etcd's history", err)
	}
	members, err := b.cli.MemberList(ctx)
	if err != nil {
		return b.wrap(ctx, "list etcd's members to defragment them", err)
	}
	var failed []string
	for _, m := range members.Members {
		if len(m.ClientURLs) == 0 {
			continue // a learner not started yet
		}
		if _, err := b.cli.Defragment(ctx, m.ClientURLs[0]); err != nil {
			failed = append(failed, fmt.Sprintf("%s (%v)", m.ClientURLs[0], err))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("etcd's history is compacted, but %d member(s) could not be defragmented and still hold the earlier values in their files: %s", len(failed), strings.Join(failed, "; "))
	}
	return nil
}
