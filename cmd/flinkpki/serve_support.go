package main

import (
	"container/list"
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
	"google.golang.org/grpc/tap"

	"github.com/flinkpki/flinkpki/api"
	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/metrics"
	flinkpkiv1 "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
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
	case o.rotationInterval.d < 0:
		return usagef("--rotation-interval %s is negative: give how often the rotation schedule is checked (e.g. 1m), or 0 to turn it off", o.rotationInterval.d)
	case o.shutdownTimeout.d < 0:
		return usagef("--shutdown-timeout %s is negative: give how long in-flight requests may finish (e.g. 15s), or 0 to cut them off at once", o.shutdownTimeout.d)
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

func (r *requestLog) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	id := requestID()
	grpc.SetHeader(ctx, metadata.Pairs("x-request-id", id))
	start := time.Now()
	defer func() { err = r.done(ctx, id, info.FullMethod, start, err) }()
	defer r.recovered(ctx, id, info.FullMethod, &err)
	return handler(ctx, req)
}

func (r *requestLog) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	id := requestID()
	ss.SetHeader(metadata.Pairs("x-request-id", id))
	start := time.Now()
	defer func() { err = r.done(ss.Context(), id, info.FullMethod, start, err) }()
	defer r.recovered(ss.Context(), id, info.FullMethod, &err)
	return handler(srv, ss)
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
	earliest := map[string]time.Time{}
	live := map[string]int{}
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
		}
		if next == "" {
			break
		}
		after = next
	}
	m.SetCAs(cas, earliest, live)
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

// Bounds on streams (requests) in flight: per connection, per source, and
// for the whole server. A thousand TaskManagers starting at once are a
// thousand streams, from a thousand pod addresses.
const (
	maxStreamsPerConn  = 256
	maxStreamsInFlight = 4096
	// maxStreamsPerSource bounds what one address (an IPv6 /64) holds, so
	// that one pod cannot take every slot before it is ever authenticated.
	maxStreamsPerSource = 512
	// firstMessageTimeout bounds the wait for a request's message after its
	// headers (a client sends them back to back): a stream that never sends
	// it gives its slot back then, not at --rpc-timeout (firstMessageFor).
	firstMessageTimeout = 10 * time.Second
	// backupDeadline bounds a backup stream, which may carry a large
	// database over a slow link, where --rpc-timeout bounds the rest.
	backupDeadline = time.Hour
)

// streamGate is the gRPC server's tap: it runs for every new stream before
// its request message is read (so before any authentication), refuses one
// past perSource from one address, and gives each a deadline from its
// start, and a shorter one (firstMessage) until its request message has
// arrived (its interceptor, unary or stream, says so).
//
// Past max in flight, a new stream may take the slot of a stream that may
// give way (one whose request message has not come, or a public call:
// health, reflection), which is ended (CANCELLED, which init retries): the
// oldest such stream of the address that holds the most of them, if that
// is at least two more than the new stream's address holds (so that
// addresses a stream apart do not take slots back and forth); or, when no
// address holds more than one and the new stream's address holds none,
// the oldest such stream of all. Else the new stream is refused
// (RESOURCE_EXHAUSTED). A stream whose message has come keeps its slot
// through its authentication (a TokenReview may take a while) and its
// work. So peers that open streams and send nothing take slots from each
// other, never from an address with fewer: a real client's stream (one,
// and only until its message is read) is pushed out only when thousands of
// addresses each hold one, and then only once every older one was.
type streamGate struct {
	max, perSource int64
	timeout        time.Duration
	firstMessage   time.Duration
	// shed, when set, records each stream the gate refuses or ends before
	// its request was judged (api.Server.Shed: metrics and the audit
	// trail's refusal summaries), with a reason: address_full,
	// server_full, gave_way or no_message.
	shed func(ctx context.Context, method, reason string, err error)

	mu       sync.Mutex
	inFlight int64
	sources  map[string]*gateSource
	// byOpen holds the addresses by how many of their streams may give
	// way; maxOpen is at least the highest such count.
	byOpen  map[int]map[*gateSource]struct{}
	maxOpen int
	open    list.List // of every *gateStream that may give way, oldest first
}

