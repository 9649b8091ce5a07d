package enroll

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeClock is a Backoff clock whose Sleep advances time instead of waiting.
type fakeClock struct {
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) Sleep(_ context.Context, d time.Duration) error {
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return nil
}

func newFakeBackoff() (Backoff, *fakeClock) {
	c := &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	return Backoff{Now: c.Now, Sleep: c.Sleep, Jitter: func(d time.Duration) time.Duration { return d }}, c
}

// failing returns an fn that fails with errs in turn, then succeeds.
func failing(errs ...error) (func(context.Context) error, *int) {
	calls := 0
	return func(context.Context) error {
		calls++
		if calls <= len(errs) {
			return errs[calls-1]
		}
		return nil
	}, &calls
}

func TestRetry(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`)
	refused := status.Error(codes.PermissionDenied, "token is for cluster a, not b")
	untrusted := status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"`)
	badTarget := status.Error(codes.Unavailable, `invalid target address dns:///https://flinkpki:7443, error info: address https://flinkpki:7443:443: too many colons in address`)
	otherName := status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate is valid for flinkpki.flinkpki.svc, not flinkpki.other.svc"`)
	tests := []struct {
		name       string
		max        time.Duration
		timeout    time.Duration
		errs       []error
		wantCalls  int
		wantSleeps []time.Duration
		wantErr    error
		wantCode   codes.Code
	}{
		{
			name: "a refusal fails at once without retrying", timeout: time.Minute,
			errs: []error{refused}, wantCalls: 1, wantErr: refused, wantCode: codes.PermissionDenied,
		},
		{
			name: "an unreachable server is retried until it answers", timeout: time.Minute,
			errs:       []error{unavailable, unavailable, unavailable},
			wantCalls:  4,
			wantSleeps: []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second},
		},
		{
			name: "overload and slow answers are retried too", timeout: time.Minute,
			errs:       []error{status.Error(codes.ResourceExhausted, "busy"), status.Error(codes.DeadlineExceeded, "slow")},
			wantCalls:  3,
			wantSleeps: []time.Duration{250 * time.Millisecond, 500 * time.Millisecond},
		},
		{
			name: "so is a request the server ended before reading it (its slot went to another)", timeout: time.Minute,
			errs:       []error{status.Error(codes.Canceled, "context canceled")},
			wantCalls:  2,
			wantSleeps: []time.Duration{250 * time.Millisecond},
		},
		{
			name: "delays double up to the cap", timeout: time.Minute, max: 600 * time.Millisecond,
			errs:       []error{unavailable, unavailable, unavailable, unavailable},
			wantCalls:  5,
			wantSleeps: []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, 600 * time.Millisecond, 600 * time.Millisecond},
		},
		{
			name: "the last wait is shortened to try once more just before the deadline", timeout: time.Second,
			errs:       []error{unavailable, unavailable, unavailable, unavailable},
			wantCalls:  3,
			wantSleeps: []time.Duration{250 * time.Millisecond, 500 * time.Millisecond},
			wantErr:    ErrTimeout, wantCode: codes.Unavailable,
		},
		{
			name: "a server this client does not trust fails at once: a wrong --ca-file does not fix itself", timeout: time.Minute,
			errs: []error{untrusted}, wantCalls: 1, wantErr: untrusted, wantCode: codes.Unavailable,
		},
		{
			name: "so does a server certificate for another name", timeout: time.Minute,
			errs: []error{otherName}, wantCalls: 1, wantErr: otherName, wantCode: codes.Unavailable,
		},
		{
			name: "and a server address that is none (a dns:/// target with a URL in it)", timeout: time.Minute,
			errs: []error{badTarget}, wantCalls: 1, wantErr: badTarget, wantCode: codes.Unavailable,
		},
		{
			name: "a refused connection outside gRPC counts as unreachable", timeout: time.Minute,
			errs:       []error{fmt.Errorf("dial: %w", &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED})},
			wantCalls:  2,
			wantSleeps: []time.Duration{250 * time.Millisecond},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, clock := newFakeBackoff()
			b.Max = tt.max
			fn, calls := failing(tt.errs...)
			var logs []string
			err := b.Retry(context.Background(), tt.timeout, func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }, fn)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("Retry() = %v, want success", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Retry() = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil && status.Code(err) != tt.wantCode {
				t.Errorf("status.Code(err) = %v, want %v", status.Code(err), tt.wantCode)
			}
			if *calls != tt.wantCalls {
				t.Errorf("fn called %d times, want %d", *calls, tt.wantCalls)
			}
			if fmt.Sprint(clock.sleeps) != fmt.Sprint(tt.wantSleeps) {
				t.Errorf("slept %v, want %v", clock.sleeps, tt.wantSleeps)
			}
			if len(logs) != len(tt.wantSleeps) {
				t.Errorf("logged %d lines, want one per wait (%d): %q", len(logs), len(tt.wantSleeps), logs)
			}
		})
	}
}

