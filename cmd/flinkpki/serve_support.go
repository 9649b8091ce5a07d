package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flinkpki/flinkpki/api"
	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/metrics"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/token"
)

func parseToken(s string) (token.Parsed, error) { return token.Parse(s) }

// applyConfigFile sets every flag named in a YAML file that was not given on
// the command line.
func applyConfigFile(cmd *cobra.Command, path string) error {
	if path == "" {
		return nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read --config: %w", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("--config %s is not a YAML mapping: %w", path, err)
	}
	for k, v := range m {
		f := cmd.Flags().Lookup(k)
		if f == nil || k == "config" {
			return usagef("--config %s: unknown setting %q (settings are serve's flag names)", path, k)
		}
		if f.Changed {
			continue
		}
		vals := []any{v}
		if list, ok := v.([]any); ok {
			if _, slice := f.Value.(pflag.SliceValue); !slice {
				return usagef("--config %s: %s is a list, but --%s takes one value", path, k, k)
			}
			vals = list
		}
		for _, item := range vals {
			switch item.(type) {
			case nil:
				return usagef("--config %s: %s has no value (nothing after the colon, ~ or null): give one, or delete the line for the default", path, k)
			case map[string]any, []any:
				return usagef("--config %s: %s is a mapping or a nested list, but --%s takes a plain value", path, k, k)
			}
			if err := f.Value.Set(fmt.Sprint(item)); err != nil {
				return usagef("--config %s: %s: %v", path, k, err)
			}
		}
	}
	return nil
}

// maxKeyPool bounds --bake-key-pool. Every ready key stays in memory, per
// RSA key type in use, and the pool refills at CPU speed: 10000 RSA-4096
// keys are tens of MiB and hours of key generation.
const maxKeyPool = 10000

// checkRanges refuses numbers serve cannot run with sensibly, before a
// port is bound or anything is written. Each error names the flag, the
// value and what is allowed.
func (o *serveOptions) checkRanges() error {
	switch {
	case o.holderRetention.d < 0:
		return usagef("--holder-retention %s is negative: give how long expired holders are kept (e.g. 30d), or 0 to keep them forever", o.holderRetention.d)
	case o.auditMinAge.d < 0:
		return usagef("--audit-archive-min-age %s is negative: give how old audit entries must be before an archive removes them (e.g. 7d), or 0 for any age", o.auditMinAge.d)
	case o.rotationInterval.d < 0:
		return usagef("--rotation-interval %s is negative: give how often the rotation schedule is checked (e.g. 1m), or 0 to turn it off", o.rotationInterval.d)
	case o.shutdownTimeout.d < 0:
		return usagef("--shutdown-timeout %s is negative: give how long in-flight requests may finish (e.g. 15s), or 0 to cut them off at once", o.shutdownTimeout.d)
	case o.k8sReviewCache.d < 0 || o.k8sReviewCache.d > maxReviewCache:
		return usagef("--k8s-tokenreview-cache %s is out of range: give how long an accepted token's review is reused, up to %s (e.g. 10s), or 0 to review every request", formatDuration(o.k8sReviewCache.d), formatDuration(maxReviewCache))
	case o.rpcTimeout.d <= 0:
		return usagef("--rpc-timeout %s is not above 0: give the longest a request may take (e.g. 30s)", o.rpcTimeout.d)
	case math.IsNaN(o.enrollRate) || math.IsInf(o.enrollRate, 0) || o.enrollRate < 0:
		return usagef("--enroll-rate %v: give enrollment requests per second per identity, a number of 0 or more (0 turns the limit off)", o.enrollRate)
	case o.enrollBurst < 0:
		return usagef("--enroll-burst %d is negative: give 1 or more requests, or 0 for one second's worth of --enroll-rate", o.enrollBurst)
	case o.enrollRate > 0 && o.enrollRate < 1 && o.enrollBurst == 0:
		return usagef("--enroll-burst 0 with --enroll-rate %v allows no enrollment at all: give --enroll-burst 1 or more", o.enrollRate)
	case o.keyPool < 0 || o.keyPool > maxKeyPool:
		return usagef("--bake-key-pool %d is out of range: give 0 (no pool) to %d ready keys per key type", o.keyPool, maxKeyPool)
	case o.maxKeygen < 0:
		return usagef("--max-keygen %d is negative: give 1 or more concurrent key generations, or 0 for the number of CPUs", o.maxKeygen)
	case o.streamsPerAddress < 0:
		return usagef("--max-requests-per-address %d is negative: give 1 or more, or 0 for no bound per address", o.streamsPerAddress)
	case o.connsPerAddress < 0:
		return usagef("--max-connections-per-address %d is negative: give 1 or more, or 0 for no bound per address", o.connsPerAddress)
	case o.etcdBatch < 1:
		return usagef("--etcd-batch %d is out of range: give 1 or more issuances per etcd transaction (above 20 needs etcd's --max-txn-ops raised)", o.etcdBatch)
	}
	return nil
}

