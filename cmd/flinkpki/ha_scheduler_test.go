package main

import (
	"strings"
	"testing"
	"time"
)

// stepApplied is the log line of an automatic rotation step.
const stepApplied = "automatic rotation step applied"

// schedulerSteps returns the audit entries the rotation scheduler wrote.
func schedulerSteps(t testing.TB, s *testServer, cluster string) []auditJSON {
	t.Helper()
	var out []auditJSON
	for _, e := range auditEntries(t, s, cluster) {
		if e.Actor == "system:scheduler" {
			out = append(out, e)
		}
	}
	return out
}

// waitForSteps polls until the scheduler has written an audit entry with
// a sequence number above after, and returns the new entries.
func waitForSteps(t testing.TB, s *testServer, cluster string, after uint64, within time.Duration) []auditJSON {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var fresh []auditJSON
		for _, e := range schedulerSteps(t, s, cluster) {
			if e.Seq > after {
				fresh = append(fresh, e)
			}
		}
		if len(fresh) > 0 {
			return fresh
		}
		if time.Now().After(deadline) {
			t.Fatalf("no automatic rotation step after audit seq %d within %s", after, within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestOnlyTheElectedReplicaRotatesAndAnotherTakesOverWhenItDies runs two
// real replicas with a 200ms scheduler interval on a cluster whose leaves
// live one second, so a rotation step falls due every second: prepare is
// due at NotAfter - (2L + margin), and a CA validity of exactly 4L plus
// the 7-day margin puts that at creation + 2L. Only the replica elected in
// etcd may apply steps; after it is killed with SIGKILL, the other one
// wins the election once the dead one's lease expires, and carries on.
func TestOnlyTheElectedReplicaRotatesAndAnotherTakesOverWhenItDies(t *testing.T) {
	h := newHAStore(t)
	flags := []string{"--rotation-interval", "200ms", "--log-level", "info"}
	replicas := []*procServer{h.procReplica(t, flags...), h.procReplica(t, flags...)}
	a := replicas[0].asServer()
	a.cli(t, a.admin, "cluster", "create", "sched", "--key-type", "ecdsa-p256", "--leaf-validity", "1s", "--ca-validity", "7d4s").ok(t)

	first := waitForSteps(t, a, "sched", 0, 15*time.Second)
	t.Logf("first automatic step: %s %s", first[0].Action, first[0].Time)
	waitForSteps(t, a, "sched", first[len(first)-1].Seq, 10*time.Second)
	leader, follower := -1, -1
	for i, p := range replicas {
		if strings.Contains(p.log.String(), stepApplied) {
			if leader != -1 {
				t.Fatalf("both replicas applied automatic rotation steps: the election does not hold")
			}
			leader = i
		} else {
			follower = i
		}
	}
	if leader == -1 {
		t.Fatalf("steps are audited but neither replica logged %q", stepApplied)
	}

	replicas[leader].kill(t)
	killed := time.Now()
	s := replicas[follower].asServer()
	before := schedulerSteps(t, s, "sched")
	last := before[len(before)-1].Seq
	after := waitForSteps(t, s, "sched", last, 25*time.Second)
	t.Logf("replica %d took over %s after replica %d was killed: %s", follower, time.Since(killed).Round(time.Millisecond), leader, after[0].Action)
	if !strings.Contains(replicas[follower].log.String(), stepApplied) {
		t.Errorf("steps continue after the leader died, but the surviving replica did not apply them")
	}
	validLineages(t, readCAStatus(t, s.cli(t, s.admin, "ca", "status", "--cluster", "sched", "-o", "json")))
	checkAuditContiguous(t, s)
}
