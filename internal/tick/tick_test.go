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
	calls := everyUntilThird(t, nil, "Every did not return after its context ended", func(now time.Time, _ int) {
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
func everyUntilThird(t *testing.T, log *slog.Logger, stuck string, f func(now time.Time, call int)) int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	done := make(chan struct{})
	go func() {
		Every(ctx, log, time.Millisecond, func(now time.Time) {
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
// stored record trips) is logged with its stack on the logger it was
// given (the server's, in its format), and the loop calls it again at the
// next tick instead of ending the process; Call does the same for a
// loop's first call. Without a logger, slog's default logger has it.
func TestAPanickingCallIsLoggedAndTheTicksGoOn(t *testing.T) {
	var logs, defaults bytes.Buffer
	var mu sync.Mutex
	sink := func(b *bytes.Buffer) writerFunc {
		return func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return b.Write(p)
		}
	}
	log := slog.New(slog.NewJSONHandler(sink(&logs), nil))
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(sink(&defaults), nil)))
	defer slog.SetDefault(old)

	Call(log, func(time.Time) { panic("first call broke") }, time.Now())
	calls := everyUntilThird(t, log, "Every did not go on after a panicking call", func(_ time.Time, call int) {
		if call == 1 {
			var records []string
			_ = records[call] // a bug: index out of range
		}
	})
	if calls < 3 {
		t.Fatalf("%d calls, want at least 3: the ticks after the panic must come", calls)
	}
	Call(nil, func(time.Time) { panic("no logger given") }, time.Now())
	mu.Lock()
	out, def := logs.String(), defaults.String()
	mu.Unlock()
	for _, want := range []string{`"msg":"periodic work panicked`, "first call broke", "index out of range [1] with length 0", "tick_test.go"} {
		if !strings.Contains(out, want) {
			t.Errorf("the given logger's output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(def, "first call broke") || strings.Contains(def, "index out of range") {
		t.Errorf("a panic went to slog's default logger although a logger was given:\n%s", def)
	}
	if !strings.Contains(def, "no logger given") {
		t.Errorf("without a logger the panic must reach slog's default logger:\n%s", def)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
