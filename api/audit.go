package api

import (
	"context"
	"fmt"
	"io"
	"math"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flinkpki/flinkpki/authority"
	pb "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// ListAudit implements AuditService.
func (s *Server) ListAudit(ctx context.Context, req *pb.ListAuditRequest) (*pb.ListAuditResponse, error) {
	n := int(req.GetLimit())
	if n < 0 {
		return nil, fmt.Errorf("%w: limit %d is negative: use 1 to %d, or 0 for %d", authority.ErrInvalid, n, maxPageSize, maxPageSize)
	}
	if n == 0 || n > maxPageSize {
		n = maxPageSize // one answer stays far below gRPC's 4 MiB message limit
	}
	if err := checkAfterSeq(req.GetAfterSeq()); err != nil {
		return nil, err
	}
	es, next, err := s.auth.ListAudit(ctx, req.GetCluster(), req.GetAfterSeq(), n)
	if err != nil {
		return nil, err
	}
	out := &pb.ListAuditResponse{NextAfterSeq: next}
	for _, e := range es {
		out.Entries = append(out.Entries, &pb.AuditEntry{
			Seq: e.Seq, Time: timestamppb.New(e.Time), Actor: e.Actor, Cluster: e.Cluster, Action: e.Action,
			Outcome: e.Outcome, Reason: e.Reason, Details: e.Details, PrevHash: e.Prev, Hash: e.Hash,
		})
	}
	return out, nil
}

// VerifyAudit implements AuditService.
func (s *Server) VerifyAudit(ctx context.Context, req *pb.VerifyAuditRequest) (*pb.VerifyAuditResponse, error) {
	if req.GetMaxEntries() < 0 {
		return nil, fmt.Errorf("%w: max_entries %d is negative: use 0 for the whole trail", authority.ErrInvalid, req.GetMaxEntries())
	}
	if err := checkAfterSeq(req.GetAfterSeq()); err != nil {
		return nil, err
	}
	r, err := s.auth.VerifyAuditPart(ctx, req.GetAfterSeq(), req.GetPrevHash(), int(req.GetMaxEntries()))
	if err != nil {
		return nil, err
	}
	return &pb.VerifyAuditResponse{Ok: r.FirstBad == 0, Entries: r.Entries, FirstBadSeq: r.FirstBad, Message: r.Message,
		LastSeq: r.LastSeq, LastHash: r.LastHash, Done: r.Done, ArchivedThroughSeq: r.Archived, ArchivedHash: r.ArchivedHash}, nil
}

// PruneAudit implements AuditService.
func (s *Server) PruneAudit(ctx context.Context, req *pb.PruneAuditRequest) (*pb.PruneAuditResponse, error) {
	r, err := s.auth.PruneAudit(ctx, actorFrom(ctx), req.GetThroughSeq(), req.GetThroughHash(), int(req.GetMaxEntries()))
	if err != nil {
		return nil, err
	}
	resp := &pb.PruneAuditResponse{Removed: uint64(r.Removed), ArchivedThroughSeq: r.Archived, Done: r.Done}
	if r.Stopped != nil {
		resp.Stopped = status.Convert(toStatus(r.Stopped)).Message() // an internal fault's detail stays in the log
	}
	return resp, nil
}

// MaxAfterSeq is the largest after_seq ListAudit and VerifyAudit accept:
// above it "after" would wrap around to the start of the trail, and no
// trail grows that long.
const MaxAfterSeq = math.MaxInt64

func checkAfterSeq(after uint64) error {
	if after > MaxAfterSeq {
		return fmt.Errorf("%w: after_seq %d is out of range: use 0 to %d", authority.ErrInvalid, after, uint64(MaxAfterSeq))
	}
	return nil
}

// Backup implements AdminService: a consistent online snapshot, streamed.
// A copy of the store (sealed CA keys, token hashes, the trail) leaving the
// server is audited, streamed in full or not.
func (s *Server) Backup(_ *pb.BackupRequest, stream pb.AdminService_BackupServer) error {
	ctx := stream.Context()
	w := &chunkWriter{stream: stream}
	n, err := s.backup(ctx, w)
	if aerr := s.auth.AuditBackup(context.WithoutCancel(ctx), actorFrom(ctx), n, err); aerr != nil && err == nil {
		return aerr
	}
	return err
}

type chunkWriter struct {
	stream pb.AdminService_BackupServer
}

const chunkSize = 256 << 10

func (c *chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), chunkSize)
		if err := c.stream.Send(&pb.BackupChunk{Data: p[:k]}); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

var _ io.Writer = (*chunkWriter)(nil)
