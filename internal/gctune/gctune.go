// Package gctune lets a small Go heap grow to a floor before it is
// collected. With GOGC=100 a server whose live heap is 8 MiB collects every
// 8 MiB of allocation, which on the issuance path is every few hundred
// requests; raising GOGC while the live heap is small trades a few MiB of
// memory for a fifth of the server's CPU. The tuner only ever raises GOGC,
// and falls back to the default as the live heap grows, so the heap target
// is max(floor, 2 x live).
//
// GOGC, and a soft memory limit that follows the live heap (Limit), are set
// again after every collection, from the live heap that collection found,
// so a live heap that jumps (a burst of new TLS connections) moves the next
// target with it: the GOGC that suited 2 MiB never applies to 60, and the
// limit that suited 2 MiB never holds 60. (Until the twenty-second session
// both were set once a second, and the limit was 2 x live + floor/2: in a
// burst of a thousand new connections it bound below the growing live heap
// and the collector ran flat out, which more than doubled the server's CPU
// per certificate.) When a burst ends, the first idle tick gives the free
// heap back to the operating system.
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
// the heap) for a live heap of live bytes: 2 x floor while the live heap is
// small, and 4 x live + floor/2 beyond that. It is a backstop: it holds the
// heap when a collection has just found a live heap far larger than the last
// one (GOGC still set for the small one would let the heap grow tenfold)
// until the tuner has set GOGC again, and it binds only when the live heap
// more than doubles between two collections. A tighter limit (2 x live +
// floor/2, until the twenty-second session) bound all through a burst of a
// thousand new connections, whose live heap grows a little at every
// collection, and the collector marked the whole heap again and again.
func Limit(live, floor uint64) int64 {
	return int64(max(2*floor, 4*live+floor/2))
}

// IdleAlloc is how little a process may allocate in one tick and still
// count as idle.
const IdleAlloc = 1 << 20

// Start tunes GOGC after every collection until ctx ends, and returns at
// once. Every interval it looks whether the process allocated anything: on
// the first idle tick after a busy one it collects and returns the free heap
// to the operating system (debug.FreeOSMemory), so an idle server holds what
// it uses, not what its last burst needed until the next burst or the
// runtime's two-minute collection. It does nothing when GOGC or GOMEMLIMIT
// is set in the environment: the operator decided.
func Start(ctx context.Context, floor uint64, interval time.Duration) bool {
	for _, env := range []string{"GOGC", "GOMEMLIMIT"} {
		if _, set := os.LookupEnv(env); set {
			return false
		}
	}
	t := newTuner(floor)
	// Until the first collection the live heap reads zero, which Percent
	// takes for "not measured" and answers with the default: a short-lived
	// process (a load generator's run) would collect every few MiB until
	// its first collection. One collection of a young heap measures it.
	if metrics.Read(t.live[:]); t.live[0].Value.Kind() == metrics.KindUint64 && t.live[0].Value.Uint64() == 0 {
		runtime.GC()
	}
	t.tune()
	t.armAfterNextGC(ctx)
	go tick.Every(ctx, nil, interval, func(time.Time) { t.tick() })
	return true
}

func newTuner(floor uint64) *tuner {
	return &tuner{floor: floor, percent: 100,
		live:   [1]metrics.Sample{{Name: "/gc/heap/live:bytes"}},
		allocs: [1]metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}}
}

type tuner struct {
	floor uint64

	// tune's, called by Start and then only after collections, one at a time.
	percent int   // the GOGC set last
	limit   int64 // the memory limit set last
	live    [1]metrics.Sample

	// tick's, on the ticker's goroutine.
	allocated uint64 // bytes allocated up to the last tick
	busy      bool   // the last tick saw at least IdleAlloc allocated
	allocs    [1]metrics.Sample
}

// tune sets GOGC and the memory limit from the live heap the last
// collection found.
func (t *tuner) tune() {
	metrics.Read(t.live[:])
	if t.live[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	live := t.live[0].Value.Uint64()
	if l := Limit(live, t.floor); l != t.limit {
		debug.SetMemoryLimit(l)
		t.limit = l
	}
	if p := Percent(live, t.floor); p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
}

// gcHook is an object nothing refers to: the collection that finds it
// unreachable runs its finalizer, which tunes and sets the finalizer
// again, so that the next collection runs it too.
type gcHook struct {
	t   *tuner
	ctx context.Context
}

func (t *tuner) armAfterNextGC(ctx context.Context) {
	runtime.SetFinalizer(&gcHook{t: t, ctx: ctx}, afterGC)
}

func afterGC(h *gcHook) {
	if h.ctx.Err() != nil {
		return // stopped: the hook is collected for good
	}
	h.t.tune()
	runtime.SetFinalizer(h, afterGC)
}

// tick gives the free heap back on the first idle tick after a busy one.
func (t *tuner) tick() {
	metrics.Read(t.allocs[:])
	if t.allocs[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	allocated := t.allocs[0].Value.Uint64()
	busy := allocated-t.allocated >= IdleAlloc
	t.allocated = allocated
	if t.busy && !busy {
		debug.FreeOSMemory()
	}
	t.busy = busy
}
