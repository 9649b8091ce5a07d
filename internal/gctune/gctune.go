// Package gctune lets a small Go heap grow to a floor before it is
// collected. With GOGC=100 a server whose live heap is 8 MiB collects every
// 8 MiB of allocation, which on the issuance path is every few hundred
// requests; raising GOGC while the live heap is small trades a few MiB of
// memory for a fifth of the server's CPU. A fixed memory limit would do the
// same but makes the collector spin once the live heap passes it; this tuner
// only ever raises GOGC, and falls back to the default as the live heap
// grows, so the heap target is max(floor, 2 x live).
//
// GOGC is set once a tick, so a live heap that jumps between two ticks (a
// burst of new TLS connections) would let the heap grow to many times its
// new size. A soft memory limit that follows the live heap (Limit) caps that
// overshoot. When a burst ends, the first idle tick gives the free heap back
// to the operating system.
package gctune

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/flinkpki/flinkpki/internal/tick"
)

// Percent is the GOGC that puts the heap target at floor for a live heap of
// live bytes: never below 100 (the Go default) and never above MaxPercent.
// A live heap that jumps between two ticks is held by the memory limit
// (Limit), not by GOGC.
func Percent(live, floor uint64) int {
	if live == 0 || live*2 >= floor {
		return 100
	}
	p := int((floor - live) * 100 / live)
	return min(max(p, 100), MaxPercent)
}

// MaxPercent bounds GOGC for a tiny live heap. It lets a server's 2 MiB of
// live heap (its caches and connections between requests) reach a 20 MiB
// floor: at 300, the bound until the thirteenth session, the server
// collected about 56 times a second under load, 8% of its CPU.
const MaxPercent = 1000

// Limit is the soft memory limit (all of the Go runtime's memory, not just
// the heap) for a live heap of live bytes: 1.5 x floor while the live heap is
// small, which leaves room for the heap target of floor plus stacks and the
// runtime's own use, and 2 x live + floor/2 beyond that, so it never binds
// before GOGC=100 would.
func Limit(live, floor uint64) int64 {
	return int64(max(floor+floor/2, 2*live+floor/2))
}

// IdleAlloc is how little a process may allocate in one tick and still
// count as idle.
const IdleAlloc = 1 << 20

// Start tunes GOGC and the soft memory limit every interval until ctx ends,
// and returns at once. On the first idle tick after a busy one it collects
// and returns the free heap to the operating system (debug.FreeOSMemory):
// an idle server holds what it uses, not what its last burst needed until
// the next burst or the runtime's two-minute collection. It does nothing
// when GOGC or GOMEMLIMIT is set in the environment: the operator decided.
func Start(ctx context.Context, floor uint64, interval time.Duration) bool {
	for _, env := range []string{"GOGC", "GOMEMLIMIT"} {
		if _, set := os.LookupEnv(env); set {
			return false
		}
	}
	t := newTuner(floor)
	// Until the first collection the live heap reads zero, which Percent
	// takes for "not measured" and answers with the default: a short-lived
	// process (a load generator's run) would collect every few MiB for a
	// whole interval. One collection of a young heap measures it.
	if metrics.Read(t.sample[:1]); t.sample[0].Value.Kind() == metrics.KindUint64 && t.sample[0].Value.Uint64() == 0 {
		runtime.GC()
	}
	t.tick()
	go tick.Every(ctx, nil, interval, func(time.Time) { t.tick() })
	return true
}

func newTuner(floor uint64) *tuner {
	return &tuner{floor: floor, percent: 100, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/heap/allocs:bytes"}}}
}

type tuner struct {
	floor   uint64
	percent int    // the GOGC set last
	allocs  uint64 // bytes allocated up to the last tick
	busy    bool   // the last tick saw at least IdleAlloc allocated
	sample  []metrics.Sample
}

func (t *tuner) tick() {
	metrics.Read(t.sample)
	if t.sample[0].Value.Kind() != metrics.KindUint64 || t.sample[1].Value.Kind() != metrics.KindUint64 {
		return
	}
	live, allocs := t.sample[0].Value.Uint64(), t.sample[1].Value.Uint64()
	busy := allocs-t.allocs >= IdleAlloc
	t.allocs = allocs
	if t.busy && !busy {
		debug.FreeOSMemory()
	}
	t.busy = busy
	debug.SetMemoryLimit(Limit(live, t.floor))
	if p := Percent(live, t.floor); p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
}
