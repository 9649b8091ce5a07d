// Package enroll is the client side of flinkpki's enrollment: it makes the
// leaf key where it will be used, sends only a CSR, and retries while the
// server is not reachable yet, as it is normal at pod start. The `init`,
// `bake` and `bench enroll` commands build on it.
package enroll

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	grpccreds "google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
)

// DefaultServer is the address clients use when none is given: where
// `flinkpki serve --dev` listens.
const DefaultServer = "127.0.0.1:7443"

// ErrNoToken means a token file is empty, so no request could be
// authenticated.
var ErrNoToken = errors.New("no token")

// Dial returns a client connection to a flinkpki server. The connection
// always speaks TLS (1.2 or later), verifying the server against caFile (or
// the system roots when caFile is empty), and every call carries token as a
// bearer credential. grpc.NewClient connects lazily, so an unreachable
// server shows up on the first call, where Retry can handle it.
func Dial(server, caFile, token string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	tlsConf, err := TLSConfig(caFile)
	if err != nil {
		return nil, err
	}
	return DialTLS(server, tlsConf, token, opts...)
}

// DialFile is Dial with the token read from tokenFile, again at every
// call: a Kubernetes projected token is renewed in place by the kubelet,
// and an init container that waits minutes for its server must send the
// token the file holds then, not the one it started with (it may have
// expired meanwhile). A read that fails keeps the last token read.
func DialFile(server, caFile, tokenFile string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	tok, err := ReadToken(tokenFile)
	if err != nil {
		return nil, err
	}
	tlsConf, err := TLSConfig(caFile)
	if err != nil {
		return nil, err
	}
	return dial(server, tlsConf, &fileBearer{path: tokenFile, last: tok}, opts...)
}

// fileBearer is a bearer credential read from its file at every call.
type fileBearer struct {
	path string
	mu   sync.Mutex
	last string
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b *fileBearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if tok, err := ReadToken(b.path); err == nil {
		b.last = tok
	}
	return map[string]string{"authorization": "Bearer " + b.last}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (b *fileBearer) RequireTransportSecurity() bool { return true }

// DialTLS is Dial with a client TLS configuration already made by
// TLSConfig, for a caller that opens many connections (bench enroll
// --fresh-connections reads its CA file once, as each pod does).
func DialTLS(server string, tlsConf *tls.Config, token string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	if strings.TrimSpace(token) == "" {
		return nil, fmt.Errorf("%w: the token is empty; pass --token-file with an administrator, enrollment or Kubernetes token", ErrNoToken)
	}
	return dial(server, tlsConf, Bearer(token), opts...)
}

// dial connects with the TLS configuration and the bearer credential.
func dial(server string, tlsConf *tls.Config, bearer grpccreds.PerRPCCredentials, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	all := append([]grpc.DialOption{
		grpc.WithTransportCredentials(grpccreds.NewTLS(tlsConf)),
		grpc.WithPerRPCCredentials(bearer),
		grpc.WithUserAgent("flinkpki-client"),
		// Requests and answers are a few KiB: a fixed window skips the
		// bandwidth-delay probe on each new connection, and small buffers
		// keep a connection cheap.
		grpc.WithInitialWindowSize(1 << 20),
		grpc.WithInitialConnWindowSize(1 << 20),
		grpc.WithReadBufferSize(8 << 10),
		grpc.WithWriteBufferSize(8 << 10),
		// Reconnect as eagerly as Retry retries: with gRPC's default
		// reconnect backoff (up to 120s) a server that comes up late would
		// be noticed long after it is ready.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: DefaultInitialDelay, Multiplier: 1.6, Jitter: 0.2, MaxDelay: DefaultMaxDelay},
			MinConnectTimeout: 5 * time.Second,
		}),
		// A server that stops answering mid-request (its node lost, a
		// partition that never resets the connection) fails the call after
		// about 50 s instead of holding the command for ever. The server
		// admits pings every 10 s (serve's keepalive enforcement).
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 20 * time.Second}),
	}, opts...)
	conn, err := grpc.NewClient(server, all...)
	if err != nil {
		return nil, fmt.Errorf("connect to flinkpki at %s: %w", server, err)
	}
	return conn, nil
}

// TLSConfig returns the client TLS configuration that trusts the PEM
// certificates in caFile, or the system roots when caFile is empty.
func TLSConfig(caFile string) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return conf, nil
	}
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read the server CA file (--ca-file or FLINKPKI_CA_FILE; the server's server-ca.crt): %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("server CA file %s holds no PEM certificate: pass the server's server-ca.crt", caFile)
	}
	conf.RootCAs = pool
	return conf, nil
}

// ReadToken reads a token file and trims surrounding whitespace, so files
// written by `echo` or editors work.
func ReadToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read the token file (--token-file or FLINKPKI_TOKEN_FILE): %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("%w: token file %s is empty", ErrNoToken, path)
	}
	if err := checkTokenText(tok); err != nil {
		return "", fmt.Errorf("token file %s must hold the token alone on one line: %w", path, err)
	}
	return tok, nil
}

// checkTokenText refuses what no token holds and gRPC would refuse to send,
// with a reason that never quotes the token: every token flinkpki accepts
// (its own, a Kubernetes service-account token) is printable ASCII
// without spaces.
func checkTokenText(tok string) error {
	if strings.ContainsAny(tok, "\r\n") {
		return fmt.Errorf("it has %d lines", len(strings.FieldsFunc(tok, func(r rune) bool { return r == '\n' || r == '\r' })))
	}
	for i := 0; i < len(tok); i++ {
		switch c := tok[i]; {
		case c == ' ' || c == '\t':
			return fmt.Errorf("byte %d is a space or a tab, which no token holds", i+1)
		case c < ' ' || c > '~':
			return fmt.Errorf("byte %d is not a printable ASCII character", i+1)
		}
	}
	return nil
}

// Bearer is a per-RPC credential that sends "authorization: Bearer <token>".
// It refuses to travel over a connection without transport security.
type Bearer string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b Bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: a
// token must never be sent in clear text.
func (b Bearer) RequireTransportSecurity() bool { return true }
