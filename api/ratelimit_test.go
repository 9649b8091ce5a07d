package api

import (
	"strings"
	"testing"

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
