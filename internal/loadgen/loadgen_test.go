package loadgen

import (
	"context"
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
	o := Run(context.Background(), 100, 8, func(_ context.Context, w, i int) error {
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

func TestRunCountsUnsentRequestsAsFailures(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	o := Run(ctx, 50, 1, func(context.Context, int, int) error {
		cancel()
		return nil
	})
	if len(o.Latencies) != 1 || o.Errors != 49 || !errors.Is(o.FirstErr, context.Canceled) {
		t.Errorf("Run() after cancel = %d ok, %d errors, first %v; want 1, 49, context canceled", len(o.Latencies), o.Errors, o.FirstErr)
	}
}
