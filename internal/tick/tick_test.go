package tick

import (
	"context"
	"testing"
	"time"
)

// TestEveryCallsUntilTheContextEnds: f runs on ticks with the tick's time
// and Every returns once ctx ends.
func TestEveryCallsUntilTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	calls := 0
	done := make(chan struct{})
	go func() {
		Every(ctx, time.Millisecond, func(now time.Time) {
			if now.Before(start) {
				t.Error("a tick before the start")
			}
			if calls++; calls == 3 {
				cancel()
			}
		})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Every did not return after its context ended")
	}
	// A tick ready together with the end may still be taken: at least 3.
	if calls < 3 {
		t.Fatalf("%d calls, want at least 3 (the third ended the context)", calls)
	}
}
