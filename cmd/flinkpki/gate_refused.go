package main

// The streams the gate refuses, and those gRPC refuses before any
// interceptor sees them: how each is ended and shed (reported to the
// metrics and the audit trail's refusal summaries) without holding a slot.

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// tap is the gRPC server's tap: admit decides. A refused stream is not
// refused here but marked (refusedStream): gRPC (v1.85) gives a stream its
// caller's deadline (grpc-timeout) before the tap runs, and when the tap
// returns an error it never cancels that context, whose timer then lives
// until the caller's deadline, which may be years away (a few hundred
// bytes per refused stream, from a peer with no credential: 33 MB after
// 40,000). A marked stream goes through gRPC's own path, which ends it
// properly: the gate's interceptors, first in their chains, answer its
// request at once with the refusal, and one whose message never comes is
// ended refusedGrace after gRPC hands it over (gateStats.TagRPC). It holds
// no slot of the gate meanwhile.
func (g *streamGate) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	actx, err := g.admit(ctx, info)
	if err == nil {
		return actx, nil
	}
	rctx, cancel := context.WithCancel(ctx)
	return context.WithValue(rctx, refusedKey{}, &refusedStream{err: err, cancel: cancel, at: time.Now()}), nil
}

// refusedGrace is how long a refused stream whose request message has not
// come may wait for it, from when gRPC hands the stream to a handler: a
// client sends its headers and message back to back.
const refusedGrace = 50 * time.Millisecond

// refusedStream is a stream the gate refused (tap), with the error its
// caller gets.
type refusedStream struct {
	err    error
	cancel context.CancelFunc
	at     time.Time // when the tap refused it

	mu      sync.Mutex
	timer   *time.Timer
	ended   bool
	counted bool // in streamGate.refusedWaiting
}

type refusedKey struct{}

func refusedOf(ctx context.Context) *refusedStream {
	r, _ := ctx.Value(refusedKey{}).(*refusedStream)
	return r
}

// gateStats is a stats handler that sees every request's end. gRPC reads
// and decodes a request's message before any interceptor runs, and refuses
// one over the size bound (RESOURCE_EXHAUSTED) or one that does not decode
// (INTERNAL) with none of them seeing it: no authentication, no audit, no
// metric. The gate knows such a stream by its message never having
// arrived, and sheds it as too_large or malformed, as it sheds its own
// refusals (metrics and the refusal summaries of the audit trail).
type gateStats struct{ g *streamGate }

// TagRPC runs once gRPC has handed a stream to a handler, from when ending
// its context ends it through gRPC's own path: a refused stream's grace
// starts (tap), a stream pushed out meanwhile ends (gateStream.endOnTag).
func (h gateStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	g := h.g
	if r := refusedOf(ctx); r != nil {
		// The grace runs from the tap, and none is given past
		// maxRefusedWaiting refused streams waiting at once: a flood of
		// them costs a handler each, not the server's memory.
		r.mu.Lock()
		if !r.ended {
			r.counted = true
			n := g.refusedWaiting.Add(1)
			if left := refusedGrace - time.Since(r.at); n <= maxRefusedWaiting && left > 0 {
				r.timer = time.AfterFunc(left, func() { g.endRefused(r) })
				r.mu.Unlock()
				return ctx
			}
		}
		r.mu.Unlock()
		g.endRefused(r)
		return ctx
	}
	if st := gateStreamOf(ctx); st != nil {
		g.mu.Lock()
		st.tagged = true
		end := st.endOnTag
		g.mu.Unlock()
		if end {
			st.cancel()
		}
	}
	return ctx
}

// maxRefusedWaiting bounds the refused streams waiting for their message
// at once, server-wide (refusedGrace).
const maxRefusedWaiting = 1024

// endRefused ends a refused stream (its context), once, and stops counting
// it among those waiting.
func (g *streamGate) endRefused(r *refusedStream) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return
	}
	r.ended = true
	if r.timer != nil {
		r.timer.Stop()
	}
	r.cancel()
	if r.counted {
		g.refusedWaiting.Add(-1)
	}
}

func (gateStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (gateStats) HandleConn(context.Context, stats.ConnStats)                       {}

func (h gateStats) HandleRPC(ctx context.Context, rs stats.RPCStats) {
	end, ok := rs.(*stats.End)
	if !ok || end.Error == nil || h.g.shed == nil {
		return
	}
	st := gateStreamOf(ctx)
	if st == nil {
		return
	}
	var reason string
	switch status.Code(end.Error) {
	case codes.Canceled, codes.DeadlineExceeded:
		return // its caller went away, or its time ran out (the gate's own ends are these)
	case codes.ResourceExhausted:
		reason = "too_large"
	default:
		reason = "malformed"
	}
	h.g.mu.Lock()
	refused := !st.arrived && !st.intercepted
	h.g.mu.Unlock()
	if refused {
		h.g.report(st.peerCtx, st.method, reason, end.Error)
	}
}
