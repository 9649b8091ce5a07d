package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/flinkpki/flinkpki/api"
	"github.com/flinkpki/flinkpki/internal/gctune"
	"github.com/flinkpki/flinkpki/k8sauth"
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
	connsPerAddress   int
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
	f.StringVar(&o.k8sJWKSFile, "k8s-jwks-file", "", "the cluster's JWKS (kubectl get --raw /openid/v1/jwks); read again whenever it has changed (looked at with every token), as a ConfigMap volume does when the ConfigMap is updated in place")
	f.StringVar(&o.k8sAudience, "k8s-audience", k8sauth.DefaultAudience, "audience projected service-account tokens must carry")
	f.BoolVar(&o.k8sTokenReview, "k8s-tokenreview", false, "also ask the API server (TokenReview) about each service-account token; its service account must be allowed to create TokenReviews")
	f.StringVar(&o.k8sAPIServer, "k8s-api-server", "", "API server URL for TokenReview, https only (default: in-cluster)")
	f.StringVar(&o.k8sAPICAFile, "k8s-api-ca-file", "", "CA of the API server (default: the in-cluster service-account ca.crt)")
	f.StringVar(&o.k8sAPITokenFile, "k8s-api-token-file", "", "the server's own token for TokenReview (default: the in-cluster service-account token)")
	f.Var(&o.k8sReviewCache, "k8s-tokenreview-cache", "how long the API server's acceptance of a token is reused (never past its exp), so a pod's requests close together cost one TokenReview; a pod deleted meanwhile is noticed that much later; at most 2m; 0 reviews every request")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.Var(&o.rotationInterval, "rotation-interval", "how often the automatic rotation schedule is checked (0 disables it)")
	f.Var(&o.holderRetention, "holder-retention", "how long a holder record stays after its leaf expired (holder list --all shows it), before the hourly pruning deletes it (never within 10 minutes: a rotation step still counts it for 5, on a clock up to 5 behind); 0 keeps them forever")
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
	f.IntVar(&o.connsPerAddress, "max-connections-per-address", maxConnsPerSource, "connections one client IP address may hold open (an IPv6 address alone, not its /64); a connection past it is closed as it is accepted (init retries); 0 for no bound (behind a proxy or mesh sidecar, where every client has the proxy's address)")
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

// serve runs the server until ctx ends or a listener fails. A start
// refused before the store opens has written nothing it leaves behind
// (serve_start.go); the stop ends the requests first, then the side
// listeners and the background work, and closes the store once nothing
// uses it.
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

	// Ended before the store closes: what runs in the background under
	// it, the serving certificate's renewal too, ends first.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := o.newServer(ctx, log, st, in)
	if err != nil {
		return err
	}
	leader, leaveElection, err := joinElection(ctx, backend, o.rotationInterval.d > 0 || o.holderRetention.d > 0)
	if err != nil {
		return err
	}
	// Left before the store closes (its client resigns the key).
	defer leaveElection()
	errc := make(chan error, 4)
	go func() { errc <- s.grpc.Serve(limitConns(ls.grpc, o.connsPerAddress, s.api.Shed)) }()
	extra := s.serveSideListeners(ctx, o, ls, errc)
	s.startBackground(ctx, o, backend, leader)
	stopSummaries, cancelSummaries := s.runRefusalSummaries(ctx)
	defer cancelSummaries()
	log.Info("flinkpki serving", "version", readBuildInfo().String(), "listen", ls.grpc.Addr().String(), "data_dir", o.dataDir, "dev", o.dev,
		"rotation_interval", o.rotationInterval.String(), "holder_retention", o.holderRetention.String())
	if o.dev {
		printDevBanner(cmd.ErrOrStderr(), o, ls.grpc.Addr().String())
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil {
			return err
		}
	}
	s.stopServing(o.shutdownTimeout)
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	stopSummaries(sctx)
	for _, stop := range extra {
		stop(sctx)
	}
	cancel()
	if !s.bg.Wait(sctx) {
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
