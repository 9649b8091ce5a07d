// Package loadgen runs a closed-loop load (a fixed number of requests on a
// fixed number of workers) and summarizes it: throughput, latency
// percentiles by nearest rank, errors. flinkpki bench enroll and the step-ca
// comparison in bench/stepca both use it, so their rows mean the same.
package loadgen

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// Result is the stable JSON shape of one run (flinkpki bench enroll -o json).
type Result struct {
	Target           string `json:"target,omitempty"`
	Requests         int    `json:"requests"`
	Concurrency      int    `json:"concurrency"`
	Errors           int    `json:"errors"`
	FreshConnections bool   `json:"fresh_connections"`
	// Connections is how many connections the workers share over
	// keep-alive; zero with FreshConnections, where every request dials
	// its own.
	Connections    int     `json:"connections"`
	KeyType        string  `json:"key_type"`
	Format         string  `json:"format"`
	DurationS      float64 `json:"duration_s"`
	CertsPerSecond float64 `json:"certs_per_second"`
	MeanMS         float64 `json:"mean_ms"`
	P50MS          float64 `json:"p50_ms"`
	P90MS          float64 `json:"p90_ms"`
	P99MS          float64 `json:"p99_ms"`
	MaxMS          float64 `json:"max_ms"`
	// ClientCPUUS is the CPU this load generator spent per successful
	// request (user and system, every thread: keys, CSRs, TLS, gRPC,
	// parsing, GC). It shares the cores with the server, so it bounds
	// what any server can reach on one machine. Zero when not measured.
	ClientCPUUS float64 `json:"client_cpu_us,omitempty"`
	// Warmup requests were sent before the measured ones and are in no
	// other figure; WarmupErrors of them failed.
	Warmup       int `json:"warmup,omitempty"`
	WarmupErrors int `json:"warmup_errors,omitempty"`
	// Interrupted requests (measured or warm-up) were never sent, or were
	// cut off, because the run was interrupted: they are in no other count.
	Interrupted int    `json:"interrupted,omitempty"`
	FirstError  string `json:"first_error,omitempty"`
	// NotSent of the Errors (measured requests) were never sent: the run
	// stopped at the server's first refusal (bench enroll and bake).
	NotSent int `json:"not_sent,omitempty"`
}

// Load is what Run sends: Requests measured requests on Concurrency
// workers, after Warmup requests on the same workers that are not measured.
// The warm-up lets connections, goroutine stacks and the collector's pacing
// reach their steady state, so the first requests' set-up does not weigh on
// a short run's latency tail and CPU.
type Load struct {
	Requests, Concurrency, Warmup int
}

// Outcome is what Run measured.
type Outcome struct {
	Requests, Concurrency int
	// Warmup requests were sent first, unmeasured; WarmupErrors failed
	// (the first failure is FirstErr when no measured request failed).
	Warmup, WarmupErrors int
	// Latencies of the successful requests, in completion order.
	Latencies []time.Duration
	// Errors counts failed requests; Interrupted those never sent, or cut
	// off, because ctx ended (measured and warm-up alike).
	Errors, Interrupted int
	FirstErr            error
	Elapsed             time.Duration
	// CPU is what this process spent during the run (zero when the
	// system does not say).
	CPU time.Duration
}

// Result fills r's counts, throughput and latency percentiles from o; the
// caller adds what only it knows (target, key type, format, connections,
// how to word FirstErr).
func (o Outcome) Result(r Result) Result {
	r.Requests, r.Concurrency, r.Errors = o.Requests, o.Concurrency, o.Errors
	r.Warmup, r.WarmupErrors, r.Interrupted = o.Warmup, o.WarmupErrors, o.Interrupted
	if n := len(o.Latencies); n > 0 && o.CPU > 0 {
		r.ClientCPUUS = math.Round(float64(o.CPU.Microseconds())/float64(n)*10) / 10
	}
	return summarize(r, o.Latencies, o.Elapsed)
}

