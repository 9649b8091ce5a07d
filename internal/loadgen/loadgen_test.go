package loadgen

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	t.Parallel()
	lat := make([]time.Duration, 0, 100)
	for i := 100; i >= 1; i-- { // unsorted on purpose
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	r := summarize(Result{Requests: 100}, lat, 2*time.Second)
	want := Result{Requests: 100, DurationS: 2, CertsPerSecond: 50, MeanMS: 50.5, P50MS: 50, P90MS: 90, P99MS: 99, MaxMS: 100}
	if r != want {
		t.Errorf("summarize() = %+v, want %+v", r, want)
	}
	if lat[0] != 100*time.Millisecond {
		t.Error("summarize() reordered the caller's slice")
	}
	if r := summarize(Result{Requests: 3, Errors: 3}, nil, time.Second); r.CertsPerSecond != 0 || r.P99MS != 0 {
		t.Errorf("summarize() of only errors = %+v, want zero throughput and latency", r)
	}
	if got := percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("Percentile of one sample = %v, want that sample", got)
	}
}

func TestRunSendsEachRequestOnceAndCountsFailures(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[int]int{}
	workers := map[int]bool{}
	boom := errors.New("boom")
	o := Run(context.Background(), Load{Requests: 100, Concurrency: 8}, func(_ context.Context, w, i int) error {
		mu.Lock()
		seen[i]++
		workers[w] = true
		mu.Unlock()
		if i%10 == 0 {
			return boom
		}
		return nil
	})
	if len(seen) != 100 {
		t.Fatalf("Run sent %d distinct requests, want 100", len(seen))
	}
	for i, n := range seen {
		if n != 1 || i < 0 || i >= 100 {
			t.Fatalf("request %d sent %d times", i, n)
		}
	}
	if len(workers) > 8 {
		t.Errorf("Run used %d workers, want at most 8", len(workers))
	}
	if o.Errors != 10 || len(o.Latencies) != 90 || !errors.Is(o.FirstErr, boom) || o.Elapsed <= 0 {
		t.Errorf("Run() = %d latencies, %d errors, first %v, elapsed %v; want 90, 10, boom, >0", len(o.Latencies), o.Errors, o.FirstErr, o.Elapsed)
	}
}

// TestRunWarmsUpUnmeasured: the warm-up requests are sent first, before
// any measured one, on the same workers, with indices of their own, and
// appear in no figure; their failures are counted apart and reported.
func TestRunWarmsUpUnmeasured(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var order []int
	boom := errors.New("warm-up boom")
	o := Run(context.Background(), Load{Requests: 40, Concurrency: 4, Warmup: 12}, func(_ context.Context, w, i int) error {
		mu.Lock()
		order = append(order, i)
		mu.Unlock()
		if w >= 4 {
			t.Errorf("request %d on worker %d, want one of 4", i, w)
		}
		if i == 45 {
			return boom
		}
		if i >= 40 {
			time.Sleep(20 * time.Millisecond) // a slow warm-up must not show in the latencies
		}
		return nil
	})
	if len(order) != 52 {
		t.Fatalf("Run sent %d requests, want 12 warm-up and 40 measured", len(order))
	}
	seen := map[int]bool{}
	for k, i := range order {
		if seen[i] {
			t.Fatalf("request %d sent twice", i)
		}
		seen[i] = true
		if warm := i >= 40; warm != (k < 12) {
			t.Fatalf("request %d was sent %dth: the 12 warm-up requests (40 and up) must all come first; order %v", i, k+1, order)
		}
	}
	r := o.Result(Result{})
	if len(o.Latencies) != 40 || o.Errors != 0 || r.Requests != 40 || r.Warmup != 12 || r.WarmupErrors != 1 || !errors.Is(o.FirstErr, boom) {
		t.Errorf("Run() = %d latencies, %d errors, result %+v, first %v; want 40 measured without errors, 1 of 12 warm-up failed, first the warm-up's", len(o.Latencies), o.Errors, r, o.FirstErr)
	}
	for _, l := range o.Latencies {
		if l >= 20*time.Millisecond {
			t.Errorf("a measured latency of %v: the slow warm-up requests were measured", l)
		}
	}
}

// TestRunCountsInterruptedRequestsApart: a run interrupted part way counts
// what it never sent, and what failed only because it was interrupted,
// apart from the server's failures.
func TestRunCountsInterruptedRequestsApart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	boom := errors.New("boom")
	o := Run(ctx, Load{Requests: 50, Concurrency: 1, Warmup: 2}, func(ctx context.Context, _, i int) error {
		switch {
		case i == 0:
			return boom
		case i == 1 || i >= 50: // the second measured request, and the warm-up
			return nil
		}
		cancel()
		return ctx.Err() // cut off by the interruption
	})
	r := o.Result(Result{})
	if len(o.Latencies) != 1 || o.Errors != 1 || o.Interrupted != 48 || r.Interrupted != 48 || r.Errors != 1 || !errors.Is(o.FirstErr, boom) {
		t.Errorf("Run() after cancel = %d ok, %d errors, %d interrupted (result %d), first %v; want 1, 1, 48, boom", len(o.Latencies), o.Errors, o.Interrupted, r.Interrupted, o.FirstErr)
	}
}

func TestRunMeasuresItsOwnCPU(t *testing.T) {
	// Not parallel: the process's CPU time is what is measured.
	buf := make([]byte, 1<<20)
	work := func(context.Context, int, int) error {
		sha256.Sum256(buf) // at least a few hundred µs of CPU on any machine
		return nil
	}
	if _, ok := processCPU(); !ok {
		t.Fatal("processCPU is not measured on this system, which the bench rows rely on")
	}
	o := Run(context.Background(), Load{Requests: 50, Concurrency: 2}, work)
	r := o.Result(Result{})
	// Hashing 1 MiB takes well over 100 µs even at several GB/s.
	if r.ClientCPUUS < 100 || o.CPU < 50*100*time.Microsecond {
		t.Errorf("Run measured %v of CPU, %.1f µs per request, for 50 hashes of 1 MiB; want at least 100 µs each", o.CPU, r.ClientCPUUS)
	}
	if (Outcome{Latencies: make([]time.Duration, 3)}).Result(Result{}).ClientCPUUS != 0 {
		t.Error("an outcome without a CPU measurement reports client CPU")
	}
}
