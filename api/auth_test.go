package api

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/flinkpki/flinkpki/authority"
)

func TestBearerRefusesMissingDuplicateOversizedAndMalformedHeaders(t *testing.T) {
	secret := "fpe_" + strings.Repeat("s", 60)
	cases := []struct {
		name string
		md   metadata.MD
		want string
	}{
		{"no authorization header", metadata.MD{}, "no token"},
		{"two authorization headers", metadata.Pairs("authorization", "Bearer a", "authorization", "Bearer b"), "more than one authorization header"},
		{"a header over 8 KiB", metadata.Pairs("authorization", "Bearer "+strings.Repeat("x", MaxBearerSize)), "over the 8192-byte limit"},
		{"a basic credential", metadata.Pairs("authorization", "Basic "+secret), `must be "Bearer <token>"`},
		{"a bearer without a token", metadata.Pairs("authorization", "Bearer   "), `must be "Bearer <token>"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := bearer(metadata.NewIncomingContext(context.Background(), c.md))
			if !errors.Is(err, authority.ErrUnauthenticated) {
				t.Fatalf("err = %v, want ErrUnauthenticated", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("err %q does not say %q", err, c.want)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "xxxxxxxx") {
				t.Errorf("err echoes the credential: %q", err)
			}
		})
	}
	got, err := bearer(metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "bearer "+secret)))
	if err != nil || got != secret {
		t.Errorf("a lower-case bearer scheme = %q, %v; want the token", got, err)
	}
}