// requestLog gives every request an id and one log line, and turns a panic
// while serving it into that request's failure (its deadline comes from the
// stream gate, when the stream opens). It never logs request bodies or
// metadata, which carry tokens and keys.
type requestLog struct {
	log *slog.Logger
	// failures bounds the info-level lines of failed requests (nil: no
	// bound): anyone who reaches the port can fail requests, as fast as
	// the network allows. Past it they are logged at debug level, and
	// the next info line counts them. Refusals are audited and counted
	// in the metrics whatever the log says.
	failures   *rate.Limiter
	suppressed atomic.Int64
}

// Failed requests logged at info level: failureLogRate a second after a
// burst of failureLogBurst.
const (
	failureLogRate  = 20
	failureLogBurst = 100
)

func newRequestLog(log *slog.Logger) *requestLog {
	return &requestLog{log: log, failures: rate.NewLimiter(failureLogRate, failureLogBurst)}
}

func requestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// requestIDKey carries a request's id in its context, for every log line
// written while serving it (requestIDHandler): the refusal's line, with
// its actor and reason, and the request's own, with its code, then share
// the id the caller was given.
type requestIDKey struct{}

// requestIDHandler adds the request_id of the context a record was logged
// with, when it has one. (requestLog's own lines name it themselves, and
// are logged with the context from before it was added.)
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id, ok := ctx.Value(requestIDKey{}).(string); ok {
		r = r.Clone()
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(as)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

// idStream is a server stream whose context carries its request's id.
type idStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s idStream) Context() context.Context { return s.ctx }

func (r *requestLog) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	id := requestID()
	grpc.SetHeader(ctx, metadata.Pairs("x-request-id", id))
	start := time.Now()
	defer func() { err = r.done(ctx, id, info.FullMethod, start, err) }()
	defer r.recovered(ctx, id, info.FullMethod, &err)
	return handler(context.WithValue(ctx, requestIDKey{}, id), req)
}

func (r *requestLog) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	id := requestID()
	ss.SetHeader(metadata.Pairs("x-request-id", id))
	start := time.Now()
	defer func() { err = r.done(ss.Context(), id, info.FullMethod, start, err) }()
	defer r.recovered(ss.Context(), id, info.FullMethod, &err)
	return handler(srv, idStream{ss, context.WithValue(ss.Context(), requestIDKey{}, id)})
}

// recovered, deferred around a handler and the interceptors inside this
// one, turns a panic into an Internal error for that request alone, logged
// with its stack: one request that trips a bug must not stop the CA of
// every cluster (gRPC, unlike net/http, lets a handler's panic end the
// process). The store stays as it was: a transaction that panics is rolled
// back (bbolt) or never sent (etcd), and a group commit already answers a
// panicking call with an error of its own.
func (r *requestLog) recovered(ctx context.Context, id, method string, err *error) {
	p := recover()
	if p == nil {
		return
	}
	r.log.LogAttrs(ctx, slog.LevelError, "a request panicked: it failed, and the server serves on",
		slog.String("request_id", id), slog.String("method", method),
		slog.String("panic", fmt.Sprint(p)), slog.String("stack", string(debug.Stack())))
	*err = status.Errorf(codes.Internal, "internal error serving %s (request %s): the server log has the details", method, id)
}

