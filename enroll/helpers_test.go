package enroll

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flinkpki/flinkpki/ca"
	flinkpkiv1 "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// testCA is a throwaway CA for the test server's TLS and for signing leaves.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newTestCA(t testing.TB, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

func (c *testCA) sign(t testing.TB, pub crypto.PublicKey, serial int64, server bool) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, pub, c.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// enrollServer is an EnrollmentService on real TLS over loopback that signs
// CSRs with a test CA, recording what it received.
type enrollServer struct {
	flinkpkiv1.UnimplementedEnrollmentServiceServer
	t       testing.TB
	signer  *testCA
	keyType ca.KeyType
	// wrongLeaf makes Enroll sign a different key than the CSR's.
	wrongLeaf bool

	mu       sync.Mutex
	requests []*flinkpkiv1.EnrollRequest
	tokens   []string
}

func (s *enrollServer) record(ctx context.Context, req *flinkpkiv1.EnrollRequest) {
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, req)
	s.tokens = append(s.tokens, md.Get("authorization")...)
}

func (s *enrollServer) Enroll(ctx context.Context, req *flinkpkiv1.EnrollRequest) (*flinkpkiv1.EnrollResponse, error) {
	s.record(ctx, req)
	if len(req.GetCsr()) == 0 {
		return &flinkpkiv1.EnrollResponse{KeyType: string(s.keyType)}, nil
	}
	csr, err := x509.ParseCertificateRequest(req.GetCsr())
	if err != nil || csr.CheckSignature() != nil {
		return nil, status.Error(codes.InvalidArgument, "bad CSR")
	}
	if kt, err := ca.KeyTypeOf(csr.PublicKey); err != nil || kt != s.keyType {
		return nil, status.Errorf(codes.InvalidArgument, "the CSR's key is %s, the cluster uses %s", kt, s.keyType)
	}
	pub := csr.PublicKey
	if s.wrongLeaf {
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		pub = other.Public()
	}
	return &flinkpkiv1.EnrollResponse{
		Chain: [][]byte{s.signer.sign(s.t, pub, 7, false), s.signer.cert.Raw}, TrustedCas: [][]byte{s.signer.cert.Raw},
		Holder: req.GetHolder(), KeyType: string(s.keyType),
	}, nil
}

func (s *enrollServer) Bake(ctx context.Context, req *flinkpkiv1.BakeRequest) (*flinkpkiv1.BakeResponse, error) {
	key, err := s.keyType.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &flinkpkiv1.BakeResponse{
		PrivateKey: der, Chain: [][]byte{s.signer.sign(s.t, key.Public(), 8, false)}, TrustedCas: [][]byte{s.signer.cert.Raw},
		Holder: req.GetHolder(), KeyType: string(s.keyType),
	}, nil
}

// startServer serves srv on 127.0.0.1 with TLS and returns its address and
// the path of a PEM file holding the CA that signed its certificate.
func startServer(t testing.TB, srv flinkpkiv1.EnrollmentServiceServer) (addr, caFile string) {
	t.Helper()
	g, caFile := newTLSServer(t, srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	return lis.Addr().String(), caFile
}

// newTLSServer returns a gRPC server for srv with a TLS certificate for
// 127.0.0.1, not yet serving, and the CA file that verifies it.
func newTLSServer(t testing.TB, srv flinkpkiv1.EnrollmentServiceServer) (*grpc.Server, string) {
	t.Helper()
	tlsCA := newTestCA(t, "test serving CA")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{tlsCA.sign(t, key.Public(), 2, true)}, PrivateKey: key}
	g := grpc.NewServer(grpc.Creds(grpccreds.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})))
	flinkpkiv1.RegisterEnrollmentServiceServer(g, srv)
	t.Cleanup(g.Stop)
	caFile := filepath.Join(t.TempDir(), "server-ca.crt")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsCA.cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return g, caFile
}

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	if err := lis.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// dialTest connects to addr trusting caFile with token.
func dialTest(t testing.TB, addr, caFile, token string) *grpc.ClientConn {
	t.Helper()
	conn, err := Dial(addr, caFile, token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
