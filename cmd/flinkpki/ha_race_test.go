package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestTwoReplicasRacingForOneUseTokensSpendEachExactlyOnce fires every one
// of 100 one-use enrollment tokens at two replicas of one etcd store at
// the same moment. Each token must buy exactly one leaf: one replica
// answers with it, the other refuses as Unauthenticated, and the store
// holds one holder record and one audit entry per token.
func TestTwoReplicasRacingForOneUseTokensSpendEachExactlyOnce(t *testing.T) {
	h := newHAStore(t)
	a, b := h.replica(t), h.replica(t)
	replicas := []*testServer{a, b}
	a.cli(t, a.admin, "cluster", "create", "race", "--key-type", "ecdsa-p256").ok(t)

	const tokens = 100
	type win struct{ holder, serial string }
	var wins []win
	for i := range tokens {
		// Tokens come from either replica with its own admin token: the
		// token records and the admin tokens live in the shared store.
		tok := replicas[i%2].tokenFor(t, "race", "taskmanager")
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			serials [2]string
			errs    [2]error
		)
		for r, s := range replicas {
			e := newEnroller(t, s.addr, s.caFile, tok)
			wg.Go(func() {
				<-start
				serials[r], errs[r] = e.enroll(context.Background(), "race", fmt.Sprintf("tm-%d-%d", i, r))
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for r := range replicas {
			switch code := status.Code(errs[r]); {
			case errs[r] == nil:
				won++
				wins = append(wins, win{fmt.Sprintf("tm-%d-%d", i, r), serials[r]})
			case code != codes.Unauthenticated:
				t.Errorf("token %d: the losing replica %d failed with %v, want Unauthenticated (token used up)", i, r, errs[r])
			}
		}
		if won != 1 {
			t.Fatalf("token %d bought %d leaves, want exactly 1: errors %v", i, won, errs)
		}
	}

	serials := holderSerials(t, a.cli(t, a.admin, "holder", "list", "--cluster", "race", "-o", "json"))
	if len(serials) != tokens {
		t.Errorf("%d holder records, want %d (one per token)", len(serials), tokens)
	}
	for _, w := range wins {
		if serials[w.holder] != w.serial {
			t.Errorf("holder %s answered with serial %s is recorded with %q", w.holder, w.serial, serials[w.holder])
		}
	}
	enrolled := 0
	for _, e := range checkAuditContiguous(t, b) {
		if e.Action == "enroll" && e.Outcome == "ok" {
			enrolled++
		}
	}
	if enrolled != tokens {
		t.Errorf("%d audited enrollments, want %d", enrolled, tokens)
	}
}

// raceCLI runs the same CLI command at both replicas at once and returns
// both results.
func raceCLI(t testing.TB, replicas []*testServer, args ...string) []result {
	t.Helper()
	out := make([]result, len(replicas))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, s := range replicas {
		wg.Go(func() {
			<-start
			out[i] = s.cli(t, s.admin, args...)
		})
	}
	close(start)
	wg.Wait()
	return out
}

// TestTwoReplicasRacingARotationStepApplyItOnce races "ca activate" and
// then "ca retire" at two replicas, through several rotations: exactly
// one of each pair succeeds, the other is refused with a one-line error,
// and the lineage keeps exactly one active CA throughout.
func TestTwoReplicasRacingARotationStepApplyItOnce(t *testing.T) {
	h := newHAStore(t)
	a, b := h.replica(t), h.replica(t)
	replicas := []*testServer{a, b}
	a.cli(t, a.admin, "cluster", "create", "rot", "--key-type", "ecdsa-p256").ok(t)
	tok := a.tokenFor(t, "rot", "taskmanager", "--uses", "10")
	e := newEnroller(t, b.addr, b.caFile, tok)

	status := func() caStatus {
		return readCAStatus(t, a.cli(t, a.admin, "ca", "status", "--cluster", "rot", "-o", "json"))
	}
	for round := range 3 {
		// A live holder that does not trust the prepared CA blocks
		// activation; releasing it is what allows the step.
		holder := fmt.Sprintf("tm-%d", round)
		if _, err := e.enroll(context.Background(), "rot", holder); err != nil {
			t.Fatal(err)
		}
		b.cli(t, b.admin, "ca", "prepare", "--cluster", "rot").ok(t)
		a.cli(t, a.admin, "ca", "activate", "--cluster", "rot").refused(t, holder)
		a.cli(t, a.admin, "holder", "release", "--cluster", "rot", holder).ok(t)

		for _, step := range []struct{ name, after string }{
			{"activate", "retiring,active"},
			{"retire", "active"},
		} {
			rs := raceCLI(t, replicas, "ca", step.name, "--cluster", "rot")
			ok := 0
			for i, r := range rs {
				if r.code == 0 {
					ok++
					continue
				}
				r.refused(t, "")
				if strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
					t.Errorf("round %d: the refused %s at replica %d printed more than one line:\n%s", round, step.name, i, r.stderr)
				}
			}
			if ok != 1 {
				t.Fatalf("round %d: %d of 2 racing %s commands succeeded, want exactly 1: %+v", round, ok, step.name, rs)
			}
			st := status()
			validLineages(t, st)
			if got := lineageStates(st, "internal"); got != step.after {
				t.Fatalf("round %d: after the racing %s the lineage is %q, want %q", round, step.name, got, step.after)
			}
		}
	}
	checkAuditContiguous(t, a)
}
