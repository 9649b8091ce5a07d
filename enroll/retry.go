package enroll

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrTimeout means Retry gave up because the next attempt would start after
// the deadline. The error also wraps the last attempt's error.
var ErrTimeout = errors.New("gave up")

// Default backoff bounds: fast first retries for a server that is seconds
// away from ready, and a cap that keeps a pod's start-up responsive.
const (
	DefaultInitialDelay = 250 * time.Millisecond
	DefaultMaxDelay     = 10 * time.Second
)

// Backoff retries an operation with exponential backoff and jitter. Its
// clock, sleep and jitter are fields so tests advance a fake clock instead of
// sleeping; zero fields take real defaults.
type Backoff struct {
	Initial time.Duration // first delay; DefaultInitialDelay if zero
	Max     time.Duration // delay cap; DefaultMaxDelay if zero
	Now     func() time.Time
	// Sleep waits d or until ctx is done, returning ctx.Err() then.
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter turns a nominal delay into the one waited; default ±20%.
	Jitter func(d time.Duration) time.Duration
	// Describe renders a retryable error for the per-attempt log line.
	Describe func(err error) string
}

// Retry runs fn until it succeeds, fails with an error that retrying cannot
// fix, or timeout passes, logging one line per failed attempt through logf.
func Retry(ctx context.Context, timeout time.Duration, logf func(format string, args ...any), fn func(ctx context.Context) error) error {
	return Backoff{}.Retry(ctx, timeout, logf, fn)
}

// Retry is the package-level Retry with b's settings. fn receives a context
// that ends at the deadline, so a hanging call cannot outlive timeout.
func (b Backoff) Retry(ctx context.Context, timeout time.Duration, logf func(format string, args ...any), fn func(ctx context.Context) error) error {
	b = b.withDefaults()
	if logf == nil {
		logf = func(string, ...any) {}
	}
	deadline := b.Now().Add(timeout)
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	delay := b.Initial
	for attempt := 1; ; attempt++ {
		err := fn(callCtx)
		if err == nil {
			return nil
		}
		if !Retryable(err) {
			return err
		}
		if ctx.Err() != nil {
			return stopped(ctx.Err(), attempt, b.Describe(err))
		}
		// The last attempt starts a little before the deadline rather than
		// not at all, so a server that comes up late is still caught.
		wait := min(b.Jitter(delay), b.Max, deadline.Sub(b.Now())-b.Initial)
		if wait <= 0 {
			return &timeoutError{attempts: attempt, timeout: timeout, desc: b.Describe(err), last: err}
		}
		logf("attempt %d: %s; retrying in %s", attempt, b.Describe(err), max(wait.Round(100*time.Millisecond), 100*time.Millisecond))
		if serr := b.Sleep(ctx, wait); serr != nil {
			return stopped(serr, attempt, b.Describe(err))
		}
		delay = min(delay*2, b.Max)
	}
}

// stopped is Retry's error when its caller's context ended first (cause):
// an interrupt (SIGINT, SIGTERM) says so, with the last attempt's reason.
func stopped(cause error, attempts int, last string) error {
	if errors.Is(cause, context.Canceled) {
		return fmt.Errorf("%w: interrupted after %d attempts (the last: %s): %w", ErrTimeout, attempts, last, cause)
	}
	return fmt.Errorf("%w after %d attempts: %w", ErrTimeout, attempts, cause)
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = DefaultInitialDelay
	}
	if b.Max <= 0 {
		b.Max = DefaultMaxDelay
	}
	if b.Now == nil {
		b.Now = time.Now
	}
	if b.Sleep == nil {
		b.Sleep = sleepCtx
	}
	if b.Jitter == nil {
		b.Jitter = jitter
	}
	if b.Describe == nil {
		b.Describe = Reason
	}
	return b
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// jitter spreads delays by ±20% so pods started together do not retry in
// lockstep.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// timeoutError reads as one sentence while still wrapping both ErrTimeout
// and the last attempt's error for errors.Is and status.Code.
type timeoutError struct {
	attempts int
	timeout  time.Duration
	desc     string
	last     error
}

