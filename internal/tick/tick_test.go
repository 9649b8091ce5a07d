package tick

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
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

// TestAPanickingCallIsLoggedAndTheTicksGoOn: work that panics (a bug some
// stored record trips) is logged with its stack, and the loop calls it
// again at the next tick instead of ending the process; Call does the same
// for a loop's first call.
func TestAPanickingCallIsLoggedAndTheTicksGoOn(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil)))
	defer slog.SetDefault(old)

	Call(func(time.Time) { panic("first call broke") }, time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	done := make(chan struct{})
	go func() {
		Every(ctx, time.Millisecond, func(time.Time) {
			if calls++; calls == 3 {
				cancel()
			}
			if calls == 1 {
				var records []string
				_ = records[calls] // a bug: index out of range
			}
		})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Every did not go on after a panicking call")
	}
	if calls < 3 {
		t.Fatalf("%d calls, want at least 3: the ticks after the panic must come", calls)
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	for _, want := range []string{"first call broke", "index out of range [1] with length 0", "periodic work panicked", "tick_test.go"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
