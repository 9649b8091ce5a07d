package main

import (
	"container/list"
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/flinkpki/flinkpki/api"
	"github.com/flinkpki/flinkpki/authority"
	flinkpkiv1 "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

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
	// server_full, gave_way, no_message, unknown_method, too_large or
	// malformed.
	shed func(ctx context.Context, method, reason string, err error)
	// known, when set, tells the methods the server serves: a stream for
	// any other is refused at once (UNIMPLEMENTED) and shed as
	// unknown_method, as gRPC would refuse it with no interceptor to see.
	known func(method string) bool

	// refusedWaiting counts the refused streams waiting for their message
	// (gateStats.TagRPC).
	refusedWaiting atomic.Int64

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

// options are the gate's server options: its tap, the interceptors that
// mark a request's message as arrived, first in their chains, and a stats
// handler (gateStats) that ends the streams the gate refused or pushed out
// and, with shed set, sheds what gRPC refuses before any interceptor runs.
func (g *streamGate) options() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.InTapHandle(g.tap), grpc.ChainUnaryInterceptor(g.unary), grpc.ChainStreamInterceptor(g.stream), grpc.StatsHandler(gateStats{g})}
}

// gateStream is a stream's state in the gate, in its context.
type gateStream struct {
	peerCtx context.Context // the stream's context as it came, for shed
	method  string
	opened  time.Time
	public  bool // health or reflection: gives way even once arrived
	cancel  context.CancelFunc
	// Under the gate's mu: its address; its place in the address's open
	// list (nil once its message arrived, unless public, or once it is
	// gone); whether its message arrived; and whether its slot was given
	// back or taken by a newer stream.
	source  *gateSource
	elem    *list.Element // in source.open
	all     *list.Element // in the gate's open
	arrived bool
	gone    bool
	// intercepted: the gate's stream interceptor ran (a streaming call
	// reads its message after the interceptors: its refusals are theirs).
	intercepted bool
	// tagged: gRPC has handed the stream to a handler (gateStats.TagRPC).
	// Ending it before that would leave gRPC's own context of it alive
	// until its caller's deadline (see tap), so a stream pushed out before
	// it is tagged is ended when it is (endOnTag).
	tagged, endOnTag bool
}

type gateStreamKey struct{}

// admit decides whether a new stream gets a slot (the rules are
// streamGate's): its context with the gate's deadlines, or the refusal,
// already reported.
func (g *streamGate) admit(ctx context.Context, info *tap.Info) (context.Context, error) {
	if g.known != nil && !g.known(info.FullMethodName) {
		// Shed here (the method is the caller's: the text quotes it,
		// clipped, and its summary counts it under one action), and left
		// to gRPC to answer UNIMPLEMENTED, without a slot.
		g.report(ctx, "unknown", "unknown_method", status.Errorf(codes.Unimplemented, "unknown method %q", authority.ClipText(info.FullMethodName)))
		return ctx, nil
	}
	if ctx.Err() != nil {
		// Its caller's deadline has passed already (grpc-timeout 0): gRPC
		// ends it as it comes back; it takes no slot, nor anyone's.
		return ctx, nil
	}
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
	endNow := false
	if pushedOut != nil {
		endNow = pushedOut.tagged
		pushedOut.endOnTag = !endNow
	}
	g.sources[src] = s
	g.inFlight++
	s.inFlight++
	st.source = s
	g.pushOpen(st)
	g.mu.Unlock()
	if pushedOut != nil {
		if endNow {
			pushedOut.cancel()
		}
		g.report(pushedOut.peerCtx, pushedOut.method, "gave_way", fmt.Errorf("ended after %v, before it was authenticated, to make room: the server had %d requests in flight", now.Sub(pushedOut.opened).Round(time.Millisecond), g.max))
	}
	ctx = context.WithValue(ctx, gateStreamKey{}, st)
	g.watch(ctx, st)
	return ctx, nil
}

// watch ends an admitted stream whose request message has not come within
// firstMessage of its headers, and gives back its slot when its context
// ends: when the stream does (gRPC cancels its parent), at a deadline, or
// when a newer stream takes its slot. st.cancel ends ctx, the stream's
// context; st.peerCtx is its context from before the gate's deadline.
func (g *streamGate) watch(ctx context.Context, st *gateStream) {
	waiting := time.AfterFunc(g.firstMessage, func() {
		// Decided under the lock, as arrive and a newer stream taking the
		// slot are: the stream is ended once, for one reason.
		g.mu.Lock()
		late := !st.arrived && !st.gone
		if late {
			g.release(st)
		}
		g.mu.Unlock()
		if late {
			st.cancel()
			g.report(st.peerCtx, st.method, "no_message", fmt.Errorf("ended: no request message within %v of its headers", g.firstMessage))
		}
	})
	// The stream's context ends when the stream does (gRPC cancels its
	// parent), at a deadline, or when a newer stream takes its slot.
	context.AfterFunc(ctx, func() {
		waiting.Stop()
		st.cancel()
		g.mu.Lock()
		g.release(st)
		g.mu.Unlock()
	})
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
// slot, unless it is a public call. It is marked under the lock, so that
// the first-message timer and a newer stream taking a slot see it or end
// the stream first, not both. It reports whether the stream still holds
// its slot (else it is being ended).
func (g *streamGate) arrive(st *gateStream) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	st.arrived = true
	if !st.public {
		g.removeOpen(st)
	}
	return !st.gone
}

// gateStreamOf returns the gate's state of the stream of ctx, or nil.
func gateStreamOf(ctx context.Context) *gateStream {
	st, _ := ctx.Value(gateStreamKey{}).(*gateStream)
	return st
}

// unary marks the request as arrived: gRPC calls a unary interceptor once
// the message is read.
func (g *streamGate) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if r := refusedOf(ctx); r != nil {
		g.endRefused(r)
		return nil, r.err
	}
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
	if r := refusedOf(ss.Context()); r != nil {
		g.endRefused(r)
		return r.err
	}
	if st := gateStreamOf(ss.Context()); st != nil {
		g.mu.Lock()
		st.intercepted = true
		g.mu.Unlock()
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
