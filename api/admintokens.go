package api

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flinkpki/flinkpki/authority"
	pb "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// Administrator tokens made per second by one server process, after a
// burst: people and jobs need a few a day.
const (
	adminTokensPerSecond = 1
	adminTokenBurst      = 20
)

// CreateAdminToken implements AdminService. One bound for the whole server
// process: a stolen token, or the tokens it made, minting without end would
// keep a revocation (which reads every token) from committing on etcd.
func (s *Server) CreateAdminToken(ctx context.Context, req *pb.CreateAdminTokenRequest) (*pb.CreateAdminTokenResponse, error) {
	actor := actorFrom(ctx)
	if d := s.adminTokens.wait("create"); d > 0 {
		err := status.Errorf(codes.ResourceExhausted, "this server makes at most %d administrator tokens at once, then %d a second: retry in %s", adminTokenBurst, adminTokensPerSecond, d)
		return nil, s.refuse(ctx, actor.Source(), actor, "", "admin_token.create", "rate_limited", err)
	}
	tok, rec, err := s.auth.CreateAdminToken(ctx, actor, req.GetName(), req.GetTtl().AsDuration())
	if err != nil {
		return nil, err
	}
	return &pb.CreateAdminTokenResponse{Token: tok, Info: adminTokenPB(authority.AdminTokenInfo{AdminToken: rec, State: authority.AdminTokenValid})}, nil
}

// ListAdminTokens implements AdminService.
func (s *Server) ListAdminTokens(ctx context.Context, _ *pb.ListAdminTokensRequest) (*pb.ListAdminTokensResponse, error) {
	toks, err := s.auth.AdminTokens(ctx)
	if err != nil {
		return nil, err
	}
	out := &pb.ListAdminTokensResponse{}
	for _, t := range toks {
		out.Tokens = append(out.Tokens, adminTokenPB(t))
	}
	return out, nil
}

// RevokeAdminToken implements AdminService.
func (s *Server) RevokeAdminToken(ctx context.Context, req *pb.RevokeAdminTokenRequest) (*pb.RevokeAdminTokenResponse, error) {
	ids, err := s.auth.RevokeAdminToken(ctx, actorFrom(ctx), req.GetId(), authority.RevokeAdminOptions{KeepMade: req.GetKeepMade(), Force: req.GetForce()})
	if err != nil {
		return nil, err
	}
	return &pb.RevokeAdminTokenResponse{RevokedIds: ids}, nil
}

func adminTokenPB(t authority.AdminTokenInfo) *pb.AdminToken {
	out := &pb.AdminToken{Id: t.ID, Name: t.Name, CreateTime: timestamppb.New(t.Created), CreatedBy: t.CreatedBy, MadeWith: t.MadeWith,
		State: t.State, RevokedWith: t.RevokedWith}
	if !t.Expires.IsZero() {
		out.ExpireTime = timestamppb.New(t.Expires)
	}
	if !t.Revoked.IsZero() {
		out.RevokeTime = timestamppb.New(t.Revoked)
	}
	return out
}
