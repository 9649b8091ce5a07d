package main

import (
	"fmt"
	"sync"
	"testing"
)

// TestThreeBusyReplicasShareOneStoreAndOneChain runs bench enroll against
// three replicas of one etcd store at once, all drawing on one token, as
// three pods behind a Service would. Every enrollment lands once: the
// holders and their serials are all distinct, each issuance is audited
// once in a trail without gaps whose chain verifies, the token's uses are
// spent exactly, and the cluster's lineage stays valid.
func TestThreeBusyReplicasShareOneStoreAndOneChain(t *testing.T) {
	h := newHAStore(t)
	reps := []*testServer{
		h.replica(t, "--enroll-rate", "0"),
		h.replica(t, "--enroll-rate", "0"),
		h.replica(t, "--enroll-rate", "0"),
	}
	reps[0].cli(t, reps[0].admin, "cluster", "create", "busy").ok(t)
	const perReplica = 120
	tok := reps[0].tokenFor(t, "busy", "taskmanager", "--uses", fmt.Sprint(3*perReplica), "--ttl", "1h")

	var wg sync.WaitGroup
	for _, r := range reps {
		wg.Go(func() {
			r.cli(t, r.admin, "bench", "enroll", "--cluster", "busy", "--role", "taskmanager", "--token-file", tok,
				"--requests", fmt.Sprint(perReplica), "--concurrency", "8", "--format", "jks").ok(t)
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	s := reps[2]
	serials := holderSerials(t, s.cli(t, s.admin, "holder", "list", "--cluster", "busy", "-o", "json"))
	distinct := map[string]bool{}
	for _, serial := range serials {
		distinct[serial] = true
	}
	if len(serials) != 3*perReplica || len(distinct) != 3*perReplica {
		t.Fatalf("%d holders with %d distinct serials; want %d of each", len(serials), len(distinct), 3*perReplica)
	}
	audited := map[string]int{}
	for _, e := range checkAuditContiguous(t, s) {
		if e.Cluster == "busy" && e.Action == "enroll" && e.Outcome == "ok" {
			audited[e.Details["serial"]]++
		}
	}
	for holder, serial := range serials {
		if audited[serial] != 1 {
			t.Errorf("the leaf of %s (serial %s) is audited %d times, want once", holder, serial, audited[serial])
		}
	}
	// The token allowed exactly the enrollments made: one more is refused.
	reps[1].cli(t, "", "init", "--cluster", "busy", "--role", "taskmanager", "--holder", "one-too-many",
		"--out", t.TempDir()+"/tls", "--token-file", tok, "--timeout", "3s").refused(t, "token")
	validLineages(t, readCAStatus(t, s.cli(t, s.admin, "ca", "status", "--cluster", "busy", "-o", "json")))
}
