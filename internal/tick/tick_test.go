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
	start := time.Now()
	calls := everyUntilThird(t, "Every did not return after its context ended", func(now time.Time, _ int) {
		if now.Before(start) {
			t.Error("a tick before the start")
		}
	})
	// A tick ready together with the end may still be taken: at least 3.
	if calls < 3 {
		t.Fatalf("%d calls, want at least 3 (the third ended the context)", calls)
	}
}

// everyUntilThird runs Every on a 1 ms interval, calling f with each
// tick's time and call number, until the third call ends its context, and
// returns how many calls there were; it fails the test with stuck when
// Every has not returned within 30 s.
func everyUntilThird(t *testing.T, stuck string, f func(now time.Time, call int)) int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	done := make(chan struct{})
	go func() {
		Every(ctx, time.Millisecond, func(now time.Time) {
			if calls++; calls == 3 {
				cancel()
			}
			f(now, calls)
		})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal(stuck)
	}
	return calls
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
	calls := everyUntilThird(t, "Every did not go on after a panicking call", func(_ time.Time, call int) {
		if call == 1 {
			var records []string
			_ = records[call] // a bug: index out of range
		}
	})
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
