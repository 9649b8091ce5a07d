package api

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/issuer"
	pb "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/token"
)

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// CreateCluster implements ClusterService.
func (s *Server) CreateCluster(ctx context.Context, req *pb.CreateClusterRequest) (*pb.Cluster, error) {
	r := authority.CreateClusterRequest{
		Name: req.GetName(), KeyType: req.GetKeyType(), NoAutoRotate: req.GetDisableAutoRotate(),
		CAValidity: req.GetCaValidity().AsDuration(), LeafValidity: req.GetLeafValidity().AsDuration(),
	}
	if req.GetCaValidity() != nil && r.CAValidity <= 0 {
		return nil, s.auth.Deny(ctx, actorFrom(ctx), req.GetName(), "cluster.create", "invalid", fmt.Errorf("%w: CA validity must be positive, got %s", authority.ErrInvalid, r.CAValidity))
	}
	if req.GetLeafValidity() != nil && r.LeafValidity <= 0 {
		return nil, s.auth.Deny(ctx, actorFrom(ctx), req.GetName(), "cluster.create", "invalid", fmt.Errorf("%w: leaf validity must be positive, got %s", authority.ErrInvalid, r.LeafValidity))
	}
	r.K8sBindings = bindingsFromPB(req.GetK8SBindings())
	v, err := s.auth.CreateCluster(ctx, actorFrom(ctx), r)
	if err != nil {
		return nil, err
	}
	return viewPB(v), nil // a new cluster has no holders
}

// UpdateCluster implements ClusterService.
func (s *Server) UpdateCluster(ctx context.Context, req *pb.UpdateClusterRequest) (*pb.Cluster, error) {
	r := authority.UpdateClusterRequest{Name: req.GetName(), AutoRotate: req.AutoRotate,
		AddK8sBindings: bindingsFromPB(req.GetAddK8SBindings()), RemoveK8sBindings: bindingsFromPB(req.GetRemoveK8SBindings())}
	v, err := s.auth.UpdateCluster(ctx, actorFrom(ctx), r)
	if err != nil {
		return nil, err
	}
	// The cluster as GetCluster shows it, with its CAs' live holders; when
	// that read fails, the update stands and the answer goes without them.
	if c, err := s.GetCluster(ctx, &pb.GetClusterRequest{Name: req.GetName()}); err == nil {
		return c, nil
	}
	return viewPB(v), nil
}

// bindingsFromPB converts a request's Kubernetes bindings.
func bindingsFromPB(bs []*pb.K8SBinding) []store.K8sBinding {
	var out []store.K8sBinding
	for _, b := range bs {
		out = append(out, store.K8sBinding{Namespace: b.GetNamespace(), ServiceAccount: b.GetServiceAccount(), Roles: b.GetRoles()})
	}
	return out
}

