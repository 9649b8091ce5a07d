package gctune

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMain runs the tests as a server starts without GOGC and GOMEMLIMIT
// in its environment, which is what Start tunes; a shell that exports
// either would otherwise fail them. The tests that need them set them.
func TestMain(m *testing.M) {
	os.Unsetenv("GOGC")
	os.Unsetenv("GOMEMLIMIT")
	os.Exit(m.Run())
}

func TestPercentPutsTheTargetAtTheFloorAndNeverBelowTheDefault(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, floor uint64
		want        int
	}{
		{16 * mib, 40 * mib, 150}, // target 16*(1+1.5) = 40
		{10 * mib, 40 * mib, 300}, // target 40
		{2 * mib, 20 * mib, 900},  // a server's small live heap reaches its floor
		{1 * mib, 40 * mib, 1000}, // capped
		{20 * mib, 40 * mib, 100}, // 2 x live reaches the floor: the default
		{200 * mib, 40 * mib, 100},
		{0, 40 * mib, 100}, // nothing measured yet
	} {
		if got := Percent(c.live, c.floor); got != c.want {
			t.Errorf("Percent(%d MiB, %d MiB) = %d, want %d", c.live/mib, c.floor/mib, got, c.want)
		}
	}
}

func TestStartRaisesGOGCForASmallHeapUnlessTheEnvironmentSetsIt(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runtime.GC()                       // the live heap is measured by a collection
	if !Start(ctx, 1<<30, time.Hour) { // a 1 GiB floor: any test heap is small
		t.Fatal("Start did nothing with GOGC unset")
	}
	if got := debug.SetGCPercent(100); got <= 100 {
		t.Errorf("GOGC after Start = %d, want above 100 for a heap far below the floor", got)
	}
	t.Setenv("GOGC", "100")
	if Start(ctx, 1<<30, time.Hour) {
		t.Error("Start tuned GOGC although GOGC is set in the environment")
	}
}

// TestStartMeasuresTheLiveHeapOfAYoungProcess runs Start in a process of
// its own where nothing has been collected yet. The live heap then reads
// zero, and without a first collection GOGC stayed at the default until
// the next tick: a second of collections every few MiB for a load
// generator's short run.
func TestStartMeasuresTheLiveHeapOfAYoungProcess(t *testing.T) {
	if os.Getenv("GCTUNE_YOUNG_PROCESS") == "1" {
		live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(live)
		if live[0].Value.Uint64() != 0 {
			fmt.Println("already-collected")
			return
		}
		Start(context.Background(), 1<<30, time.Hour)
		fmt.Printf("gogc=%d\n", debug.SetGCPercent(100))
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestStartMeasuresTheLiveHeapOfAYoungProcess$", "-test.count=1")
	// Start does nothing when the environment sets either.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool {
		return strings.HasPrefix(e, "GOGC=") || strings.HasPrefix(e, "GOMEMLIMIT=")
	})
	cmd.Env = append(cmd.Env, "GCTUNE_YOUNG_PROCESS=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the young process failed: %v\n%s", err, out)
	}
	switch s := string(out); {
	case strings.Contains(s, "already-collected"):
		t.Fatalf("the young test process had collected before the test ran, so this test cannot check Start's first setting:\n%s", s)
	case !strings.Contains(s, fmt.Sprintf("gogc=%d", MaxPercent)):
		t.Errorf("GOGC right after Start in a process that had not collected yet: %s; want gogc=%d (the cap, for a heap far below a 1 GiB floor)", s, MaxPercent)
	}
}

func TestLimitIsABackstopThatBindsOnlyWhenTheLiveHeapMoreThanDoubles(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, floor uint64
		want        int64
	}{
		{1 * mib, 20 * mib, 40 * mib},    // small heap: twice the floor
		{5 * mib, 20 * mib, 40 * mib},    // a jump to 15 MiB live is collected at 40 MiB, not at 60 (GOGC 300)
		{15 * mib, 20 * mib, 70 * mib},   // 4 x live + floor/2
		{200 * mib, 20 * mib, 810 * mib}, // a big heap is never squeezed below GOGC=100
	} {
		got := Limit(c.live, c.floor)
		if got != c.want {
			t.Errorf("Limit(%d MiB, %d MiB) = %d MiB, want %d MiB", c.live/mib, c.floor/mib, got/mib, c.want/mib)
		}
		// GOGC=100 for a live heap twice as large still fits: a burst
		// whose live heap grows a little at every collection is not held.
		if got < int64(4*c.live) {
			t.Errorf("Limit(%d MiB, %d MiB) = %d MiB is below 4 x live", c.live/mib, c.floor/mib, got/mib)
		}
	}
}

