// Package api is flinkpki's gRPC surface: where a request enters, is
// authenticated and authorised, and where domain errors become status
// codes. The work itself is done by the authority package.
package api

import (
	"context"
	"io"
	"time"

	"google.golang.org/grpc"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/k8sauth"
	pb "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// Config wires a Server.
type Config struct {
	Authority *authority.Authority
	// K8s verifies projected service-account tokens; nil disables them.
	K8s *k8sauth.Verifier
	// Review asks the API server about service-account tokens; nil disables it.
	Review *k8sauth.Reviewer
	// StaleJWKS is called for each service-account token signed by a key
	// that K8s's JWKS lacks, which Review then judges alone; nil: not told.
	StaleJWKS func(error)
	// UnknownJWKSKey is called for each service-account token signed by a
	// key that K8s's JWKS lacks, judged by Review alone or refused; nil:
	// not counted.
	UnknownJWKSKey func()
	// Backup writes a consistent snapshot of the store.
	Backup func(ctx context.Context, w io.Writer) (int64, error)
	// EnrollRate and EnrollBurst limit enrollment requests per identity
	// (token, service account, administrator); EnrollRate 0 disables it.
	EnrollRate  float64
	EnrollBurst int
}

// Server implements every flinkpki.v1 service.
type Server struct {
	pb.UnimplementedClusterServiceServer
	pb.UnimplementedAuthorityServiceServer
	pb.UnimplementedEnrollmentServiceServer
	pb.UnimplementedAuditServiceServer
	pb.UnimplementedAdminServiceServer

	auth   *authority.Authority
	authn  *Authenticator
	backup func(ctx context.Context, w io.Writer) (int64, error)
	limit  *limiter
	// adminTokens bounds administrator token creation, server-wide.
	adminTokens *limiter
	refusals    *refusalGate
	// summaryEvery is how often RunRefusalSummaries writes (tests shorten it).
	summaryEvery time.Duration
	// maxAnswerBytes bounds a page of clusters (tests lower it).
	maxAnswerBytes int
}

// New returns a Server.
// The Server's refusal gate also gates the Authority's own refusals.
func New(cfg Config) *Server {
	s := &Server{
		auth: cfg.Authority,
		authn: &Authenticator{auth: cfg.Authority, k8s: cfg.K8s, review: cfg.Review, reviews: newLimiter(reviewsPerSecond, reviewBurst),
			accountReviews: accountReviewLimiter(cfg.EnrollRate, cfg.EnrollBurst), reviewing: make(chan struct{}, MaxReviewsInFlight),
			staleJWKS: cfg.StaleJWKS, unknownJWKSKey: cfg.UnknownJWKSKey},
		backup:         cfg.Backup,
		limit:          newLimiter(cfg.EnrollRate, cfg.EnrollBurst),
		adminTokens:    newLimiter(adminTokensPerSecond, adminTokenBurst),
		refusals:       newRefusalGate(),
		summaryEvery:   refusalSummaryEvery,
		maxAnswerBytes: maxAnswerBytes,
	}
	cfg.Authority.SetRefusalGate(s.refusals)
	return s
}

// ServiceNames lists the flinkpki services, for health reporting.
var ServiceNames = []string{
	pb.ClusterService_ServiceDesc.ServiceName,
	pb.AuthorityService_ServiceDesc.ServiceName,
	pb.EnrollmentService_ServiceDesc.ServiceName,
	pb.AuditService_ServiceDesc.ServiceName,
	pb.AdminService_ServiceDesc.ServiceName,
}

// Register adds every flinkpki service to g.
func (s *Server) Register(g *grpc.Server) {
	pb.RegisterClusterServiceServer(g, s)
	pb.RegisterAuthorityServiceServer(g, s)
	pb.RegisterEnrollmentServiceServer(g, s)
	pb.RegisterAuditServiceServer(g, s)
	pb.RegisterAdminServiceServer(g, s)
}

// Interceptors returns the authentication interceptors; put them after
// logging and metrics so refusals are counted and logged too.
func (s *Server) Interceptors() (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	return s.unaryAuth, s.streamAuth
}
