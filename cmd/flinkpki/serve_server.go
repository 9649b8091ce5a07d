package main

// The server serve runs, made in one step once the store is open: the
// authority and its metrics, the service identity, the gRPC services and
// their health.

import (
	"context"
	"crypto/tls"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/flinkpki/flinkpki/api"
	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/metrics"
	"github.com/flinkpki/flinkpki/store"
)

// server holds what serve has made and must start and stop: nothing of it
// serves until serve starts it.
type server struct {
	log     *slog.Logger
	st      *store.Store
	m       *metrics.Metrics
	auth    *authority.Authority
	pool    *authority.KeyPool // nil when --bake-key-pool and --max-keygen are both 0
	serving *servingCert
	api     *api.Server
	grpc    *grpc.Server
	health  *health.Server
	// bg is the background work that uses the store: it ends before the
	// store closes.
	bg *background
}

// newServer makes the authority over st, the service identity (made on a
// first start), the dev administrator token, and the gRPC server with
// every service and its health registered.
func (o *serveOptions) newServer(ctx context.Context, log *slog.Logger, st *store.Store, in *serveInputs) (*server, error) {
	s := &server{log: log, st: st, m: metrics.New(), bg: &background{}}
	acfg := authority.Config{Store: st, Logger: log, Observer: s.m, AuditMinAge: o.auditMinAge.d}
	if o.keyPool > 0 || o.maxKeygen > 0 {
		s.pool = authority.NewKeyPool(authority.KeyPoolConfig{Size: o.keyPool, Workers: o.maxKeygen, Prewarm: rsaKeyTypesInUse(ctx, st, 1000), Logger: log})
		acfg.KeyPool = s.pool
	}
	auth, err := authority.New(acfg)
	if err != nil {
		return nil, err
	}
	s.auth = auth
	cert, servingCA, err := serverIdentity(ctx, st, o.dataDir, o.sans, time.Now())
	if err != nil {
		return nil, err
	}
	warnServingCAExpiry(log, servingCA, time.Now())
	s.serving = servingCertOn(ctx, st, o.dataDir, o.sans, cert, servingCA)
	if o.dev {
		if err := ensureDevAdminToken(ctx, auth, filepath.Join(o.dataDir, "admin.token")); err != nil {
			return nil, err
		}
	} else {
		warnNoAdminToken(ctx, log, auth, in.k8s != nil || in.review != nil)
	}
	s.api = api.New(api.Config{Authority: auth, K8s: in.k8s, Review: in.review, Backup: st.Backup, EnrollRate: o.enrollRate, EnrollBurst: o.enrollBurst,
		StaleJWKS: staleJWKSWarning(log, 10*time.Minute), UnknownJWKSKey: s.m.JWKSUnknownKey})
	s.grpc = newGRPCServer(s.serving.get, newRequestLog(log), o.rpcTimeout.d, int64(o.streamsPerAddress), s.m, s.api)
	s.health = health.NewServer()
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for _, name := range api.ServiceNames {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	return s, nil
}

// warnNoAdminToken warns when a production store has no usable
// administrator token: a new one (or one whose tokens all expired or were
// revoked offline) that nothing but Kubernetes pods can use until an
// administrator token exists, which serve never makes.
func warnNoAdminToken(ctx context.Context, log *slog.Logger, auth *authority.Authority, k8s bool) {
	toks, err := auth.AdminTokens(ctx)
	if err != nil || slices.ContainsFunc(toks, func(t authority.AdminTokenInfo) bool { return t.State == authority.AdminTokenValid }) {
		return
	}
	until := "until then nothing but enrollment tokens made before can authenticate"
	if k8s {
		until = "until then only Kubernetes service-account tokens and enrollment tokens made before enroll"
	}
	log.Warn("no administrator token exists yet (or every one has expired or been revoked): create one with flinkpki admin bootstrap (on bbolt with the server stopped; see its --help); " + until)
}

// newGRPCServer makes the TLS gRPC server with serve's interceptors and
// transport settings, and registers the flinkpki services on it.
func newGRPCServer(cert func(*tls.ClientHelloInfo) (*tls.Certificate, error), rl *requestLog, rpcTimeout time.Duration, perAddress int64, m *metrics.Metrics, srv *api.Server) *grpc.Server {
	authUnary, authStream := srv.Interceptors()
	gate := newStreamGate(maxStreamsInFlight, perAddress, rpcTimeout, firstMessageFor(rpcTimeout))
	gate.shed = srv.Shed
	// The gate's options come first: its interceptors must run before
	// every other (they answer a refused stream, with no authentication).
	// gRPC runs a grpc.UnaryInterceptor/StreamInterceptor before chained
	// ones: add interceptors with the Chain options only.
	g := grpc.NewServer(append(gate.options(),
		// Bounds on what a peer holds before it is authenticated, which
		// happens only once a request's message has arrived: a stream that
		// sends its headers and never its message would otherwise wait for
		// ever, with a goroutine and its buffers (about 11 KiB), as many as
		// a connection may open (gRPC's default: unlimited).
		grpc.MaxConcurrentStreams(maxStreamsPerConn),
		grpc.ConnectionTimeout(connectionTimeout),
		// No session tickets: no flinkpki client resumes a session (an
		// init container connects once), so a ticket is an encryption, a
		// record and a write per connection that nobody reads; and a TLS
		// 1.2 ticket seals its session's master secret under a key kept in
		// memory for days.
		grpc.Creds(credentials.NewTLS(&tls.Config{GetCertificate: cert, MinVersion: tls.VersionTLS12, SessionTicketsDisabled: true})),
		grpc.ChainUnaryInterceptor(rl.unary, m.UnaryInterceptor, authUnary),
		grpc.ChainStreamInterceptor(rl.stream, m.StreamInterceptor, authStream),
		grpc.MaxRecvMsgSize(maxRequestBytes),
		// Request headers: the bearer token (at most api.MaxBearerSize,
		// refused with its own message above that) and a few short ones.
		// gRPC's default would let any peer send 16 MiB of them before
		// authentication.
		grpc.MaxHeaderListSize(maxHeaderBytes),
		// Enrollments are a few KiB each way. A large fixed window turns
		// off gRPC's bandwidth-delay probing, which costs a PING round trip
		// on every new connection, and small buffers keep a burst of new
		// connections from allocating 64 KiB each.
		grpc.InitialWindowSize(1<<20),
		grpc.InitialConnWindowSize(1<<20),
		grpc.ReadBufferSize(8<<10),
		grpc.WriteBufferSize(8<<10),
		// A new goroutine per RPC grows its stack from 8 KiB through the
		// crypto and the commit on every enrollment (about 5% of the
		// server's CPU at c=64). Long-lived workers keep their grown
		// stacks; RPCs beyond them still get a goroutine of their own.
		grpc.NumStreamWorkers(streamWorkers),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 5 * time.Minute, Time: time.Minute, Timeout: keepaliveTimeout}),
	)...)
	srv.Register(g)
	// Read at the first stream, once Serve has begun: every service
	// (health and reflection too, registered by the caller) is in by then,
	// since gRPC allows none after.
	known := sync.OnceValue(func() map[string]bool {
		m := map[string]bool{}
		for name, info := range g.GetServiceInfo() {
			for _, meth := range info.Methods {
				m["/"+name+"/"+meth.Name] = true
			}
		}
		return m
	})
	gate.known = func(method string) bool { return known()[method] }
	return g
}

