// Package authoritytest runs a real Authority for tests: a bbolt file in
// t.TempDir() sealed with a random key-encryption key, a fake clock that
// tests advance instead of sleeping, and enrolled holders whose credentials
// complete real TLS handshakes with each other.
package authoritytest

import (
	"context"
	"crypto/rand"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/bolt"
)

// Admin is the administrator actor tests act as. No administrator token
// record stands behind it: what checks the caller's token record (making
// an enrollment or administrator token) needs Offline, or a real token.
var Admin = authority.Actor{Kind: authority.ActorAdmin, ID: "test"}

// Offline is the actor of an offline tool (admin bootstrap, revoke-token):
// what it makes records no administrator token it was made through.
var Offline = authority.Actor{Kind: authority.ActorSystem, ID: "test"}

// Clock is a fake clock, safe for concurrent use. Its zero value is not
// useful: create it with NewClock.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock that reads t until advanced.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time; pass it as authority.Config.Now.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add advances the clock by d and returns the new time.
func (c *Clock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// Env is an Authority on a real store file. Reopen closes the file and
// opens it again, as a server restart does.
type Env struct {
	TB          testing.TB
	Ctx         context.Context
	Clock       *Clock
	Path        string
	KEK         []byte
	Store       *store.Store
	Authority   *authority.Authority
	observer    authority.Observer
	keys        authority.KeySource
	backend     func(ctx context.Context) (store.Backend, error)
	auditMinAge time.Duration
	logger      *slog.Logger
}

// Option adjusts a new Env.
type Option func(*Env)

// WithObserver makes the Authority report its events to o.
func WithObserver(o authority.Observer) Option { return func(e *Env) { e.observer = o } }

// WithBackend stores on the backend open returns (etcd, say) instead of a
// bbolt file; Reopen calls open again.
func WithBackend(open func(ctx context.Context) (store.Backend, error)) Option {
	return func(e *Env) { e.backend = open }
}

// WithKeyPool makes bake take its keys from p.
func WithKeyPool(p authority.KeySource) Option { return func(e *Env) { e.keys = p } }

// WithLogger makes the Authority log to l.
func WithLogger(l *slog.Logger) Option { return func(e *Env) { e.logger = l } }

// WithAuditMinAge makes PruneAudit keep entries younger than d.
func WithAuditMinAge(d time.Duration) Option { return func(e *Env) { e.auditMinAge = d } }

// New opens a fresh store in t.TempDir() and an Authority on it. The clock
// starts at the current time (to the second), so certificates it issues
// are also valid for tools that read the real clock, such as the JDK.
func New(t testing.TB, opts ...Option) *Env {
	t.Helper()
	e := &Env{
		TB: t, Ctx: context.Background(),
		Clock: NewClock(time.Now().UTC().Truncate(time.Second)),
		Path:  filepath.Join(t.TempDir(), "flinkpki.db"),
		KEK:   make([]byte, store.KEKSize),
	}
	if _, err := rand.Read(e.KEK); err != nil {
		t.Fatalf("generate a key-encryption key: %v", err)
	}
	for _, o := range opts {
		o(e)
	}
	e.open()
	t.Cleanup(func() {
		if err := e.Store.Close(); err != nil {
			t.Errorf("close store %s: %v", e.Path, err)
		}
	})
	return e
}

// Reopen closes the store and opens the same file with the same
// key-encryption key and a new Authority, keeping the clock.
func (e *Env) Reopen() {
	e.TB.Helper()
	if err := e.Store.Close(); err != nil {
		e.TB.Fatalf("close store %s: %v", e.Path, err)
	}
	e.open()
}

func (e *Env) open() {
	e.TB.Helper()
	var st *store.Store
	var err error
	if e.backend != nil {
		st, err = openOn(e.Ctx, e.backend, e.KEK)
	} else {
		st, err = OpenStore(e.Ctx, e.Path, e.KEK)
	}
	if err != nil {
		e.TB.Fatalf("open store: %v", err)
	}
	a, err := authority.New(authority.Config{Store: st, Now: e.Clock.Now, Observer: e.observer, KeyPool: e.keys, AuditMinAge: e.auditMinAge, Logger: e.logger})
	if err != nil {
		e.TB.Fatalf("new authority: %v", err)
	}
	e.Store, e.Authority = st, a
}

// OpenStore opens (or creates) the bbolt store at path sealed with kek.
// The caller closes it.
func OpenStore(ctx context.Context, path string, kek []byte) (*store.Store, error) {
	return openOn(ctx, func(context.Context) (store.Backend, error) { return bolt.Open(path, bolt.Options{}) }, kek)
}

// CreateCluster creates a cluster as Admin, failing the test on error.
func (e *Env) CreateCluster(req authority.CreateClusterRequest) *authority.ClusterView {
	e.TB.Helper()
	v, err := e.Authority.CreateCluster(e.Ctx, Admin, req)
	if err != nil {
		e.TB.Fatalf("create cluster %q: %v", req.Name, err)
	}
	return v
}

// Audit returns the whole audit trail of cluster ("" for all).
func (e *Env) Audit(cluster string) []*store.AuditEntry {
	e.TB.Helper()
	var all []*store.AuditEntry
	for after := uint64(0); ; {
		es, next, err := e.Authority.ListAudit(e.Ctx, cluster, after, 0)
		if err != nil {
			e.TB.Fatalf("list audit: %v", err)
		}
		all = append(all, es...)
		if next == 0 {
			return all
		}
		after = next
	}
}

// openOn opens a store sealed with kek on the backend open returns; the
// backend is closed again when that fails.
func openOn(ctx context.Context, open func(ctx context.Context) (store.Backend, error), kek []byte) (*store.Store, error) {
	b, err := open(ctx)
	if err != nil {
		return nil, err
	}
	seal, err := store.NewSealer(kek, nil)
	if err != nil {
		b.Close()
		return nil, err
	}
	st, err := store.Open(ctx, b, seal)
	if err != nil {
		b.Close()
		return nil, err
	}
	return st, nil
}