// done logs a finished request and returns the error to send. An internal
// fault's cause, which the caller is not told, is logged here at error
// level, and the caller's message names the request's id to find it by.
func (r *requestLog) done(ctx context.Context, id, method string, start time.Time, err error) error {
	if strings.HasPrefix(method, "/grpc.health") || strings.HasPrefix(method, "/grpc.reflection") {
		return err
	}
	lvl := slog.LevelDebug
	attrs := []slog.Attr{slog.String("request_id", id), slog.String("method", method), slog.Duration("duration", time.Since(start))}
	if err != nil {
		lvl = slog.LevelInfo
		if ie := (*api.InternalError)(nil); errors.As(err, &ie) {
			lvl = slog.LevelError
			attrs = append(attrs, slog.String("cause", clipCause(ie.Cause.Error())))
			err = status.Errorf(codes.Internal, "internal error serving %s (request %s): the server log has the details", method, id)
		} else if r.failures != nil && !r.failures.Allow() {
			lvl = slog.LevelDebug
			r.suppressed.Add(1)
		} else if n := r.suppressed.Swap(0); n > 0 {
			attrs = append(attrs, slog.Int64("failed_requests_not_logged", n))
		}
		st := status.Convert(err)
		attrs = append(attrs, slog.String("code", st.Code().String()), slog.String("error", authority.ClipText(st.Message())))
	}
	r.log.LogAttrs(ctx, lvl, "request", attrs...)
	return err
}

// clipCause bounds an internal fault's text in the log (a panic's carries
// its stack).
func clipCause(s string) string {
	const most = 8 << 10
	if len(s) > most {
		return s[:most] + "... (clipped)"
	}
	return s
}

// refreshGauges recomputes the CA expiry and live-leaf gauges from the
// store, one page of cluster statuses per read transaction, and replaces
// them only when every page was read. /metrics calls it at most once per
// gaugeRefresh.
func refreshGauges(ctx context.Context, auth *authority.Authority, m *metrics.Metrics) error {
	var cas []metrics.CA
	var steps []metrics.Step
	earliest := map[string]time.Time{}
	live := map[string]int{}
	validity := map[string]time.Duration{}
	after := ""
	for {
		page, next, err := auth.Expiries(ctx, after, 500)
		if err != nil {
			return err
		}
		for _, e := range page {
			for _, c := range e.CAs {
				cas = append(cas, metrics.CA{Cluster: e.Cluster, ID: c.ID, State: string(c.State), NotAfter: c.NotAfter})
			}
			if !e.EarliestExpiry.IsZero() {
				earliest[e.Cluster] = e.EarliestExpiry
			}
			live[e.Cluster] = e.LiveHolders
			validity[e.Cluster] = e.LeafValidity
			for _, n := range e.Next {
				steps = append(steps, metrics.Step{Cluster: e.Cluster, Purpose: string(n.Purpose), Step: string(n.Kind), At: n.At, AutoRotate: e.AutoRotate})
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	m.SetRotationSchedule(steps)
	m.SetCAs(cas, earliest, live, validity)
	return nil
}

// rsaKeyTypesInUse lists the RSA key types of existing clusters, all of
// them, read page clusters at a time, so the bake key pool can fill before
// the first burst. It is a hint: a store it cannot read yields what it read.
func rsaKeyTypesInUse(ctx context.Context, st *store.Store, page int) []ca.KeyType {
	seen := map[ca.KeyType]bool{}
	var out []ca.KeyType
	for after := ""; ; {
		var next string
		err := st.View(ctx, func(tx *store.Txn) error {
			cs, n, err := tx.ListClusters(after, page)
			for _, c := range cs {
				kt := ca.KeyType(c.KeyType)
				if !seen[kt] && kt.Algorithm() == x509.RSA {
					seen[kt] = true
					out = append(out, kt)
				}
			}
			next = n
			return err
		})
		if err != nil || next == "" {
			return out
		}
		after = next
	}
}

// background tracks the server's background work (scheduler, pruner,
// sweepers, watchers, gauge refreshes) so that the store closes only after
// the last of it has returned: a tick cut off by the store's closing would
// fail half-way and log an error on every clean stop.
type background struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// Go runs f on a goroutine of its own, unless Wait has begun.
func (b *background) Go(f func()) {
	if b.add() {
		go func() {
			defer b.wg.Done()
			f()
		}()
	}
}

// Do runs f now and tracks it, or refuses it once Wait has begun.
func (b *background) Do(f func() error) error {
	if !b.add() {
		return errors.New("the server is stopping")
	}
	defer b.wg.Done()
	return f()
}

func (b *background) add() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.wg.Add(1)
	return true
}

// Wait refuses new work and waits for the running work to return (its
// context must have ended), or for ctx; it reports whether all returned.
func (b *background) Wait(ctx context.Context) bool {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}