// Run sends l.Warmup requests and then l.Requests measured ones on
// l.Concurrency workers (at most one per measured request); do(ctx, worker,
// i) is request i on worker w. Measured requests are numbered from 0,
// warm-up requests after them (l.Requests and up), so every request has an
// index of its own.
func Run(ctx context.Context, l Load, do func(ctx context.Context, worker, i int) error) Outcome {
	o := Outcome{Requests: l.Requests, Concurrency: max(1, min(l.Concurrency, l.Requests)), Warmup: max(l.Warmup, 0)}
	_, warmFailed, warmCut, warmErr := send(ctx, o.Warmup, o.Concurrency, l.Requests, do)
	o.WarmupErrors = warmFailed
	cpu0, cpuOK := processCPU()
	start := time.Now()
	var cut int
	o.Latencies, o.Errors, cut, o.FirstErr = send(ctx, l.Requests, o.Concurrency, 0, do)
	o.Interrupted = warmCut + cut
	o.Elapsed = time.Since(start)
	if cpu1, ok := processCPU(); ok && cpuOK {
		o.CPU = cpu1 - cpu0
	}
	if o.FirstErr == nil {
		o.FirstErr = warmErr
	}
	return o
}

// send sends n requests, numbered from first, on up to workers workers,
// until they are all sent or ctx ends. It returns the latencies of those
// that succeeded, in completion order, how many failed, how many were
// never sent or failed only because ctx ended, and the first failure.
func send(ctx context.Context, n, workers, first int, do func(ctx context.Context, worker, i int) error) (latencies []time.Duration, failed, cut int, firstErr error) {
	var (
		next atomic.Int64
		mu   sync.Mutex
		wg   sync.WaitGroup
	)
	latencies = make([]time.Duration, 0, n)
	for w := range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				err := do(ctx, w, first+i)
				d := time.Since(t0)
				mu.Lock()
				if err != nil && ctx.Err() != nil {
					cut++ // ended with the run, not by the server
				} else if err != nil {
					failed++
					if firstErr == nil {
						firstErr = err
					}
				} else {
					latencies = append(latencies, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	cut = n - len(latencies) - failed
	return latencies, failed, cut, firstErr
}

// summarize fills in throughput and latency percentiles of the successful
// requests. Percentiles use the nearest-rank method, so they are always a
// latency that was measured. The caller's slice is not reordered.
func summarize(r Result, latencies []time.Duration, elapsed time.Duration) Result {
	r.DurationS = elapsed.Seconds()
	if elapsed > 0 {
		r.CertsPerSecond = float64(len(latencies)) / elapsed.Seconds()
	}
	if len(latencies) == 0 {
		return r
	}
	sorted := slices.Clone(latencies)
	slices.Sort(sorted)
	var total time.Duration
	for _, l := range sorted {
		total += l
	}
	r.MeanMS = ms(total / time.Duration(len(sorted)))
	r.P50MS = ms(percentile(sorted, 50))
	r.P90MS = ms(percentile(sorted, 90))
	r.P99MS = ms(percentile(sorted, 99))
	r.MaxMS = ms(sorted[len(sorted)-1])
	return r
}

// percentile returns the nearest-rank p-th percentile of sorted latencies.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := max((p*len(sorted)+99)/100, 1) // ceil(p/100 * n)
	return sorted[rank-1]
}

func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

// PrintTable writes the result for people.
func PrintTable(w io.Writer, r Result) error {
	conns := fmt.Sprintf("keep-alive (%d connections)", r.Connections)
	if r.FreshConnections {
		conns = "fresh TLS connection per request"
	}
	t := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if r.Target != "" {
		fmt.Fprintf(t, "target\t%s\n", r.Target)
	}
	fmt.Fprintf(t, "requests\t%d (%d errors)\n", r.Requests, r.Errors)
	if r.Warmup > 0 {
		fmt.Fprintf(t, "warm-up\t%d first, not measured (%d errors)\n", r.Warmup, r.WarmupErrors)
	}
	if r.Interrupted > 0 {
		fmt.Fprintf(t, "interrupted\t%d requests not sent or cut off\n", r.Interrupted)
	}
	fmt.Fprintf(t, "concurrency\t%d, %s\n", r.Concurrency, conns)
	fmt.Fprintf(t, "key, format\t%s, %s\n", r.KeyType, r.Format)
	fmt.Fprintf(t, "duration\t%.2fs\n", r.DurationS)
	fmt.Fprintf(t, "throughput\t%.1f certs/s\n", r.CertsPerSecond)
	fmt.Fprintf(t, "latency\tmean %.1fms  p50 %.1fms  p90 %.1fms  p99 %.1fms  max %.1fms\n", r.MeanMS, r.P50MS, r.P90MS, r.P99MS, r.MaxMS)
	if r.ClientCPUUS > 0 {
		fmt.Fprintf(t, "load generator CPU\t%.0f µs per request (it shares the cores with the server)\n", r.ClientCPUUS)
	}
	return t.Flush()
}
