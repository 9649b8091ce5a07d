package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/flinkpki/flinkpki/api"
	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/internal/atomicfile"
	"github.com/flinkpki/flinkpki/internal/gctune"
	"github.com/flinkpki/flinkpki/internal/tick"
	"github.com/flinkpki/flinkpki/k8sauth"
	"github.com/flinkpki/flinkpki/metrics"
	"github.com/flinkpki/flinkpki/store/bolt"
	etcdstore "github.com/flinkpki/flinkpki/store/etcd"
)

type serveOptions struct {
	dataDir           string
	listen            string
	metricsListen     string
	healthListen      string
	dev               bool
	configFile        string
	sans              []string
	kekFile           string
	k8sIssuer         string
	k8sJWKSFile       string
	k8sAudience       string
	k8sTokenReview    bool
	k8sAPIServer      string
	k8sAPICAFile      string
	k8sAPITokenFile   string
	k8sReviewCache    durationFlag
	logFormat         string
	logLevel          string
	rotationInterval  durationFlag
	holderRetention   durationFlag
	auditMinAge       durationFlag
	auditVerify       durationFlag
	shutdownTimeout   durationFlag
	rpcTimeout        durationFlag
	pprofListen       string
	storeKind         string
	etcdEndpoints     []string
	etcdCAFile        string
	etcdCertFile      string
	etcdKeyFile       string
	etcdPrefix        string
	etcdBatch         int
	enrollRate        float64
	enrollBurst       int
	keyPool           int
	maxKeygen         int
	streamsPerAddress int
}

const (
	// gaugeRefresh bounds how often /metrics recomputes the expiry gauges,
	// which reads every holder of every cluster, in the background (see
	// metrics.RefreshingHandler). The expiries they show are days away and
	// their alerts' windows are days long, so a minute is fresh enough.
	gaugeRefresh = time.Minute
	// Expired holder records are kept for defaultHolderRetention, and
	// pruned every pruneEvery, the first time pruneFirst after start (not
	// at once: a restart has enough to do).
	defaultHolderRetention = 30 * 24 * time.Hour
	// defaultAuditMinAge is how old audit entries must be before an
	// archive removes them: a week for monitoring to notice what an
	// administrator token did before it can go from the trail.
	defaultAuditMinAge = 7 * 24 * time.Hour
	pruneEvery         = time.Hour
	pruneFirst         = 5 * time.Minute
	devListen          = "127.0.0.1:7443"
	prodListen         = "0.0.0.0:7443"
	maxRequestBytes    = 64 << 10
	maxHeaderBytes     = 4 * api.MaxBearerSize
	// streamWorkers is how many RPCs run on reused goroutines: a starting
	// cluster's burst of enrollments, each waiting for its group commit.
	streamWorkers = 64
	// defaultReviewCache is how long a TokenReview's acceptance is reused:
	// long enough for init's two requests and its first retries, short
	// beside kube-apiserver's own two minutes for webhook tokens.
	defaultReviewCache = 10 * time.Second
	// maxReviewCache bounds it: kube-apiserver keeps its webhook token
	// answers two minutes by default.
	maxReviewCache = 2 * time.Minute
)

