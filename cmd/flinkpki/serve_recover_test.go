package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// panickyHealth panics on the service "boom" and serves any other; its
// Watch panics at once.
type panickyHealth struct {
	healthpb.UnimplementedHealthServer
}

func (panickyHealth) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if svc := req.GetService(); svc == "boom" {
		var seen []string
		_ = seen[len(svc)] // an index out of range: a bug a request could trip
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (panickyHealth) Watch(*healthpb.HealthCheckRequest, healthpb.Health_WatchServer) error {
	panic("watch went wrong")
}

// TestAPanickingRequestFailsAloneAndTheServerServesOn: a handler that
// panics, unary or streaming, fails its own request with Internal, naming
// the request ID the log line carries with the stack, and the server (real
// TLS on loopback, serve's request interceptors) answers the next request.
// gRPC lets a handler's panic end the process: one request would stop the
// CA of every cluster.
func TestAPanickingRequestFailsAloneAndTheServerServesOn(t *testing.T) {
	logs := newSyncBuffer()
	rl := &requestLog{log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	g := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})),
		grpc.ChainUnaryInterceptor(rl.unary), grpc.ChainStreamInterceptor(rl.stream))
	healthpb.RegisterHealthServer(g, panickyHealth{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(l)
	defer g.Stop()
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: "localhost"})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var md metadata.MD
	_, err = hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "boom"}, grpc.Header(&md))
	st := status.Convert(err)
	id := ""
	if v := md.Get("x-request-id"); len(v) == 1 {
		id = v[0]
	}
	if st.Code() != codes.Internal || id == "" || !strings.Contains(st.Message(), id) || strings.Contains(st.Message(), "out of range") {
		t.Fatalf("a panicking Check answered %v (request id %q); want Internal naming the request id, without the panic itself", err, id)
	}
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "fine"}); err != nil {
		t.Fatalf("the request after a panic failed: %v", err)
	}
	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = w.Recv()
	}
	if status.Code(err) != codes.Internal {
		t.Errorf("a panicking Watch stream answered %v, want Internal", err)
	}
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("the request after a panicking stream failed: %v", err)
	}
	out := logs.String()
	for _, want := range []string{"a request panicked", "request_id=" + id, "method=/grpc.health.v1.Health/Check", "index out of range [4] with length 0", "panickyHealth.Check", "watch went wrong", "method=/grpc.health.v1.Health/Watch"} {
		if !strings.Contains(out, want) {
			t.Errorf("the server log lacks %q:\n%s", want, out)
		}
	}
}