// GetCluster implements ClusterService.
func (s *Server) GetCluster(ctx context.Context, req *pb.GetClusterRequest) (*pb.Cluster, error) {
	// Status holds the cluster and its lineages already; one read suffices.
	st, err := s.auth.Status(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	var cas []authority.CAInfo
	for _, l := range st.Lineages {
		cas = append(cas, l.CAs...)
	}
	return clusterPB(st.Cluster, cas), nil
}

// ListClusters implements ClusterService.
func (s *Server) ListClusters(ctx context.Context, req *pb.ListClustersRequest) (*pb.ListClustersResponse, error) {
	n := int(req.GetPageSize())
	if n <= 0 {
		n = defaultPageSize
	}
	n = min(n, maxPageSize)
	// A page token is the name of the last cluster of the page before. A
	// token this server never gave out must not silently list from
	// wherever it happens to sort.
	if tok := req.GetPageToken(); tok != "" && issuer.ValidateCluster(tok) != nil {
		return nil, fmt.Errorf("%w: page token %q is not one this server gave out: pass the next_page_token of the page before, or none for the first page", authority.ErrInvalid, tok)
	}
	vs, next, err := s.auth.ListClusters(ctx, req.GetPageToken(), n)
	if err != nil {
		return nil, err
	}
	out := &pb.ListClustersResponse{NextPageToken: next}
	size := 0
	for i, v := range vs {
		c := viewPB(v)
		c.LiveHoldersUncounted = true
		// A page ends early rather than outgrow what a client accepts:
		// a thousand RSA-4096 clusters in mid-rotation carry about 9 MiB
		// of CA certificates, and gRPC clients take 4 MiB by default.
		if size += proto.Size(c) + 8; size > s.maxAnswerBytes && i > 0 {
			out.NextPageToken = vs[i-1].Cluster.Name
			break
		}
		out.Clusters = append(out.Clusters, c)
	}
	return out, nil
}

// maxAnswerBytes bounds a page of clusters, below gRPC's default 4 MiB
// receive limit.
const maxAnswerBytes = 3 << 20

// DeleteCluster implements ClusterService.
func (s *Server) DeleteCluster(ctx context.Context, req *pb.DeleteClusterRequest) (*pb.DeleteClusterResponse, error) {
	return &pb.DeleteClusterResponse{}, s.auth.DeleteCluster(ctx, actorFrom(ctx), req.GetName())
}

// ListTokens implements ClusterService.
func (s *Server) ListTokens(ctx context.Context, req *pb.ListTokensRequest) (*pb.ListTokensResponse, error) {
	n := int(req.GetPageSize())
	switch {
	case n < 0:
		return nil, fmt.Errorf("%w: page size %d is negative: use 1 to %d", authority.ErrInvalid, n, maxPageSize)
	case n == 0:
		n = defaultPageSize
	}
	// A page token is the ID of the page's last token. Anything else would
	// list from wherever it sorts; it is not quoted, because what was
	// pasted there may be a token's secret.
	if tok := req.GetPageToken(); tok != "" && !token.ValidID(tok) {
		return nil, fmt.Errorf("%w: the page token is not one this server gave out: pass the next_page_token of the page before, or none for the first page", authority.ErrInvalid)
	}
	toks, next, err := s.auth.ListTokens(ctx, req.GetCluster(), req.GetPageToken(), min(n, maxPageSize))
	if err != nil {
		return nil, err
	}
	out := &pb.ListTokensResponse{NextPageToken: next}
	for _, t := range toks {
		out.Tokens = append(out.Tokens, &pb.EnrollmentToken{
			Id: t.ID, Cluster: t.Cluster, Role: t.Role, UsesLeft: int32(t.UsesLeft),
			CreateTime: timestamppb.New(t.Created), ExpireTime: timestamppb.New(t.Expires), MadeWith: t.MadeWith,
		})
	}
	return out, nil
}

// RevokeToken implements ClusterService.
func (s *Server) RevokeToken(ctx context.Context, req *pb.RevokeTokenRequest) (*pb.RevokeTokenResponse, error) {
	cluster, err := s.auth.RevokeToken(ctx, actorFrom(ctx), req.GetId())
	if err != nil {
		return nil, err
	}
	return &pb.RevokeTokenResponse{Cluster: cluster}, nil
}

// CreateToken implements ClusterService.
func (s *Server) CreateToken(ctx context.Context, req *pb.CreateTokenRequest) (*pb.CreateTokenResponse, error) {
	tok, rec, err := s.auth.CreateToken(ctx, actorFrom(ctx), req.GetCluster(), req.GetRole(), req.GetTtl().AsDuration(), int(req.GetUses()))
	if err != nil {
		return nil, err
	}
	return &pb.CreateTokenResponse{Token: tok, Id: rec.ID, ExpireTime: timestamppb.New(rec.Expires), Uses: int32(rec.UsesLeft)}, nil
}

// viewPB is a cluster whose CAs' live-holder counts are 0: right for a new
// cluster, and marked LiveHoldersUncounted in a listing.
func viewPB(v *authority.ClusterView) *pb.Cluster {
	cas := make([]authority.CAInfo, 0, len(v.CAs))
	for _, d := range v.CAs {
		cas = append(cas, authority.CAInfo{CA: d})
	}
	return clusterPB(v.Cluster, cas)
}

func clusterPB(c *store.Cluster, cas []authority.CAInfo) *pb.Cluster {
	out := &pb.Cluster{
		Name: c.Name, KeyType: c.KeyType, CaValidity: durationpb.New(c.CAValidity), LeafValidity: durationpb.New(c.LeafValidity),
		AutoRotate: c.AutoRotate, CreateTime: timestamppb.New(c.Created),
	}
	for _, b := range c.K8sBindings {
		out.K8SBindings = append(out.K8SBindings, &pb.K8SBinding{Namespace: b.Namespace, ServiceAccount: b.ServiceAccount, Roles: b.Roles})
	}
	for _, i := range cas {
		out.Cas = append(out.Cas, caPB(i))
	}
	return out
}

func caPB(i authority.CAInfo) *pb.CertificateAuthority {
	d := i.CA
	return &pb.CertificateAuthority{
		Id: d.ID, Purpose: string(d.Purpose), Generation: int32(d.Generation), State: string(d.State),
		Sha256Fingerprint: ca.Fingerprint(d.Cert), NotBefore: timestamppb.New(d.Cert.NotBefore), NotAfter: timestamppb.New(d.Cert.NotAfter),
		Subject: d.Cert.Subject.String(), Certificate: d.Cert.Raw,
		LiveHoldersSigned: int32(i.LiveSigned), LiveHoldersTrusting: int32(i.LiveTrusting),
	}
}