// Bounds of the plaintext --health-listen server, which answers anyone who
// reaches it: a probe sends one small request on one stream now and then.
const (
	maxHealthStreamsPerConn  = 16
	maxHealthStreamsInFlight = 256
	maxHealthStreamsPerPeer  = 32
	maxHealthRequestBytes    = 1 << 10
)

// newHealthServer makes the --health-listen server with bounds like the
// main server's: streams per connection, per address and in all, a
// deadline for each (a Watch ends at it and is opened again), small
// messages and headers, and a bounded TLS-less handshake.
func newHealthServer(rpcTimeout time.Duration) *grpc.Server {
	gate := newStreamGate(maxHealthStreamsInFlight, maxHealthStreamsPerPeer, rpcTimeout, firstMessageFor(rpcTimeout))
	g := grpc.NewServer(append(gate.options(),
		grpc.MaxConcurrentStreams(maxHealthStreamsPerConn),
		grpc.MaxRecvMsgSize(maxHealthRequestBytes),
		grpc.MaxHeaderListSize(maxHeaderBytes),
		grpc.ConnectionTimeout(connectionTimeout),
		grpc.ReadBufferSize(4<<10),
		grpc.WriteBufferSize(4<<10),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 5 * time.Minute}),
	)...)
	return g
}

// connectionTimeout bounds a new connection's set-up (the TLS handshake and
// HTTP/2's preface) on the gRPC listeners; gRPC's default is 120 s, during
// which a connection that never speaks holds a file descriptor and memory.
const connectionTimeout = 10 * time.Second

// keepaliveTimeout is how long the server waits for a keepalive ping's
// answer before it closes the connection, and the TCP_USER_TIMEOUT of
// every connection it accepts.
const keepaliveTimeout = 20 * time.Second

// staleJWKSWarning logs, at most once per every, that a service-account
// token was signed by a key the --k8s-jwks-file lacks and was left to the
// API server's TokenReview: the file is out of date.
func staleJWKSWarning(log *slog.Logger, every time.Duration) func(error) {
	once := &rate.Sometimes{Interval: every}
	return func(err error) {
		once.Do(func() {
			log.Warn("the API server's TokenReview judged a service-account token alone: "+err.Error(), "repeats", "at most every "+formatDuration(every))
		})
	}
}
