package api

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestTheLimiterRefusesPastTheBurstPerIdentityAndSaysWhenToRetry(t *testing.T) {
	l := newLimiter(0.5, 2)
	for i := range 2 {
		if err := l.allow("token-a"); err != nil {
			t.Fatalf("request %d within the burst refused: %v", i+1, err)
		}
	}
	err := l.allow("token-a")
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("request past the burst got %s, want ResourceExhausted", st.Code())
	}
	for _, want := range []string{"rate limit of 0.5/s (burst 2)", "token-a", "retry in"} {
		if !strings.Contains(st.Message(), want) {
			t.Errorf("refusal %q does not say %q", st.Message(), want)
		}
	}
	if err := l.allow("token-b"); err != nil {
		t.Errorf("another identity was refused because of token-a: %v", err)
	}
}

func TestAZeroRateDisablesTheLimiter(t *testing.T) {
	l := newLimiter(0, 5)
	for range 1000 {
		if err := l.allow("x"); err != nil {
			t.Fatalf("a disabled limiter refused: %v", err)
		}
	}
}

// TestConcurrentCallersGetNoMoreThanTheRate: many goroutines at once take
// requests of one identity for a second; together they get at most the
// burst and the rate (each bucket is told the times in order: told an
// earlier one, x/time/rate refills the same interval twice).
func TestConcurrentCallersGetNoMoreThanTheRate(t *testing.T) {
	l := newLimiter(100, 50)
	var admitted atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < time.Second {
				if l.allow("sa:flink/orders") == nil {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if most := 50 + int64(100*elapsed.Seconds()) + 1; admitted.Load() > most {
		t.Fatalf("%d requests admitted in %v, want at most %d (burst 50, 100/s)", admitted.Load(), elapsed, most)
	}
}
