package main

// The request log: an id and one line per request, the id on every line
// logged while serving it, and a panic turned into that request's failure.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flinkpki/flinkpki/api"
	"github.com/flinkpki/flinkpki/authority"
)

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
		} else {
			if n := r.suppressed.Swap(0); n > 0 {
				attrs = append(attrs, slog.Int64("failed_requests_not_logged", n))
			}
			// What the caller was not told of a dependency that did
			// not answer.
			if ue := (*api.UnavailableError)(nil); errors.As(err, &ue) {
				lvl = slog.LevelWarn
				attrs = append(attrs, slog.String("cause", clipCause(ue.Cause.Error())))
			}
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
