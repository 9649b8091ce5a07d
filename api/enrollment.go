package api

import (
	"context"
	"crypto/x509"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/ca"
	pb "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// Enroll implements EnrollmentService. An empty CSR asks only for the key
// type the holder must generate; it spends nothing.
func (s *Server) Enroll(ctx context.Context, req *pb.EnrollRequest) (*pb.EnrollResponse, error) {
	actor := actorFrom(ctx)
	if len(req.GetCsr()) == 0 {
		kt, err := s.auth.KeyType(ctx, actor, req.GetCluster(), req.GetRole(), holderHint(actor, req.GetHolder()))
		if err != nil {
			return nil, err
		}
		return &pb.EnrollResponse{KeyType: kt}, nil
	}
	iss, err := s.auth.Enroll(ctx, actor, authority.EnrollRequest{
		Cluster: req.GetCluster(), Role: req.GetRole(), Holder: req.GetHolder(), CSR: req.GetCsr(),
		DNSNames: req.GetDnsNames(), IPs: req.GetIpAddresses(),
	})
	if err != nil {
		return nil, err
	}
	return &pb.EnrollResponse{Chain: ders(iss.Chain), TrustedCas: ders(iss.Trusted), Holder: iss.Holder, KeyType: iss.KeyType, NotAfter: timestamppb.New(iss.NotAfter), Superseded: superseded(iss.Superseded)}, nil
}

// holderHint lets the key-type probe validate a holder the same way the
// real request will (a Kubernetes actor's holder is its pod).
func holderHint(actor authority.Actor, holder string) string {
	if holder == "" && actor.Kind != authority.ActorK8s {
		return "probe"
	}
	return holder
}

// Bake implements EnrollmentService.
func (s *Server) Bake(ctx context.Context, req *pb.BakeRequest) (*pb.BakeResponse, error) {
	iss, err := s.auth.Bake(ctx, actorFrom(ctx), authority.EnrollRequest{
		Cluster: req.GetCluster(), Role: req.GetRole(), Holder: req.GetHolder(),
		DNSNames: req.GetDnsNames(), IPs: req.GetIpAddresses(),
	})
	if err != nil {
		return nil, err
	}
	key, err := ca.MarshalKey(iss.Key)
	if err != nil {
		return nil, err
	}
	return &pb.BakeResponse{PrivateKey: key, Chain: ders(iss.Chain), TrustedCas: ders(iss.Trusted), Holder: iss.Holder, KeyType: iss.KeyType, NotAfter: timestamppb.New(iss.NotAfter), Superseded: superseded(iss.Superseded)}, nil
}

func ders(certs []*x509.Certificate) [][]byte {
	out := make([][]byte, len(certs))
	for i, c := range certs {
		out[i] = c.Raw
	}
	return out
}

// superseded is s on the wire, or nil.
func superseded(s *authority.Superseded) *pb.SupersededHolder {
	if s == nil {
		return nil
	}
	return &pb.SupersededHolder{Serial: s.Serial, NotAfter: timestamppb.New(s.NotAfter), Actor: s.Actor}
}