func newServeCmd() *cobra.Command {
	// The duration flags read days (30d) as every client flag does, Go
	// durations too; a leading '-' is let through so that checkRanges
	// refuses it, naming the flag and what it wants.
	o := &serveOptions{
		rotationInterval: durationFlag{d: time.Minute, signed: true},
		holderRetention:  durationFlag{d: defaultHolderRetention, signed: true},
		auditMinAge:      durationFlag{d: defaultAuditMinAge, signed: true},
		auditVerify:      durationFlag{d: time.Hour},
		shutdownTimeout:  durationFlag{d: 15 * time.Second, signed: true},
		rpcTimeout:       durationFlag{d: 30 * time.Second, signed: true},
		k8sReviewCache:   durationFlag{d: defaultReviewCache, signed: true},
	}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the flinkpki server (gRPC over TLS, on an embedded bbolt store or etcd)",
		Long: `Run the flinkpki server. It keeps each Flink cluster's two CA lineages
(internal, for Flink's internal mutual TLS, and rest) in an embedded bbolt
database at DIR/flinkpki.db, or with --store etcd in etcd, shared by several
replicas, and serves gRPC over TLS only.

On first start it creates its own serving CA (kept apart from every Flink
cluster CA) and writes the trust anchor for clients to DIR/server-ca.crt.
CA private keys are encrypted at rest with the key-encryption key from
--kek-file (32 random bytes: (umask 077; head -c 32 /dev/urandom > kek)); keep that file
outside the data directory and back it up separately.

--dev is for trying flinkpki out: it listens on 127.0.0.1 only, creates DIR and
DIR/kek if missing, and writes an administrator token to DIR/admin.token.
Production mode never writes a token file: bootstrap the first administrator
token with 'flinkpki admin bootstrap' while the server is stopped.

Every flag may also be set in a YAML file given with --config (keys are flag
names without the leading dashes, e.g. "listen: 0.0.0.0:7443" or
"metrics-listen: 0.0.0.0:9090"); flags on the command line win.
Durations, there and on the command line, are Go durations or days and years
as in the client commands: 90s, 12h, 30d, 1y.`,
		Example: `  # local development
  flinkpki serve --dev --data-dir ./flinkpki-data

  # production, with Kubernetes projected service-account tokens
  flinkpki serve --data-dir /var/lib/flinkpki --kek-file /etc/flinkpki/kek/kek \
    --listen 0.0.0.0:7443 --metrics-listen 0.0.0.0:9090 --health-listen 0.0.0.0:7444 \
    --san flinkpki.flinkpki.svc --k8s-issuer https://kubernetes.default.svc.cluster.local \
    --k8s-jwks-file /etc/flinkpki/jwks/jwks.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyConfigFile(cmd, o.configFile); err != nil {
				return err
			}
			return serve(cmd.Context(), cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", "./flinkpki-data", "data directory (bbolt store at DIR/flinkpki.db, DIR/server-ca.crt)")
	f.StringVar(&o.listen, "listen", "", "gRPC listen address (default "+devListen+" with --dev, else "+prodListen+")")
	f.StringVar(&o.metricsListen, "metrics-listen", "", "serve Prometheus metrics at http://ADDR/metrics (off when empty)")
	f.StringVar(&o.healthListen, "health-listen", "", "serve only grpc.health.v1 in plaintext on ADDR, for kubelet gRPC probes (off when empty)")
	f.BoolVar(&o.dev, "dev", false, "development mode: loopback only, creates DIR, DIR/kek and DIR/admin.token")
	f.StringVar(&o.configFile, "config", "", "YAML file with flag values")
	f.StringSliceVar(&o.sans, "san", nil, "extra DNS name or IP address for the serving certificate (repeatable)")
	f.StringVar(&o.kekFile, "kek-file", "", "key-encryption key file for CA keys at rest (env FLINKPKI_KEK_FILE; --dev default DIR/kek)")
	f.StringVar(&o.k8sIssuer, "k8s-issuer", "", "issuer (iss) of the cluster's service-account tokens; enables Kubernetes tokens")
	f.StringVar(&o.k8sJWKSFile, "k8s-jwks-file", "", "the cluster's JWKS (kubectl get --raw /openid/v1/jwks); read again when a token names a key it lacks and the file has changed, as a ConfigMap volume does when the ConfigMap is updated")
	f.StringVar(&o.k8sAudience, "k8s-audience", k8sauth.DefaultAudience, "audience projected service-account tokens must carry")
	f.BoolVar(&o.k8sTokenReview, "k8s-tokenreview", false, "also ask the API server (TokenReview) about each service-account token; its service account must be allowed to create TokenReviews")
	f.StringVar(&o.k8sAPIServer, "k8s-api-server", "", "API server URL for TokenReview, https only (default: in-cluster)")
	f.StringVar(&o.k8sAPICAFile, "k8s-api-ca-file", "", "CA of the API server (default: the in-cluster service-account ca.crt)")
	f.StringVar(&o.k8sAPITokenFile, "k8s-api-token-file", "", "the server's own token for TokenReview (default: the in-cluster service-account token)")
	f.Var(&o.k8sReviewCache, "k8s-tokenreview-cache", "how long the API server's acceptance of a token is reused (never past its exp), so a pod's requests close together cost one TokenReview; a pod deleted meanwhile is noticed that much later; at most 2m; 0 reviews every request")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.Var(&o.rotationInterval, "rotation-interval", "how often the automatic rotation schedule is checked (0 disables it)")
	f.Var(&o.holderRetention, "holder-retention", "how long a holder record stays after its leaf expired (holder list --all shows it), before the hourly pruning deletes it; 0 keeps them forever")
	f.Var(&o.auditVerify, "audit-verify-interval", "how often the server verifies its whole audit trail's hash chain (flinkpki_audit_chain_intact; a break is logged at error level): about half a second of CPU per 100,000 entries; 0 never")
	f.Var(&o.auditMinAge, "audit-archive-min-age", "how old audit entries must be before flinkpki audit archive may remove them from the trail, so that no administrator token can take its recent actions out of it; 0 allows any age")
	f.Var(&o.shutdownTimeout, "shutdown-timeout", "how long in-flight requests may finish after SIGTERM")
	f.Var(&o.rpcTimeout, "rpc-timeout", "deadline applied to every request that has none shorter (above 0; a backup gets at least an hour)")
	f.StringVar(&o.pprofListen, "pprof-listen", "", "serve Go's pprof profiles at http://ADDR/debug/pprof/ (debugging; keep it on loopback)")
	f.StringVar(&o.storeKind, "store", "bolt", "store: bolt (embedded, DIR/flinkpki.db) or etcd (several replicas, one consistent store)")
	f.StringSliceVar(&o.etcdEndpoints, "etcd-endpoints", nil, "etcd client URLs, comma-separated (with --store etcd)")
	f.StringVar(&o.etcdCAFile, "etcd-ca-file", "", "CA that signed etcd's serving certificates")
	f.StringVar(&o.etcdCertFile, "etcd-cert-file", "", "client certificate for mutual TLS to etcd")
	f.StringVar(&o.etcdKeyFile, "etcd-key-file", "", "client key for mutual TLS to etcd")
	f.StringVar(&o.etcdPrefix, "etcd-prefix", "/flinkpki/", "key prefix, so several installations can share one etcd")
	f.IntVar(&o.etcdBatch, "etcd-batch", 20, "issuances per etcd transaction (group commit), 1 or more; above 20 needs etcd's --max-txn-ops raised (e.g. 150 with 1024)")
	f.Float64Var(&o.enrollRate, "enroll-rate", 200, "enrollment requests per second allowed per identity (token, service account); 0 disables the limit")
	f.IntVar(&o.enrollBurst, "enroll-burst", 2000, "enrollment burst allowed per identity, e.g. a whole cluster starting at once")
	f.IntVar(&o.keyPool, "bake-key-pool", 200, "RSA keys kept ready in memory per key type for bake bursts, 0 to 10000 (0 disables the pool)")
	f.IntVar(&o.maxKeygen, "max-keygen", 0, "concurrent server-side key generations for bake (default: number of CPUs)")
	f.IntVar(&o.streamsPerAddress, "max-requests-per-address", maxStreamsPerSource, "requests one client address (an IPv6 /64) may have in flight, of the server's 4096; 0 for no bound of its own (behind a proxy or mesh sidecar, where every client has the proxy's address)")
	return cmd
}

func newLogger(o *serveOptions, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, usagef("--log-level %q: use debug, info, warn or error", o.logLevel)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	switch o.logFormat {
	case "text":
		return slog.New(requestIDHandler{slog.NewTextHandler(w, hopts)}), nil
	case "json":
		return slog.New(requestIDHandler{slog.NewJSONHandler(w, hopts)}), nil
	}
	return nil, usagef("--log-format %q: use text or json", o.logFormat)
}

func (o *serveOptions) resolve() error {
	if o.listen == "" {
		o.listen = prodListen
		if o.dev {
			o.listen = devListen
		}
	}
	host, _, err := net.SplitHostPort(o.listen)
	if err != nil {
		return usagef("--listen %q: want HOST:PORT", o.listen)
	}
	if o.dev && !isLoopback(host) {
		return usagef("--dev refuses --listen %s: development mode listens on loopback only (127.0.0.1 or ::1)", o.listen)
	}
	for _, a := range []struct{ flag, addr string }{{"--metrics-listen", o.metricsListen}, {"--pprof-listen", o.pprofListen}, {"--health-listen", o.healthListen}} {
		if a.addr == "" {
			continue
		}
		h, _, err := net.SplitHostPort(a.addr)
		if err != nil {
			return usagef("%s %q: want HOST:PORT", a.flag, a.addr)
		}
		if o.dev && !isLoopback(h) {
			return usagef("--dev refuses %s %s: development mode listens on loopback only (127.0.0.1 or ::1)", a.flag, a.addr)
		}
	}
	o.kekFile = kekFileOrEnv(o.kekFile)
	if (o.k8sIssuer == "") != (o.k8sJWKSFile == "") {
		return usagef("--k8s-issuer and --k8s-jwks-file go together")
	}
	switch o.storeKind {
	case "bolt":
	case "etcd":
		if len(o.etcdEndpoints) == 0 {
			return usagef("--store etcd needs --etcd-endpoints URL,...")
		}
	default:
		return usagef("--store %q: use bolt or etcd", o.storeKind)
	}
	if err := o.checkRanges(); err != nil {
		return err
	}
	return checkServingSANs(o.sans)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func serve(ctx context.Context, cmd *cobra.Command, o *serveOptions) error {
	if err := o.resolve(); err != nil {
		return err
	}
	log, err := newLogger(o, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	in, err := o.readInputs()
	if err != nil {
		return err
	}
	for _, w := range in.warnings {
		log.Warn(w)
	}
	ls, err := o.bind()
	if err != nil {
		return err
	}
	defer ls.close()
	kek, undo, err := o.prepareDataDir(in.kek)
	if err != nil {
		return err
	}
	st, backend, err := o.openStore(ctx, kek, in.etcdTLS, undo)
	if err != nil {
		return err
	}
	closeStore := sync.OnceValue(st.Close)
	defer closeStore()
	// A small live heap may grow to 20 MiB before it is collected: fewer
	// collections on the issuance path. A soft memory limit that follows the
	// live heap caps bursts, and an idle server gives the free heap back.
	// GOGC or GOMEMLIMIT in the environment turns this off.
	gctune.Start(ctx, 20<<20, time.Second)

	m := metrics.New()
	var pool *authority.KeyPool
	acfg := authority.Config{Store: st, Logger: log, Observer: m, AuditMinAge: o.auditMinAge.d}
	if o.keyPool > 0 || o.maxKeygen > 0 {
		pool = authority.NewKeyPool(authority.KeyPoolConfig{Size: o.keyPool, Workers: o.maxKeygen, Prewarm: rsaKeyTypesInUse(ctx, st, 1000), Logger: log})
		acfg.KeyPool = pool
	}
	auth, err := authority.New(acfg)
	if err != nil {
		return err
	}
	cert, servingCA, err := serverIdentity(ctx, st, o.dataDir, o.sans, time.Now())
	if err != nil {
		return err
	}
	warnServingCAExpiry(log, servingCA, time.Now())
	serving := newServingCert(cert, func(now time.Time) (*tls.Certificate, error) {
		c, _, err := serverIdentity(ctx, st, o.dataDir, o.sans, now)
		return c, err
	})
	if o.dev {
		if err := ensureDevAdminToken(ctx, auth, filepath.Join(o.dataDir, "admin.token")); err != nil {
			return err
		}
	} else if toks, err := auth.AdminTokens(ctx); err == nil && !slices.ContainsFunc(toks, func(t authority.AdminTokenInfo) bool { return t.State == authority.AdminTokenValid }) {
		// A new production store (or one whose tokens all expired or were
		// revoked offline): nothing but Kubernetes pods can use it until an
		// administrator token exists, which serve never makes.
		until := "until then nothing but enrollment tokens made before can authenticate"
		if in.k8s != nil || in.review != nil {
			until = "until then only Kubernetes service-account tokens and enrollment tokens made before enroll"
		}
		log.Warn("no administrator token exists yet (or every one has expired or been revoked): create one with flinkpki admin bootstrap (on bbolt with the server stopped; see its --help); " + until)
	}
	srv := api.New(api.Config{Authority: auth, K8s: in.k8s, Review: in.review, Backup: st.Backup, EnrollRate: o.enrollRate, EnrollBurst: o.enrollBurst,
		StaleJWKS: staleJWKSWarning(log, 10*time.Minute), UnknownJWKSKey: m.JWKSUnknownKey})
	rl := newRequestLog(log)
	g := newGRPCServer(serving.get, rl, o.rpcTimeout.d, int64(o.streamsPerAddress), m, srv)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for _, name := range api.ServiceNames {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	healthpb.RegisterHealthServer(g, hs)
	reflection.Register(g)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Background work that uses the store ends before the store closes.
	bg := &background{}
	bg.Go(func() { serving.run(ctx, servingCertCheck, log) })
	// One replica rotates and prunes: the leader of one election (its name
	// predates pruning, and replicas of both versions must agree on it).
	// A replica without background work still joins an election, one
	// nobody acts on, so that the offline commands (admin rotate-kek) see
	// it while it runs.
	leader := func() bool { return true }
	leaveElection := func() error { return nil }
	if eb, ok := backend.(*etcdstore.Backend); ok {
		jobs := o.rotationInterval.d > 0 || o.holderRetention.d > 0
		election := etcdstore.PresenceElection
		if jobs {
			election = "rotation-scheduler"
		}
		l, err := eb.Elect(ctx, election)
		if err != nil {
			return fmt.Errorf("join the %s election in etcd: %w", election, err)
		}
		// Left before the store closes (its client resigns the key).
		leaveElection = sync.OnceValue(l.Close)
		defer leaveElection()
		if jobs {
			leader = l.IsLeader
		}
	}
	errc := make(chan error, 4)
	go func() { errc <- g.Serve(ls.grpc) }()
	var extra []func(context.Context)
	if ls.metrics != nil {
		extra = append(extra, serveMetrics(ctx, ls.metrics, m, auth, bg, log, errc))
	}
	if ls.pprof != nil {
		if h, _, _ := net.SplitHostPort(o.pprofListen); !isLoopback(h) {
			log.Warn("--pprof-listen is not on loopback: anyone who reaches it can read goroutine stacks and heap profiles, and run CPU profiles and traces, without a token", "addr", o.pprofListen)
		}
		extra = append(extra, servePprof(ls.pprof, errc))
	}
	if ls.health != nil {
		hg := newHealthServer(o.rpcTimeout.d)
		healthpb.RegisterHealthServer(hg, hs)
		go func() { errc <- hg.Serve(ls.health) }()
		extra = append(extra, func(context.Context) { hg.Stop() })
	}
	// Every replica: each holds open the CA keys of what it signed lately.
	bg.Go(func() { auth.RunSignerSweeper(ctx, authority.SignerSweepEvery, authority.SignerIdle) })
	if o.rotationInterval.d > 0 {
		bg.Go(func() { auth.RunScheduler(ctx, o.rotationInterval.d, leader) })
	}
	if o.holderRetention.d > 0 {
		bg.Go(func() { auth.RunPruner(ctx, pruneFirst, pruneEvery, o.holderRetention.d, leader) })
	}
	if hc, ok := backend.(healthChecker); ok {
		bg.Go(func() { watchStoreHealth(ctx, hc, hs, log, m.SetReady) })
	}
	if o.auditVerify.d > 0 {
		bg.Go(func() {
			auth.RunAuditVerifier(ctx, o.auditVerify.d, func(c authority.AuditCheck) { m.SetAuditCheck(c.Intact, c.At) })
		})
	}
	if bb, ok := backend.(*bolt.Backend); ok {
		m.WatchStoreSize(func() int64 {
			fi, err := os.Stat(bb.Path())
			if err != nil {
				return -1
			}
			return fi.Size()
		})
	}
	m.WatchServing(func() time.Time { return serving.cur.Load().Leaf.NotAfter }, func() time.Time { return servingCA.NotAfter })
	if pool != nil && o.keyPool > 0 {
		m.WatchKeyPool(func() map[string]int {
			out := map[string]int{}
			for kt, n := range pool.Ready() {
				out[string(kt)] = n
			}
			return out
		})
		bg.Go(func() { pool.Run(ctx) })
	}
	// Summaries of refusals that floods kept from being audited one by
	// one; the last is written after the gRPC server has stopped.
	sumCtx, sumCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer sumCancel()
	sumDone := make(chan struct{})
	go func() { srv.RunRefusalSummaries(sumCtx); close(sumDone) }()
	log.Info("flinkpki serving", "version", readBuildInfo().String(), "listen", ls.grpc.Addr().String(), "data_dir", o.dataDir, "dev", o.dev,
		"rotation_interval", o.rotationInterval.String(), "holder_retention", o.holderRetention.String())
	if o.dev {
		abs, _ := filepath.Abs(o.dataDir)
		addr := ls.grpc.Addr().String()
		env := fmt.Sprintf("FLINKPKI_SERVER=%s FLINKPKI_CA_FILE=%s FLINKPKI_TOKEN_FILE=%s", addr, filepath.Join(abs, "server-ca.crt"), filepath.Join(abs, "admin.token"))
		if o.logFormat == "json" {
			// One JSON object like the log's, whatever --log-level says: a
			// log shipper reading standard error must not meet plain text.
			line, _ := json.Marshal(struct {
				Time   string `json:"time"`
				Level  string `json:"level"`
				Msg    string `json:"msg"`
				Export string `json:"export"`
			}{time.Now().Format(time.RFC3339Nano), "INFO", "flinkpki dev server on " + addr, env})
			fmt.Fprintf(cmd.ErrOrStderr(), "%s\n", line)
		} else {
			fmt.Fprintf(cmd.ErrOrStderr(), "\nflinkpki dev server on %s. Point the CLI at it with:\n  export %s\n  flinkpki cluster create orders\n\n", addr, env)
		}
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil {
			return err
		}
	}
	log.Info("shutting down: no new requests; finishing in-flight ones", "timeout", o.shutdownTimeout.String())
	hs.Shutdown()
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(o.shutdownTimeout.d):
		log.Warn("in-flight requests did not finish in time; closing them")
		g.Stop()
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	sumCancel()
	<-sumDone
	_ = srv.FlushRefusals(sctx) // a failure is logged
	for _, stop := range extra {
		stop(sctx)
	}
	cancel()
	if !bg.Wait(sctx) {
		log.Warn("background work did not end in time; closing the store under it")
	}
	_ = leaveElection() // a key not resigned expires with its lease
	if err := closeStore(); err != nil {
		log.Error("closing the store failed", "err", err)
		return fmt.Errorf("close the store: %w", err)
	}
	log.Info("store closed; bye")
	return nil
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
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 5 * time.Minute, Time: time.Minute, Timeout: 20 * time.Second}),
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

func serveMetrics(ctx context.Context, l net.Listener, m *metrics.Metrics, auth *authority.Authority, bg *background, log *slog.Logger, errc chan<- error) func(context.Context) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.RefreshingHandler(ctx, gaugeRefresh,
		func(ctx context.Context) error {
			// A refresh runs beside the scrape that started it, and may
			// outlive the metrics listener: the store waits for it.
			return bg.Do(func() error { return refreshGauges(ctx, auth, m) })
		},
		func(err error) {
			log.Warn("the expiry gauges were not refreshed; /metrics serves the last values", "err", err)
		}))
	return serveHTTP(l, mux, errc)
}

// serveHTTP serves handler on l in the background and returns its
// graceful stop. Serving errors other than the stop itself go to errc.
func serveHTTP(l net.Listener, handler http.Handler, errc chan<- error) func(context.Context) {
	// A scraper or a profiler keeps one connection; one left idle for two
	// minutes is closed rather than held for ever.
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	return func(ctx context.Context) { hs.Shutdown(ctx) }
}

// ensureDevAdminToken writes DIR/admin.token unless it already holds a
// token this store knows. The token does not expire, so none is made
// before the path is known to take it, and one whose file could not be
// written after all is revoked again: no start leaves a token nobody holds.
func ensureDevAdminToken(ctx context.Context, auth *authority.Authority, path string) error {
	// A start killed while it wrote the token left it beside the path.
	atomicfile.RemoveLeftovers(path)
	if raw, err := os.ReadFile(path); err == nil {
		if t, err := parseToken(strings.TrimSpace(string(raw))); err == nil {
			if a, err := auth.Authenticate(ctx, t); err == nil && a.Kind == authority.ActorAdmin {
				return nil
			}
		}
	}
	if fi, err := os.Lstat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory: remove it, so that serve --dev can write its administrator token there", path)
	}
	if err := atomicfile.CheckDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("cannot write the administrator token %s: %w", path, err)
	}
	actor := authority.Actor{Kind: authority.ActorSystem, ID: "dev"}
	tok, rec, err := auth.CreateAdminToken(ctx, actor, "dev", 0)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, []byte(tok), 0o600); err != nil {
		if _, rerr := auth.RevokeAdminToken(ctx, actor, rec.ID, authority.RevokeAdminOptions{}); rerr != nil {
			return fmt.Errorf("cannot write the administrator token %s: %w; revoke token %s, which nobody holds, with flinkpki admin revoke-token", path, err, rec.ID)
		}
		return fmt.Errorf("cannot write the administrator token %s: %w (the token made for it is revoked again)", path, err)
	}
	return nil
}

// healthChecker is a store backend that can tell whether it works: etcd
// answers a linearizable read, bbolt's volume takes a synced write.
type healthChecker interface {
	Healthy(ctx context.Context) error
}

// storeHealthEvery is how often serve checks its store for the health
// service.
const storeHealthEvery = 2 * time.Second

// watchStoreHealth turns the health service NOT_SERVING while the store
// fails its check (etcd lost, a database file that cannot be written), and
// SERVING again when it passes, and tells ready each change (the metric
// flinkpki_ready: a server that is not ready still answers scrapes).
func watchStoreHealth(ctx context.Context, b healthChecker, hs *health.Server, log *slog.Logger, ready func(bool)) {
	serving := true
	failed := 0 // failed checks in a row
	tick.Every(ctx, log, storeHealthEvery, func(time.Time) {
		c, cancel := context.WithTimeout(ctx, storeHealthEvery)
		err := b.Healthy(c)
		cancel()
		if ctx.Err() != nil {
			return // shutting down: the check was cut short, not failed
		}
		if err == nil {
			failed = 0
		} else {
			failed++
		}
		// NOT_SERVING after storeHealthFailures failed checks in a row: one
		// etcd member that hangs fails a check sent its way while the
		// others answer the next one.
		switch ok := err == nil; {
		case ok && !serving:
			serving = true
			log.Info("the store passed its health check again: health is SERVING")
		case !ok && serving && failed >= storeHealthFailures:
			serving = false
			log.Error("the store failed its health check: health is NOT_SERVING", "error", err.Error(), "failed_checks", failed)
		default:
			return
		}
		st := healthpb.HealthCheckResponse_SERVING
		if !serving {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
		hs.SetServingStatus("", st)
		for _, name := range api.ServiceNames {
			hs.SetServingStatus(name, st)
		}
		ready(serving)
	})
}

// storeHealthFailures is how many failed store checks in a row turn the
// health NOT_SERVING.
const storeHealthFailures = 2

func servePprof(l net.Listener, errc chan<- error) func(context.Context) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	return serveHTTP(l, mux, errc)
}

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
