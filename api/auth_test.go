package api

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	pb "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
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

// TestOnlyTheEnrollmentServiceIsOpenToCallersOtherThanAdministrators: an
// enrollment token may call the enrollment service alone; every other
// flinkpki service, and one added later that nobody listed, needs an
// administrator token (the list says what is open, not what is closed).
func TestOnlyTheEnrollmentServiceIsOpenToCallersOtherThanAdministrators(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders"})
	bearer, _, err := e.Authority.CreateToken(e.Ctx, authoritytest.Offline, "orders", "taskmanager", 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Authority: e.Authority, EnrollRate: 100, EnrollBurst: 100})
	ctx := metadata.NewIncomingContext(e.Ctx, metadata.Pairs("authorization", "Bearer "+bearer))
	if _, err := s.authorize(ctx, pb.EnrollmentService_Enroll_FullMethodName, nil); err != nil {
		t.Fatalf("an enrollment token calling Enroll: %v", err)
	}
	for _, m := range []string{pb.ClusterService_ListClusters_FullMethodName, pb.AuditService_ListAudit_FullMethodName,
		pb.AdminService_ListAdminTokens_FullMethodName, pb.AuthorityService_GetStatus_FullMethodName, "/flinkpki.v1.FutureService/Do"} {
		if _, err := s.authorize(ctx, m, nil); codeOf(err) != codes.PermissionDenied {
			t.Errorf("an enrollment token calling %s: %v, want PermissionDenied", m, err)
		}
	}
}
