package ca

import (
	"context"
	"crypto"
	"testing"
	"time"
)

// t0 is the fixed "now" of tests.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedClock(at time.Time) func() time.Time { return func() time.Time { return at } }

// newTestCA creates a real CA at t0 and fails the test on error.
func newTestCA(tb testing.TB, req CreateRequest) (*CA, crypto.Signer) {
	tb.Helper()
	if req.Cluster == "" {
		req.Cluster = "orders"
	}
	if req.Purpose == "" {
		req.Purpose = PurposeInternal
	}
	if req.Generation == 0 {
		req.Generation = 1
	}
	c, key, err := Create(context.Background(), Config{Now: fixedClock(t0)}, req)
	if err != nil {
		tb.Fatalf("Create(%+v): %v", req, err)
	}
	return c, key
}
