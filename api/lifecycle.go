package api

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/ca"
	pb "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// GetStatus implements AuthorityService.
func (s *Server) GetStatus(ctx context.Context, req *pb.GetStatusRequest) (*pb.CAStatus, error) {
	return s.status(ctx, req.GetCluster())
}

// Prepare implements AuthorityService.
func (s *Server) Prepare(ctx context.Context, req *pb.PrepareRequest) (*pb.CAStatus, error) {
	if err := s.auth.Prepare(ctx, actorFrom(ctx), req.GetCluster(), req.GetPurpose()); err != nil {
		return nil, err
	}
	return s.status(ctx, req.GetCluster())
}

// Activate implements AuthorityService.
func (s *Server) Activate(ctx context.Context, req *pb.ActivateRequest) (*pb.CAStatus, error) {
	if err := s.auth.Activate(ctx, actorFrom(ctx), req.GetCluster(), req.GetPurpose(), req.GetForce()); err != nil {
		return nil, err
	}
	return s.status(ctx, req.GetCluster())
}

// Retire implements AuthorityService.
func (s *Server) Retire(ctx context.Context, req *pb.RetireRequest) (*pb.CAStatus, error) {
	if err := s.auth.Retire(ctx, actorFrom(ctx), req.GetCluster(), req.GetPurpose(), req.GetForce()); err != nil {
		return nil, err
	}
	return s.status(ctx, req.GetCluster())
}

func (s *Server) status(ctx context.Context, cluster string) (*pb.CAStatus, error) {
	st, err := s.auth.Status(ctx, cluster)
	if err != nil {
		return nil, err
	}
	out := &pb.CAStatus{Cluster: cluster, LiveHolders: int32(st.LiveHolders), AutoRotate: st.Cluster.AutoRotate}
	if !st.EarliestExpiry.IsZero() {
		out.EarliestLiveLeafExpiry = timestamppb.New(st.EarliestExpiry)
	}
	for _, l := range st.Lineages {
		ls := &pb.LineageStatus{Purpose: string(l.Purpose), NextStep: &pb.RotationStep{Kind: string(l.Next.Kind), CaId: l.Next.CAID, Blockers: l.Blockers, BlockersTotal: int32(l.BlockersTotal),
			LapsedBlockers: l.Lapsed},
			Stranded: l.Stranded, StrandedTotal: int32(l.StrandedTotal)}
		if l.Next.Kind != ca.StepNone {
			ls.NextStep.Time = timestamppb.New(l.Next.At)
		}
		if !l.LapsedUntil.IsZero() {
			ls.NextStep.LapsedUntil = timestamppb.New(l.LapsedUntil)
		}
		for _, i := range l.CAs {
			ls.Cas = append(ls.Cas, caPB(i))
		}
		out.Lineages = append(out.Lineages, ls)
	}
	return out, nil
}

// ListHolders implements AuthorityService.
func (s *Server) ListHolders(ctx context.Context, req *pb.ListHoldersRequest) (*pb.ListHoldersResponse, error) {
	n := int(req.GetPageSize()) // 0: every holder, as before pages
	if n < 0 {
		return nil, fmt.Errorf("%w: page size %d is negative: use 1 to %d, or 0 for every holder", authority.ErrInvalid, n, maxPageSize)
	}
	hs, next, err := s.auth.ListHoldersPage(ctx, req.GetCluster(), req.GetIncludeExpired(), req.GetPageToken(), min(n, maxPageSize))
	if err != nil {
		return nil, err
	}
	out := &pb.ListHoldersResponse{NextPageToken: next}
	for _, h := range hs {
		out.Holders = append(out.Holders, &pb.Holder{
			Name: h.Name, Role: h.Role, Purpose: h.Purpose, Serial: h.Serial, SignedBy: h.SignedBy, Trusts: h.Trusts,
			IssueTime: timestamppb.New(h.Issued), NotAfter: timestamppb.New(h.NotAfter), Actor: h.Actor,
		})
	}
	return out, nil
}

// ReleaseHolder implements AuthorityService.
func (s *Server) ReleaseHolder(ctx context.Context, req *pb.ReleaseHolderRequest) (*pb.ReleaseHolderResponse, error) {
	n, err := s.auth.ReleaseHolder(ctx, actorFrom(ctx), req.GetCluster(), req.GetHolder(), req.GetPurpose())
	if err != nil {
		return nil, err
	}
	return &pb.ReleaseHolderResponse{Released: int32(n)}, nil
}
