package main

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// benchResult is the stable JSON shape of a bench enroll run.
type benchResult struct {
	Requests         int     `json:"requests"`
	Concurrency      int     `json:"concurrency"`
	Errors           int     `json:"errors"`
	FreshConnections bool    `json:"fresh_connections"`
	Connections      int     `json:"connections"`
	KeyType          string  `json:"key_type"`
	Format           string  `json:"format"`
	DurationS        float64 `json:"duration_s"`
	CertsPerSecond   float64 `json:"certs_per_second"`
	MeanMS           float64 `json:"mean_ms"`
	P50MS            float64 `json:"p50_ms"`
	P90MS            float64 `json:"p90_ms"`
	P99MS            float64 `json:"p99_ms"`
	MaxMS            float64 `json:"max_ms"`
	FirstError       string  `json:"first_error,omitempty"`
}

// summarize computes throughput and latency percentiles of the successful
// requests. Percentiles use the nearest-rank method, so they are always a
// latency that was measured.
func summarize(r benchResult, latencies []time.Duration, elapsed time.Duration) benchResult {
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
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

// printBenchTable writes the result for people.
func printBenchTable(w io.Writer, r benchResult) error {
	conns := fmt.Sprintf("keep-alive (%d connections)", r.Connections)
	if r.FreshConnections {
		conns = "fresh TLS connection per request"
	}
	t := newTable(w)
	fmt.Fprintf(t, "requests\t%d (%d errors)\n", r.Requests, r.Errors)
	fmt.Fprintf(t, "concurrency\t%d, %s\n", r.Concurrency, conns)
	fmt.Fprintf(t, "key, format\t%s, %s\n", r.KeyType, r.Format)
	fmt.Fprintf(t, "duration\t%.2fs\n", r.DurationS)
	fmt.Fprintf(t, "throughput\t%.1f certs/s\n", r.CertsPerSecond)
	fmt.Fprintf(t, "latency\tmean %.1fms  p50 %.1fms  p90 %.1fms  p99 %.1fms  max %.1fms\n", r.MeanMS, r.P50MS, r.P90MS, r.P99MS, r.MaxMS)
	return t.Flush()
}