func TestRetryLogLineNamesAttemptReasonAndWait(t *testing.T) {
	t.Parallel()
	b, _ := newFakeBackoff()
	fn, _ := failing(status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 10.0.0.1:7443: connect: connection refused"`))
	var logs []string
	if err := b.Retry(context.Background(), time.Minute, func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }, fn); err != nil {
		t.Fatal(err)
	}
	want := "attempt 1: connection refused; retrying in 300ms"
	if len(logs) != 1 || logs[0] != want {
		t.Errorf("log = %q, want [%q]", logs, want)
	}
}

func TestRetryGiveUpMessageIsOneSentence(t *testing.T) {
	t.Parallel()
	b, _ := newFakeBackoff()
	b.Describe = func(error) string { return "flinkpki at h:1 not reachable yet (connection refused)" }
	err := b.Retry(context.Background(), 100*time.Millisecond, nil, func(context.Context) error {
		return status.Error(codes.Unavailable, "down")
	})
	want := "gave up after 1 attempt in 0s: flinkpki at h:1 not reachable yet (connection refused)"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func TestRetryStopsWhenTheCallerCancels(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	b, _ := newFakeBackoff()
	b.Sleep = func(ctx context.Context, _ time.Duration) error { cancel(); return ctx.Err() }
	fn, calls := failing(status.Error(codes.Unavailable, "down"), status.Error(codes.Unavailable, "down"))
	err := b.Retry(ctx, time.Minute, nil, fn)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want ErrTimeout wrapping context.Canceled", err)
	}
	if want := "gave up: interrupted after 1 attempts (the last: down): context canceled"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q: an interrupt is no timeout", err, want)
	}
	if *calls != 1 {
		t.Errorf("fn called %d times after cancel, want 1", *calls)
	}
}

func TestReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"a refused dial reads as connection refused",
			status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`),
			"connection refused"},
		{"plain HTTP where TLS was expected points at the metrics port",
			status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: tls: first record does not look like a TLS handshake"`),
			"it does not speak TLS there (is --server the gRPC port, not --metrics-listen's?)"},
		{"an untrusted server certificate points at --ca-file",
			status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority"`),
			"the server's certificate is not signed by a CA this client trusts: pass the server's server-ca.crt with --ca-file (or FLINKPKI_CA_FILE)"},
		{"a server that stopped answering says so",
			fmt.Errorf("create cluster: %w", status.Error(codes.Unavailable, "keepalive ping failed to receive ACK within timeout")),
			"the server stopped answering (no answer to a keepalive ping within 20s)"},
		{"a certificate for another name says which names it has",
			status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate is valid for flinkpki.flinkpki.svc, not other"`),
			"the server's certificate is for another name (certificate is valid for flinkpki.flinkpki.svc, not other): use an address its certificate names in --server, or add the name with serve --san"},
		{"other handshake failures say TLS",
			status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: tls: bad record"`),
			"TLS handshake failed: tls: bad record"},
		{"a server sentence is kept as is",
			status.Error(codes.Unavailable, "the server is shutting down"),
			"the server is shutting down"},
		{"a name that does not resolve says so, as the resolver or the dialer reports it",
			status.Error(codes.Unavailable, "name resolver error: produced zero addresses"),
			"no such host (the name in --server does not resolve)"},
		{"a dialer's no such host",
			status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp: lookup nohost on 10.0.0.10:53: no such host"`),
			"no such host (the name in --server does not resolve)"},
		{"a plain error is kept as is", errors.New("boom"), "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Reason(tt.err); got != tt.want {
				t.Errorf("Reason() = %q, want %q", got, tt.want)
			}
			if strings.Contains(Reason(tt.err), "\n") {
				t.Error("Reason() spans lines")
			}
		})
	}
}

// TestRetryNeverWaitsPastItsCap: the jitter comes before the cap, so no
// wait is longer than Max (a line "retrying in 11.4s" under a 10 s cap
// was a wait the cap did not hold).
func TestRetryNeverWaitsPastItsCap(t *testing.T) {
	t.Parallel()
	b, c := newFakeBackoff()
	b.Max = 2 * time.Second
	b.Jitter = func(d time.Duration) time.Duration { return d * 6 / 5 } // the +20% end
	unavailable := status.Error(codes.Unavailable, "connection refused")
	fn, _ := failing(unavailable, unavailable, unavailable, unavailable, unavailable, unavailable)
	if err := b.Retry(context.Background(), time.Hour, nil, fn); err != nil {
		t.Fatal(err)
	}
	for i, d := range c.sleeps {
		if d > b.Max {
			t.Errorf("wait %d was %v, past the cap of %v", i+1, d, b.Max)
		}
	}
}