// gateSource is what one address (an IPv6 /64) holds in the gate.
type gateSource struct {
	name     string
	inFlight int64
	open     list.List // of its *gateStream that may give way, oldest first
}

// newStreamGate makes a gate; perSource 0 bounds no address on its own.
func newStreamGate(max, perSource int64, timeout, firstMessage time.Duration) *streamGate {
	if perSource <= 0 {
		perSource = math.MaxInt64
	}
	return &streamGate{max: max, perSource: perSource, timeout: timeout, firstMessage: firstMessage,
		sources: map[string]*gateSource{}, byOpen: map[int]map[*gateSource]struct{}{}}
}

// firstMessageFor is the first-message deadline under a request deadline:
// firstMessageTimeout, or half the request deadline when that is shorter.
func firstMessageFor(rpcTimeout time.Duration) time.Duration {
	return min(firstMessageTimeout, rpcTimeout/2)
}

// options are the gate's server options: its tap, and the interceptors
// that mark a request's message as arrived, first in their chains.
func (g *streamGate) options() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.InTapHandle(g.tap), grpc.ChainUnaryInterceptor(g.unary), grpc.ChainStreamInterceptor(g.stream)}
}

// gateStream is a stream's state in the gate, in its context.
type gateStream struct {
	arrived atomic.Bool
	peerCtx context.Context // the stream's context as it came, for shed
	method  string
	opened  time.Time
	public  bool // health or reflection: gives way even once arrived
	cancel  context.CancelFunc
	// Under the gate's mu: its address; its place in the address's open
	// list (nil once its message arrived, unless public, or once it is
	// gone); and whether its slot was given back or taken by a newer
	// stream.
	source *gateSource
	elem   *list.Element // in source.open
	all    *list.Element // in the gate's open
	gone   bool
}

type gateStreamKey struct{}

func (g *streamGate) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	src := api.PeerSource(ctx)
	d := g.timeout
	if info.FullMethodName == flinkpkiv1.AdminService_Backup_FullMethodName {
		d = max(d, backupDeadline)
	}
	peerCtx := ctx
	ctx, cancel := context.WithTimeout(ctx, d)
	now := time.Now()
	st := &gateStream{peerCtx: peerCtx, method: info.FullMethodName, opened: now, public: api.Public(info.FullMethodName), cancel: cancel}
	g.mu.Lock()
	s := g.sources[src]
	if s == nil {
		s = &gateSource{name: src}
	}
	if s.inFlight >= g.perSource {
		g.mu.Unlock()
		cancel()
		return nil, g.report(peerCtx, info.FullMethodName, "address_full", status.Errorf(codes.ResourceExhausted, "%s has %d requests in flight, the most one address may: retry shortly", src, g.perSource))
	}
	var pushedOut *gateStream
	if g.inFlight >= g.max {
		pushedOut = g.yielding(s)
		if pushedOut == nil {
			g.mu.Unlock()
			cancel()
			return nil, g.report(peerCtx, info.FullMethodName, "server_full", status.Errorf(codes.ResourceExhausted, "the server has %d requests in flight: retry shortly", g.max))
		}
		g.release(pushedOut)
	}
	g.sources[src] = s
	g.inFlight++
	s.inFlight++
	st.source = s
	g.pushOpen(st)
	g.mu.Unlock()
	if pushedOut != nil {
		pushedOut.cancel()
		g.report(pushedOut.peerCtx, pushedOut.method, "gave_way", fmt.Errorf("ended after %v without its request message, to make room: the server has %d requests in flight, and its address the most such", now.Sub(pushedOut.opened).Round(time.Millisecond), g.max))
	}
	ctx = context.WithValue(ctx, gateStreamKey{}, st)
	waiting := time.AfterFunc(g.firstMessage, func() {
		if !st.arrived.Load() && ctx.Err() == nil {
			cancel()
			g.report(peerCtx, st.method, "no_message", fmt.Errorf("ended: no request message within %v of its headers", g.firstMessage))
		}
	})
	// The stream's context ends when the stream does (gRPC cancels its
	// parent), at a deadline, or when a newer stream takes its slot.
	context.AfterFunc(ctx, func() {
		waiting.Stop()
		cancel()
		g.mu.Lock()
		g.release(st)
		g.mu.Unlock()
	})
	return ctx, nil
}

