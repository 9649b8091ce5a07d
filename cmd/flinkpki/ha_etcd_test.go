package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestTheServerRidesThroughTheLossOfTheEtcdLeader kills the raft leader
// of etcd while enrollments run against one replica. The replica is not
// restarted: a request in the gap fails with Unavailable only, and
// succeeds when retried once the remaining members have a new leader.
func TestTheServerRidesThroughTheLossOfTheEtcdLeader(t *testing.T) {
	h := newHAStore(t)
	s := h.replica(t)
	s.cli(t, s.admin, "cluster", "create", "gap", "--key-type", "ecdsa-p256").ok(t)
	tok := s.tokenFor(t, "gap", "taskmanager", "--uses", "1000", "--ttl", "1h")

	const workers, perWorker = 4, 15
	var (
		done, unavailable atomic.Int64
		wg                sync.WaitGroup
	)
	for w := range workers {
		e := newEnroller(t, s.addr, s.caFile, tok)
		wg.Go(func() {
			for i := range perWorker {
				holder := fmt.Sprintf("tm-%d-%d", w, i)
				deadline := time.Now().Add(30 * time.Second)
				for {
					_, err := e.enroll(context.Background(), "gap", holder)
					if err == nil {
						break
					}
					if status.Code(err) != codes.Unavailable {
						t.Errorf("%s failed with %v, want success or Unavailable", holder, err)
						return
					}
					unavailable.Add(1)
					if time.Now().After(deadline) {
						t.Errorf("%s still fails 30s into the failover: %v", holder, err)
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
				done.Add(1)
			}
		})
	}
	waitUntil(t, "a quarter of the enrollments", &wg, func() bool { return done.Load() >= workers*perWorker/4 })
	ctx := context.Background()
	old, err := h.etcd.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h.etcd.Kill(old)
	killed := time.Now()
	wg.Wait()
	t.Logf("killed etcd leader m%d after %d enrollments; %d requests failed with Unavailable and were retried; all done %s after the kill",
		old, workers*perWorker/4, unavailable.Load(), time.Since(killed).Round(time.Millisecond))
	if t.Failed() {
		t.FailNow()
	}
	if now, err := h.etcd.Leader(ctx); err != nil || now == old {
		t.Fatalf("etcd leader after the kill = m%d (%v), the killed one was m%d", now, err, old)
	}
	if n := len(holderSerials(t, s.cli(t, s.admin, "holder", "list", "--cluster", "gap", "-o", "json"))); n != workers*perWorker {
		t.Errorf("%d holder records, want %d", n, workers*perWorker)
	}
	checkAuditContiguous(t, s)
}

// TestHealthGoesNotServingWithoutQuorumAndServingWhenItReturns kills two
// of three etcd members under a running replica: its health service
// must say NOT_SERVING, so Kubernetes takes the pod out of the Service,
// and SERVING again once the members are back, without a restart.
func TestHealthGoesNotServingWithoutQuorumAndServingWhenItReturns(t *testing.T) {
	h := newHAStore(t)
	healthAddr := freeAddr(t)
	s := h.replica(t, "--health-listen", healthAddr)
	s.cli(t, s.admin, "cluster", "create", "quorum", "--key-type", "ecdsa-p256").ok(t)
	e := newEnroller(t, s.addr, s.caFile, s.tokenFor(t, "quorum", "taskmanager"))
	conn, err := grpc.NewClient(healthAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	waitFor := func(want healthpb.HealthCheckResponse_ServingStatus, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		var last any
		for time.Since(start) < within {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
			cancel()
			if err == nil && resp.GetStatus() == want {
				return time.Since(start)
			}
			last = err
			if err == nil {
				last = resp.GetStatus()
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("health did not become %s within %s; last answer %v\nserver log:\n%s", want, within, last, s.stderr.String())
		return 0
	}
	waitFor(healthpb.HealthCheckResponse_SERVING, 5*time.Second)
	h.etcd.Kill(1)
	h.etcd.Kill(2)
	t.Logf("NOT_SERVING %s after losing quorum", waitFor(healthpb.HealthCheckResponse_NOT_SERVING, 15*time.Second).Round(time.Millisecond))
	// Retryable, not a refusal: init containers retry Unavailable only.
	if _, err := e.enroll(context.Background(), "quorum", "tm-0"); status.Code(err) != codes.Unavailable {
		t.Fatalf("enroll without an etcd quorum = %v, want Unavailable", err)
	}
	for _, i := range []int{1, 2} {
		if err := h.etcd.Restart(i); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("SERVING %s after the members returned", waitFor(healthpb.HealthCheckResponse_SERVING, 20*time.Second).Round(time.Millisecond))
	if _, err := e.enroll(context.Background(), "quorum", "tm-0"); err != nil {
		t.Fatalf("the retried enroll after the quorum returned: %v", err)
	}
	s.cli(t, s.admin, "cluster", "create", "after-quorum").ok(t)
}
