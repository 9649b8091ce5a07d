package main

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flinkpki/flinkpki/enroll"
	"github.com/flinkpki/flinkpki/store"
)

// usageError marks a command line that cannot be run as given: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usage error with a formatted message.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// operationError marks an error returned by a command's own work: exit code
// 1. Errors that carry neither mark come from cobra's parsing (unknown
// command, bad arguments) and are usage errors.
type operationError struct{ err error }

func (e operationError) Error() string { return e.err.Error() }
func (e operationError) Unwrap() error { return e.err }

func markOperation(err error) error {
	var u usageError
	if errors.As(err, &u) {
		return err
	}
	return operationError{err}
}

// exitCode maps an error from Execute to the process exit code.
func exitCode(err error) int {
	var u usageError
	var op operationError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &u):
		return 2
	case errors.As(err, &op):
		return 1
	default:
		return 2
	}
}

// humanize turns an error into the sentence printed after "flinkpki: ".
// gRPC errors carry the server's own sentence in their message; transport
// failures are reduced to the cause and the address tried.
func (a *app) humanize(err error) string {
	if errors.Is(err, enroll.ErrTimeout) {
		return err.Error()
	}
	var grpcErr interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &grpcErr) || a.target == "" {
		// No flinkpki server was dialled (admin commands on the store): a
		// gRPC status comes from etcd, inside the command's own sentence,
		// which says what it was doing and what to do about it.
		return err.Error()
	}
	st := grpcErr.GRPCStatus()
	target := a.target
	switch st.Code() {
	case codes.Unavailable:
		if msg := st.Message(); serverUnavailable(msg) {
			// The server answered: it is reachable, but cannot serve the
			// request now (its store, the API server's TokenReview).
			return fmt.Sprintf("flinkpki at %s cannot serve the request now: %s", target, msg)
		}
		reason := enroll.Reason(err)
		if reason == "connection refused" {
			reason += " (is the server running, and is --server, or FLINKPKI_SERVER, its gRPC address?)"
		}
		return fmt.Sprintf("cannot reach flinkpki at %s: %s", target, reason)
	case codes.DeadlineExceeded:
		return fmt.Sprintf("flinkpki at %s did not answer in time", target)
	case codes.Canceled:
		// gRPC's words for a call its context ended ("context canceled
		// while waiting for connections to become ready").
		return fmt.Sprintf("no answer came from flinkpki at %s: %s", target, canceledText)
	case codes.Unauthenticated:
		return fmt.Sprintf("%s (check --token-file)", st.Message())
	case codes.Unimplemented:
		return fmt.Sprintf("flinkpki at %s does not offer this call: %s (is it an older version?)", target, st.Message())
	case codes.PermissionDenied:
		// The server names the gRPC method; a CLI user needs to hear that
		// the token given is the wrong kind for the command.
		return adminMethod.ReplaceAllString(st.Message(), "this command needs an administrator token in --token-file (or FLINKPKI_TOKEN_FILE)")
	}
	return st.Message()
}

// canceledText ends the sentence of a call canceled on the client's side,
// which interruptedText takes off as it says "interrupted".
const canceledText = "context canceled"

// serverUnavailable says an UNAVAILABLE status came from the flinkpki
// server itself: its store's (which say "store unavailable") or one that
// ends with what to do; a failed connection's status is gRPC's own words.
func serverUnavailable(msg string) bool {
	return strings.Contains(msg, store.ErrUnavailable.Error()) || strings.HasSuffix(msg, ": retry the request") || strings.HasSuffix(msg, ": retry later")
}

// adminMethod is the server's "METHOD needs an administrator token".
var adminMethod = regexp.MustCompile(`/flinkpki\.v1\.[A-Za-z]+/[A-Za-z]+ needs an administrator token`)

// oneLine keeps the printed error on one line, whatever it wraps, and
// shows a character that does not print (a terminal escape sent in a name,
// say) as its escape sequence instead of sending it to the terminal.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
	if !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsPrint(r) {
			b.WriteRune(r)
		} else {
			q := strconv.QuoteRune(r) // '\x1b', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		}
	}
	return b.String()
}
