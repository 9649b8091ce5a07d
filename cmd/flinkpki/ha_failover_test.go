package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// TestKillingAReplicaUnderEnrollmentLoadLosesAndDuplicatesNothing runs
// enrollments against two real replicas of one etcd store and kills one
// with SIGKILL in the middle. The survivor keeps serving; a request the
// dead replica never answered is retried there. Afterwards every answer a
// client got has its holder record, every issuance is audited exactly
// once, the audit sequence has no gap, and the chain verifies.
func TestKillingAReplicaUnderEnrollmentLoadLosesAndDuplicatesNothing(t *testing.T) {
	h := newHAStore(t)
	victim, survivor := h.procReplica(t), h.procReplica(t)
	survivor.cli(t, survivor.admin, "cluster", "create", "fo", "--key-type", "ecdsa-p256").ok(t)
	tok := survivor.asServer().tokenFor(t, "fo", "taskmanager", "--uses", "1000", "--ttl", "1h")

	const workers, perWorker = 6, 12
	var (
		mu      sync.Mutex
		answers = map[string]string{} // holder -> serial the client received
		done    atomic.Int64
		killed  atomic.Bool
		retried atomic.Int64
		wg      sync.WaitGroup
	)
	for w := range workers {
		ev := newEnroller(t, victim.addr, victim.caFile, tok)
		es := newEnroller(t, survivor.addr, survivor.caFile, tok)
		wg.Go(func() {
			for i := range perWorker {
				holder := fmt.Sprintf("tm-%d-%d", w, i)
				target := es
				if (w+i)%2 == 0 && !killed.Load() {
					target = ev
				}
				serial, err := target.enroll(context.Background(), "fo", holder)
				if err != nil && target == ev {
					// The victim died with the request: its commit may or
					// may not have landed. Retry the same holder at the
					// survivor, as an init container retries through the
					// Service.
					retried.Add(1)
					serial, err = es.enroll(context.Background(), "fo", holder)
				}
				if err != nil {
					t.Errorf("%s: the surviving replica failed: %v", holder, err)
					return
				}
				mu.Lock()
				answers[holder] = serial
				mu.Unlock()
				done.Add(1)
			}
		})
	}
	waitUntil(t, "a third of the enrollments", &wg, func() bool { return done.Load() >= workers*perWorker/3 })
	killed.Store(true)
	victim.kill(t)
	t.Logf("killed one replica after %d of %d enrollments", done.Load(), workers*perWorker)
	wg.Wait()
	t.Logf("%d requests to the killed replica were retried at the survivor", retried.Load())
	if t.Failed() {
		t.FailNow()
	}

	s := survivor.asServer()
	serials := holderSerials(t, s.cli(t, s.admin, "holder", "list", "--cluster", "fo", "-o", "json"))
	if len(serials) != workers*perWorker {
		t.Errorf("%d holder records, want %d", len(serials), workers*perWorker)
	}
	for holder, serial := range answers {
		if serials[holder] != serial {
			t.Errorf("holder %s got serial %s, but its record says %q", holder, serial, serials[holder])
		}
	}
	audited := map[string]int{}
	for _, e := range checkAuditContiguous(t, s) {
		if e.Cluster == "fo" && e.Action == "enroll" && e.Outcome == "ok" {
			audited[e.Details["serial"]]++
		}
	}
	for serial, n := range audited {
		if n != 1 {
			t.Errorf("the issuance of serial %s is audited %d times", serial, n)
		}
	}
	for holder, serial := range answers {
		if audited[serial] != 1 {
			t.Errorf("the leaf %s answered to %s is not audited", serial, holder)
		}
	}
	validLineages(t, readCAStatus(t, s.cli(t, s.admin, "ca", "status", "--cluster", "fo", "-o", "json")))
	if code := survivor.term(t); code != 0 {
		t.Errorf("the survivor exited %d on SIGTERM:\n%s", code, survivor.log.String())
	}
}
