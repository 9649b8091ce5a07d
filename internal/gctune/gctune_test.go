package gctune

import (
	"context"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercentPutsTheTargetAtTheFloorAndNeverBelowTheDefault(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, floor uint64
		want        int
	}{
		{16 * mib, 40 * mib, 150}, // target 16*(1+1.5) = 40
		{10 * mib, 40 * mib, 300}, // target 40
		{1 * mib, 40 * mib, 300},  // capped
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