// report passes a stream the gate refused or ended to shed, and returns err.
func (g *streamGate) report(ctx context.Context, method, reason string, err error) error {
	if g.shed != nil {
		g.shed(ctx, method, reason, err)
	}
	return err
}

// release gives back st's slot, once; g.mu is held.
func (g *streamGate) release(st *gateStream) {
	if st.gone {
		return
	}
	st.gone = true
	g.removeOpen(st)
	g.inFlight--
	s := st.source
	if s.inFlight--; s.inFlight <= 0 {
		delete(g.sources, s.name)
	}
}

// yielding returns the stream that gives its slot to a new one from s, or
// nil (the rules are streamGate's); g.mu is held.
func (g *streamGate) yielding(s *gateSource) *gateStream {
	v := g.heaviest()
	switch {
	case v == nil:
		return nil
	case v.open.Len() >= s.open.Len()+2:
		return v.open.Front().Value.(*gateStream)
	case v.open.Len() == 1 && s.open.Len() == 0:
		return g.open.Front().Value.(*gateStream)
	}
	return nil
}

// pushOpen adds st to the streams that may give way (its address's and
// all); removeOpen takes it out (once); heaviest returns the address with
// the most of them. g.mu is held.
func (g *streamGate) pushOpen(st *gateStream) {
	n := st.source.open.Len()
	st.elem = st.source.open.PushBack(st)
	st.all = g.open.PushBack(st)
	g.moveSource(st.source, n, n+1)
}

func (g *streamGate) removeOpen(st *gateStream) {
	if st.elem == nil {
		return
	}
	n := st.source.open.Len()
	st.source.open.Remove(st.elem)
	g.open.Remove(st.all)
	st.elem, st.all = nil, nil
	g.moveSource(st.source, n, n-1)
}

func (g *streamGate) moveSource(s *gateSource, from, to int) {
	if from > 0 {
		if delete(g.byOpen[from], s); len(g.byOpen[from]) == 0 {
			delete(g.byOpen, from)
		}
	}
	if to > 0 {
		if g.byOpen[to] == nil {
			g.byOpen[to] = map[*gateSource]struct{}{}
		}
		g.byOpen[to][s] = struct{}{}
		g.maxOpen = max(g.maxOpen, to)
	}
}

func (g *streamGate) heaviest() *gateSource {
	for ; g.maxOpen > 0; g.maxOpen-- {
		for s := range g.byOpen[g.maxOpen] {
			return s
		}
	}
	return nil
}

// arrive marks st's request message as arrived: from then on it keeps its
// slot, unless it is a public call.
func (g *streamGate) arrive(st *gateStream) {
	if st.arrived.Swap(true) || st.public {
		return
	}
	g.mu.Lock()
	g.removeOpen(st)
	g.mu.Unlock()
}

// gateStreamOf returns the gate's state of the stream of ctx, or nil.
func gateStreamOf(ctx context.Context) *gateStream {
	st, _ := ctx.Value(gateStreamKey{}).(*gateStream)
	return st
}

// unary marks the request as arrived: gRPC calls a unary interceptor once
// the message is read.
func (g *streamGate) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if st := gateStreamOf(ctx); st != nil {
		g.arrive(st)
	}
	return handler(ctx, req)
}

// stream marks the request as arrived at its first message: gRPC calls a
// stream interceptor before any, and a public streaming method (health's
// Watch, reflection) would otherwise hold a stream that never sends one
// for the whole request deadline.
func (g *streamGate) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if st := gateStreamOf(ss.Context()); st != nil {
		ss = arrivalStream{ss, g, st}
	}
	return handler(srv, ss)
}

// arrivalStream marks its stream as arrived when a message is received.
type arrivalStream struct {
	grpc.ServerStream
	g  *streamGate
	st *gateStream
}

func (a arrivalStream) RecvMsg(m any) error {
	err := a.ServerStream.RecvMsg(m)
	if err == nil {
		a.g.arrive(a.st)
	}
	return err
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
