package main

import (
	"fmt"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	flinkpkiv1 "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

type bakeDone struct {
	r   result
	at  time.Time
	out string
}

// startSlowBakes starts n bakes of an RSA-3072 cluster (server-side key
// generation, one at a time with --max-keygen 1, so each takes a while).
func startSlowBakes(t testing.TB, p *procServer, cluster string, n int) chan bakeDone {
	t.Helper()
	done := make(chan bakeDone, n)
	for i := range n {
		out := filepath.Join(t.TempDir(), "out")
		go func() {
			r := p.cli(t, p.admin, "bake", "--cluster", cluster, "--role", "jobmanager", "--holder", fmt.Sprintf("jm-%d", i), "--out", out)
			done <- bakeDone{r, time.Now(), out}
		}()
	}
	return done
}

// refusedWithin polls addr until a TCP connection is refused.
func refusedWithin(addr string, d time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return time.Now(), true
		}
		c.Close()
		time.Sleep(5 * time.Millisecond)
	}
	return time.Time{}, false
}

// TestSIGTERMStopsAcceptingFinishesInFlightRequestsAndExitsCleanly sends
// SIGTERM to the real server while slow bakes run: it must refuse new
// connections at once, still answer every bake it had accepted, exit 0 and
// leave a store that opens.
func TestSIGTERMStopsAcceptingFinishesInFlightRequestsAndExitsCleanly(t *testing.T) {
	metricsAddr := freeAddr(t)
	p := startProcServer(t, "--bake-key-pool", "0", "--max-keygen", "1", "--shutdown-timeout", "60s", "--metrics-listen", metricsAddr)
	p.cli(t, p.admin, "cluster", "create", "slow", "--key-type", "rsa-4096").ok(t)
	const n = 4
	done := startSlowBakes(t, p, "slow", n)
	// Every bake has reached the server (a fixed wait failed on a loaded
	// machine, where a bake still connecting was refused after SIGTERM).
	waitBakesReached(t, metricsAddr, n, func() int { return 0 })
	termAt := time.Now()
	exited := make(chan int, 1)
	go func() { exited <- p.term(t) }()
	refusedAt, ok := refusedWithin(p.addr, 2*time.Second)
	if !ok {
		t.Fatal("the server still accepted connections 2s after SIGTERM")
	}
	if r := p.cli(t, p.admin, "cluster", "list"); r.code == 0 {
		t.Errorf("a new request was served after SIGTERM")
	}
	lastDone := time.Time{}
	for range n {
		d := <-done
		d.r.ok(t)
		if !wholeOrNothing(t, d.out) {
			t.Errorf("a bake that succeeded wrote no file set")
		}
		if d.at.After(lastDone) {
			lastDone = d.at
		}
	}
	if code := <-exited; code != 0 {
		t.Fatalf("server exited %d after SIGTERM, want 0:\n%s", code, p.log.String())
	}
	if !lastDone.After(termAt) {
		t.Fatalf("every bake finished before SIGTERM; nothing was in flight")
	}
	if !refusedAt.Before(lastDone) {
		t.Errorf("the server stopped accepting only after its in-flight requests were done")
	}
	t.Logf("SIGTERM at 0; refusing connections at %s; last in-flight bake answered at %s",
		refusedAt.Sub(termAt).Round(time.Millisecond), lastDone.Sub(termAt).Round(time.Millisecond))
	checkBoltFile(t, p.dir)
}

// TestSIGTERMGivesUpOnInFlightRequestsAfterTheShutdownTimeout: with a short
// --shutdown-timeout, requests that are too slow are cut off, yet the
// process exits 0 in time and the store opens.
func TestSIGTERMGivesUpOnInFlightRequestsAfterTheShutdownTimeout(t *testing.T) {
	metricsAddr := freeAddr(t)
	p := startProcServer(t, "--bake-key-pool", "0", "--max-keygen", "1", "--shutdown-timeout", "200ms", "--metrics-listen", metricsAddr)
	// RSA-4096 keys take about a second each here, one at a time: of the
	// bakes in flight at SIGTERM, not all can finish within 200 ms.
	p.cli(t, p.admin, "cluster", "create", "slow", "--key-type", "rsa-4096").ok(t)
	const n = 8
	started := startSlowBakes(t, p, "slow", n)
	var finished atomic.Int32
	done := make(chan bakeDone, n)
	go func() {
		for range n {
			d := <-started
			finished.Add(1)
			done <- d
		}
	}()
	// Every bake has reached the server or is done (a fixed wait could
	// pass with bakes still connecting, refused after SIGTERM: their
	// failures would pass for cuts).
	waitBakesReached(t, metricsAddr, n, func() int { return int(finished.Load()) })
	start := time.Now()
	if code := p.term(t); code != 0 {
		t.Fatalf("server exited %d after SIGTERM, want 0:\n%s", code, p.log.String())
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the server took %s to exit with --shutdown-timeout 200ms", took)
	}
	cut := 0 // every bake had reached the server: each failure is a cut
	for range n {
		if d := <-done; d.r.code != 0 {
			cut++
			if wholeOrNothing(t, d.out) {
				t.Errorf("a bake that failed wrote a file set")
			}
		}
	}
	if cut == 0 {
		t.Errorf("no bake was cut off by the shutdown timeout; the test proved nothing")
	}
	checkBoltFile(t, p.dir)
}

// waitBakesReached waits until each of n bakes is in flight at the server
// (its in-flight gauge for Bake) or finished.
func waitBakesReached(t *testing.T, metricsAddr string, n int, finished func() int) {
	t.Helper()
	gauge := fmt.Sprintf("flinkpki_grpc_requests_in_flight{method=%q}", flinkpkiv1.EnrollmentService_Bake_FullMethodName)
	for waited := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		inFlight, _ := metricValue(scrapeMetrics(t, metricsAddr), gauge)
		if inFlight+finished() == n {
			return
		}
		if time.Since(waited) > 60*time.Second {
			t.Fatalf("the server never had every one of %d bakes in flight or done (%s %d, %d done)", n, gauge, inFlight, finished())
		}
	}
}