// TestGOGCFollowsEveryCollection: the tuner sets GOGC and the memory limit
// again after each collection, not at its ticks (an hour apart here): a
// live heap that grows is collected at twice its size at the next
// collection, and one that shrinks gets the floor's GOGC back.
func TestGOGCFollowsEveryCollection(t *testing.T) {
	oldLimit := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(oldLimit)
	oldPct := debug.SetGCPercent(100)
	defer debug.SetGCPercent(oldPct)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const floor = 64 << 20
	runtime.GC()
	if !Start(ctx, floor, time.Hour) {
		t.Fatal("Start did nothing with GOGC and GOMEMLIMIT unset")
	}
	gogc := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	// waitFor collects until the hook has run and want holds, or gives up.
	waitFor := func(what string, want func(pct uint64, limit uint64) bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; {
			runtime.GC()
			time.Sleep(10 * time.Millisecond) // the finalizer goroutine's turn
			metrics.Read(gogc)
			if pct, limit := gogc[0].Value.Uint64(), gogc[1].Value.Uint64(); want(pct, limit) {
				return
			} else if time.Now().After(deadline) {
				t.Fatalf("%s: GOGC %d, memory limit %d MiB after collections for 10 s", what, pct, limit>>20)
			}
		}
	}
	waitFor("a small heap", func(pct, _ uint64) bool { return pct > 100 })
	big := make([][]byte, 0, 128)
	for range 128 {
		big = append(big, make([]byte, 1<<20))
	}
	waitFor("128 MiB live", func(pct, limit uint64) bool { return pct == 100 && limit >= 4*128<<20 })
	runtime.KeepAlive(big)
	big = nil
	waitFor("the heap freed again", func(pct, limit uint64) bool { return pct > 100 && limit < 4*128<<20 })
	cancel()
}

func TestStartSetsTheMemoryLimitUnlessTheEnvironmentSetsOne(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	oldPct := debug.SetGCPercent(100)
	defer debug.SetGCPercent(oldPct)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runtime.GC()
	if !Start(ctx, 1<<30, time.Hour) {
		t.Fatal("Start did nothing with GOGC and GOMEMLIMIT unset")
	}
	if got := debug.SetMemoryLimit(-1); got != 2<<30 { // a test heap is far below 256 MiB
		t.Errorf("memory limit after Start = %d, want 2 x the 1 GiB floor", got)
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	if Start(ctx, 1<<30, time.Hour) {
		t.Error("Start tuned the collector although GOMEMLIMIT is set in the environment")
	}
}

// TestAnIdleTickGivesTheBurstsMemoryBack: after a burst of allocation, the
// first tick without allocation returns the free heap to the operating
// system. Without it, a heap tuned for a 1 GiB floor keeps the burst's
// memory (free, but not released) until the next burst. The test drives the
// ticks itself, so no tick can fall between the burst and its measurements.
func TestAnIdleTickGivesTheBurstsMemoryBack(t *testing.T) {
	oldLimit := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(oldLimit)
	oldPct := debug.SetGCPercent(100)
	defer debug.SetGCPercent(oldPct)
	tu := newTuner(1 << 30)
	tu.tick()
	mem := []metrics.Sample{
		{Name: "/memory/classes/heap/free:bytes"},     // free, still held
		{Name: "/memory/classes/heap/released:bytes"}, // free, given back to the OS
	}
	var keep [][]byte
	for i := range 400 { // a burst: 400 MiB allocated, 64 MiB of it live at the end
		keep = append(keep, make([]byte, 1<<20))
		if len(keep) > 64 {
			keep = keep[1:]
		}
		if i%50 == 0 {
			runtime.GC() // so the burst leaves free heap behind, as collections during it would
		}
	}
	tu.tick() // busy: nothing is given back
	keep = nil
	runtime.GC() // the burst's memory is now free heap
	metrics.Read(mem)
	freeBefore, releasedBefore := mem[0].Value.Uint64(), mem[1].Value.Uint64()
	if freeBefore < 32<<20 {
		t.Fatalf("the burst left only %d MiB of free heap; the test needs more to tell", freeBefore>>20)
	}

	tu.tick() // idle
	metrics.Read(mem)
	if free := mem[0].Value.Uint64(); free > 8<<20 {
		t.Errorf("%d MiB of free heap still held after an idle tick (%d MiB before it)", free>>20, freeBefore>>20)
	}
	if gave := mem[1].Value.Uint64() - releasedBefore; gave < 32<<20 {
		t.Errorf("only %d MiB went back to the operating system at the idle tick", gave>>20)
	}
}
