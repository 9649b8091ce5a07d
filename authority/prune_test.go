package authority_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/internal/etcdtest"
	"github.com/flinkpki/flinkpki/store/etcd"
)

// TestPruningDeletesOnlyHoldersExpiredLongerThanTheRetention on bbolt.
func TestPruningDeletesOnlyHoldersExpiredLongerThanTheRetention(t *testing.T) {
	pruneScenario(t)
}

// TestPruningDeletesOnlyHoldersExpiredLongerThanTheRetentionOnEtcd: the
// same on a real etcd, where every transaction must stay small.
func TestPruningDeletesOnlyHoldersExpiredLongerThanTheRetentionOnEtcd(t *testing.T) {
	c := etcdtest.New(t, 1)
	pruneScenario(t, onEtcd(c, etcd.Config{Prefix: "/prune/"}))
}

// pruneScenario: 250 holders of one cluster and 3 of another expire; ten of
// them and a new one enroll again before. Pruning with a retention longer
// than their expiry is ago deletes nothing; a shorter one deletes exactly
// the expired ones, of both clusters, in audited chunks of at most 100, and
// leaves every live holder and the lifecycle status as they were.
func pruneScenario(t *testing.T, opts ...authoritytest.Option) {
	e := authoritytest.New(t, opts...)
	const leaf = 30 * day
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders", CAValidity: 400 * day, LeafValidity: leaf})
	e.CreateCluster(authority.CreateClusterRequest{Name: "other", CAValidity: 400 * day, LeafValidity: leaf})
	for i := range 250 {
		e.Enroll("orders", "taskmanager", fmt.Sprintf("tm-%03d", i))
	}
	for i := range 3 {
		e.Enroll("other", "jobmanager", fmt.Sprintf("jm-%d", i))
	}
	e.Clock.Add(20 * day)
	for i := range 10 {
		e.Enroll("orders", "taskmanager", fmt.Sprintf("tm-%03d", i)) // supersedes: expires 20 days later
	}
	e.Enroll("orders", "taskmanager", "tm-new")
	e.Clock.Add(20 * day) // the first leaves expired 10 days ago

	holders := func(cluster string) (all, live int) {
		t.Helper()
		hs, err := e.Authority.ListHolders(e.Ctx, cluster, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			if h.NotAfter.After(e.Clock.Now()) {
				live++
			}
		}
		return len(hs), live
	}
	if all, live := holders("orders"); all != 251 || live != 11 {
		t.Fatalf("before pruning: %d holders, %d live; want 251 and 11", all, live)
	}
	before := summary(status(t, e, "orders"))
	auditBefore := len(e.Audit("orders"))

	n, err := e.Authority.PruneHolders(e.Ctx, 15*day)
	if err != nil || n != 0 {
		t.Fatalf("retention 15 days pruned %d (err %v); the leaves expired only 10 days ago", n, err)
	}
	if all, _ := holders("orders"); all != 251 {
		t.Fatalf("a prune that deleted nothing left %d holders, want 251", all)
	}

	n, err = e.Authority.PruneHolders(e.Ctx, 7*day)
	if err != nil {
		t.Fatal(err)
	}
	if n != 243 {
		t.Fatalf("retention 7 days pruned %d holders, want 240 of orders and 3 of other", n)
	}
	if all, live := holders("orders"); all != 11 || live != 11 {
		t.Fatalf("after pruning: %d holders, %d live; want the 11 live ones only", all, live)
	}
	if all, _ := holders("other"); all != 0 {
		t.Fatalf("after pruning, cluster other keeps %d expired holders", all)
	}
	if after := summary(status(t, e, "orders")); after != before {
		t.Fatalf("pruning changed the lifecycle status:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	var counts []int
	for _, a := range e.Audit("orders")[auditBefore:] {
		if a.Action != "holder.prune" || a.Actor != "system:retention" || a.Details["expired_before"] == "" {
			t.Fatalf("unexpected audit entry %+v", a)
		}
		c, err := strconv.Atoi(a.Details["count"])
		if err != nil || c < 1 || c > 100 {
			t.Fatalf("a holder.prune entry counts %q: want 1 to 100 per transaction", a.Details["count"])
		}
		counts = append(counts, c)
	}
	if fmt.Sprint(counts) != "[100 100 40]" {
		t.Fatalf("holder.prune entries of orders count %v, want [100 100 40]", counts)
	}

	auditBefore = len(e.Audit("orders"))
	if n, err := e.Authority.PruneHolders(e.Ctx, 7*day); err != nil || n != 0 {
		t.Fatalf("a second prune deleted %d (err %v), want 0", n, err)
	}
	if got := len(e.Audit("orders")); got != auditBefore {
		t.Fatalf("a prune that deleted nothing wrote %d audit entries", got-auditBefore)
	}
	if n, err := e.Authority.PruneHolders(e.Ctx, 0); err != nil || n != 0 {
		t.Fatalf("retention 0 (keep forever) pruned %d (err %v)", n, err)
	}

	// A pruned holder is a new holder when its pod enrolls again.
	e.Enroll("orders", "taskmanager", "tm-100")
	if all, live := holders("orders"); all != 12 || live != 12 {
		t.Fatalf("after tm-100 enrolled again: %d holders, %d live; want 12 and 12", all, live)
	}
}

// TestOnlyTheLeaderPrunes: the pruning loop deletes nothing while its
// replica is not the leader, and prunes once it is.
func TestOnlyTheLeaderPrunes(t *testing.T) {
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders", CAValidity: 400 * day, LeafValidity: 30 * day})
	e.Enroll("orders", "taskmanager", "tm-0")
	e.Clock.Add(40 * day) // expired 10 days ago
	var leading atomic.Bool
	ctx, cancel := context.WithCancel(e.Ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Authority.RunPruner(ctx, 0, 5*time.Millisecond, 7*day, leading.Load)
	}()
	defer func() { cancel(); <-done }()
	time.Sleep(100 * time.Millisecond) // twenty passes
	if n := holderCount(t, e, "orders"); n != 1 {
		t.Fatalf("a replica that is not the leader pruned: %d holders left, want 1", n)
	}
	leading.Store(true)
	deadline := time.Now().Add(10 * time.Second)
	for holderCount(t, e, "orders") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the leader never pruned the expired holder")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPruningKeepsAHolderThatStillBlocksForTheSkewGrace: a step counts a
// leaf as live for the clock-skew grace past its expiry, so a retention
// shorter than the grace must not prune the record that makes the step
// wait: activate stays refused until the grace has passed.
func TestPruningKeepsAHolderThatStillBlocksForTheSkewGrace(t *testing.T) {
	e := authoritytest.New(t)
	const leaf = 2 * time.Hour // a grace of 5 minutes
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders", CAValidity: 400 * day, LeafValidity: leaf, NoAutoRotate: true})
	e.Enroll("orders", "taskmanager", "tm-0")
	if err := e.Authority.Prepare(e.Ctx, authoritytest.Admin, "orders", "internal"); err != nil {
		t.Fatal(err)
	}
	e.Clock.Add(leaf + time.Minute) // tm-0's leaf expired a minute ago

	if n, err := e.Authority.PruneHolders(e.Ctx, time.Second); err != nil || n != 0 {
		t.Fatalf("a retention of 1s pruned %d holders (err %v) within the grace; want none", n, err)
	}
	if err := e.Authority.Activate(e.Ctx, authoritytest.Admin, "orders", "internal", false); err == nil {
		t.Fatal("activate went through while tm-0, which lacks the prepared CA, is within its grace")
	}
	e.Clock.Add(5 * time.Minute) // past the grace here, not on a replica 5 minutes behind
	if n, err := e.Authority.PruneHolders(e.Ctx, time.Second); err != nil || n != 0 {
		t.Fatalf("a retention of 1s pruned %d holders (err %v) within the grace of a replica 5 minutes behind; want none", n, err)
	}
	e.Clock.Add(5 * time.Minute)
	if n, err := e.Authority.PruneHolders(e.Ctx, time.Second); err != nil || n != 1 {
		t.Fatalf("after the grace a retention of 1s pruned %d holders (err %v); want tm-0", n, err)
	}
}