func (e *timeoutError) Error() string {
	attempts := "attempts"
	if e.attempts == 1 {
		attempts = "attempt"
	}
	return fmt.Sprintf("gave up after %d %s in %s: %s", e.attempts, attempts, e.timeout.Round(time.Second), e.desc)
}

func (e *timeoutError) Unwrap() []error { return []error{ErrTimeout, e.last} }

// Retryable reports whether an error may go away by itself: the server is
// not reachable or ready yet, too slow, or overloaded (which it says with
// ResourceExhausted, or by ending a request before reading it: CANCELLED
// from the server, when the request's slot went to a newer one). Refusals
// (PermissionDenied, Unauthenticated, InvalidArgument, NotFound, ...) are
// final, since retrying them only repeats the refusal, and so is a server
// this client does not trust (a certificate of an unknown CA, or for
// another name): gRPC reports it as Unavailable, but it is a wrong
// --ca-file or --server, which waiting does not fix.
func Retryable(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	switch st.Code() {
	case codes.Unavailable:
		return !untrusted(st.Message()) && !malformedTarget(st.Message())
	case codes.DeadlineExceeded, codes.ResourceExhausted, codes.Canceled:
		return true
	}
	return false
}

// malformedTarget reports whether a transport error says that the server
// address itself is wrong, which no retry mends.
func malformedTarget(msg string) bool {
	for _, m := range []string{"invalid target address", "too many colons in address", "missing port in address", "invalid port", "unknown port"} {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// untrusted reports whether a transport error says that the server's
// certificate does not verify for this client's CA file and server name.
func untrusted(msg string) bool {
	return strings.Contains(msg, "certificate signed by unknown authority") || strings.Contains(msg, "x509: certificate is valid for")
}

// Reason reduces an error, typically a gRPC transport error, to the short
// cause a person needs: "connection refused" rather than the nested
// "connection error: desc = \"transport: Error while dialing: ...\"".
func Reason(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	if st, ok := status.FromError(err); ok {
		msg = st.Message()
		if st.Code() == codes.DeadlineExceeded && msg == context.DeadlineExceeded.Error() {
			return "no answer in time"
		}
	}
	if i := strings.Index(msg, `desc = "`); i >= 0 {
		msg = strings.TrimSuffix(msg[i+len(`desc = "`):], `"`)
	}
	msg = strings.TrimPrefix(msg, "transport: ")
	msg = strings.TrimPrefix(msg, "Error while dialing: ")
	switch {
	case strings.Contains(msg, "connection refused"):
		return "connection refused"
	case strings.Contains(msg, "no such host"), strings.Contains(msg, "produced zero addresses"):
		// The second is gRPC's resolver saying the same.
		return "no such host (the name in --server does not resolve)"
	case strings.Contains(msg, "keepalive ping failed"):
		return "the server stopped answering (no answer to a keepalive ping within 20s)"
	case strings.Contains(msg, "certificate signed by unknown authority"):
		return "the server's certificate is not signed by a CA this client trusts: pass the server's server-ca.crt with --ca-file (or FLINKPKI_CA_FILE)"
	case strings.Contains(msg, "x509: certificate is valid for"):
		_, names, _ := strings.Cut(msg, "x509: ")
		return "the server's certificate is for another name (" + names + "): use an address its certificate names in --server, or add the name with serve --san"
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		// Plain HTTP answered: the metrics port, or a proxy without TLS.
		return "it does not speak TLS there (is --server the gRPC port, not --metrics-listen's?)"
	case strings.HasPrefix(msg, "authentication handshake failed: "):
		return "TLS handshake failed: " + strings.TrimPrefix(msg, "authentication handshake failed: ")
	}
	return msg
}
