package main

// What serve starts once its server is made, and stops again: the
// election among replicas, the side listeners, the background work.

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/flinkpki/flinkpki/api"
	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/internal/tick"
	"github.com/flinkpki/flinkpki/metrics"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/bolt"
	etcdstore "github.com/flinkpki/flinkpki/store/etcd"
)

// joinElection makes an etcd replica join its election and returns what
// tells whether it leads at a moment, and how it leaves (before the store
// closes). One replica rotates and prunes: the leader of one election (its
// name predates pruning, and replicas of both versions must agree on it).
// A replica without background work (jobs false) still joins an election,
// one nobody acts on, so that the offline commands (admin rotate-kek) see
// it while it runs. On bbolt there is nobody else: it always leads.
func joinElection(ctx context.Context, backend store.Backend, jobs bool) (leader func() bool, leave func() error, _ error) {
	leader = func() bool { return true }
	leave = func() error { return nil }
	eb, ok := backend.(*etcdstore.Backend)
	if !ok {
		return leader, leave, nil
	}
	election := etcdstore.PresenceElection
	if jobs {
		election = "rotation-scheduler"
	}
	l, err := eb.Elect(ctx, election)
	if err != nil {
		return nil, nil, fmt.Errorf("join the %s election in etcd: %w", election, err)
	}
	if jobs {
		leader = l.IsLeader
	}
	return leader, sync.OnceValue(l.Close), nil
}

// serveSideListeners serves metrics, pprof and plaintext health on the
// listeners the flags asked for, and returns how each stops. Serving
// errors go to errc.
func (s *server) serveSideListeners(ctx context.Context, o *serveOptions, ls *serveListeners, errc chan<- error) []func(context.Context) {
	var extra []func(context.Context)
	if ls.metrics != nil {
		extra = append(extra, serveMetrics(ctx, ls.metrics, s.m, s.auth, s.bg, s.log, errc))
	}
	if ls.pprof != nil {
		if h, _, _ := net.SplitHostPort(o.pprofListen); !isLoopback(h) {
			s.log.Warn("--pprof-listen is not on loopback: anyone who reaches it can read goroutine stacks and heap profiles, and run CPU profiles and traces, without a token", "addr", o.pprofListen)
		}
		extra = append(extra, servePprof(ls.pprof, errc))
	}
	if ls.health != nil {
		hg := newHealthServer(o.rpcTimeout.d)
		healthpb.RegisterHealthServer(hg, s.health)
		go func() { errc <- hg.Serve(ls.health) }()
		extra = append(extra, func(context.Context) { hg.Stop() })
	}
	return extra
}

// startBackground starts the server's background work, each piece only
// where the flags and the store call for it, and the gauges /metrics reads
// as it is scraped.
func (s *server) startBackground(ctx context.Context, o *serveOptions, backend store.Backend, leader func() bool) {
	s.bg.Go(func() { s.serving.run(ctx, servingCertCheck, s.log) })
	// Every replica: each holds open the CA keys of what it signed lately.
	s.bg.Go(func() { s.auth.RunSignerSweeper(ctx, authority.SignerSweepEvery, authority.SignerIdle) })
	if o.rotationInterval.d > 0 {
		s.bg.Go(func() { s.auth.RunScheduler(ctx, o.rotationInterval.d, leader) })
	}
	if o.holderRetention.d > 0 {
		s.bg.Go(func() { s.auth.RunPruner(ctx, pruneFirst, pruneEvery, o.holderRetention.d, leader) })
	}
	if hc, ok := backend.(healthChecker); ok {
		s.bg.Go(func() { watchStoreHealth(ctx, hc, s.health, s.log, s.m.SetReady) })
	}
	if o.auditVerify.d > 0 {
		s.bg.Go(func() {
			s.auth.RunAuditVerifier(ctx, o.auditVerify.d, func(c authority.AuditCheck) { s.m.SetAuditCheck(c.Intact, c.At) })
		})
	}
	if bb, ok := backend.(*bolt.Backend); ok {
		s.m.WatchStoreSize(func() int64 {
			fi, err := os.Stat(bb.Path())
			if err != nil {
				return -1
			}
			return fi.Size()
		})
	}
	s.m.WatchServing(func() time.Time { return s.serving.cur.Load().Leaf.NotAfter }, func() time.Time { return s.serving.ca.Load().NotAfter })
	if s.pool != nil && o.keyPool > 0 {
		pool := s.pool
		s.m.WatchKeyPool(func() map[string]int {
			out := map[string]int{}
			for kt, n := range pool.Ready() {
				out[string(kt)] = n
			}
			return out
		})
		s.bg.Go(func() { pool.Run(ctx) })
	}
}

// runRefusalSummaries writes summaries of the refusals that floods kept
// from being audited one by one. stop ends it and writes the last, once the
// gRPC server has stopped; cancel ends it without (a start that failed).
func (s *server) runRefusalSummaries(ctx context.Context) (stop func(context.Context), cancel func()) {
	sumCtx, sumCancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { s.api.RunRefusalSummaries(sumCtx); close(done) }()
	return func(ctx context.Context) {
		sumCancel()
		<-done
		_ = s.api.FlushRefusals(ctx) // a failure is logged
	}, sumCancel
}

// stopServing turns the health NOT_SERVING, takes no new requests and lets
// in-flight ones finish for up to timeout before it closes them.
func (s *server) stopServing(timeout durationFlag) {
	s.log.Info("shutting down: no new requests; finishing in-flight ones", "timeout", timeout.String())
	s.health.Shutdown()
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout.d):
		s.log.Warn("in-flight requests did not finish in time; closing them")
		s.grpc.Stop()
	}
}

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

// refreshGauges recomputes the CA expiry and live-leaf gauges from the
// store, one page of cluster statuses per read transaction, and replaces
// them only when every page was read. /metrics calls it at most once per
// gaugeRefresh.
func refreshGauges(ctx context.Context, auth *authority.Authority, m *metrics.Metrics) error {
	var cas []metrics.CA
	var steps []metrics.Step
	earliest := map[string]time.Time{}
	live := map[string]int{}
	validity := map[string]time.Duration{}
	after := ""
	for {
		page, next, err := auth.Expiries(ctx, after, 500)
		if err != nil {
			return err
		}
		for _, e := range page {
			for _, c := range e.CAs {
				cas = append(cas, metrics.CA{Cluster: e.Cluster, ID: c.ID, State: string(c.State), NotAfter: c.NotAfter})
			}
			if !e.EarliestExpiry.IsZero() {
				earliest[e.Cluster] = e.EarliestExpiry
			}
			live[e.Cluster] = e.LiveHolders
			validity[e.Cluster] = e.LeafValidity
			for _, n := range e.Next {
				steps = append(steps, metrics.Step{Cluster: e.Cluster, Purpose: string(n.Purpose), Step: string(n.Kind), At: n.At, AutoRotate: e.AutoRotate})
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	m.SetRotationSchedule(steps)
	m.SetCAs(cas, earliest, live, validity)
	return nil
}

// rsaKeyTypesInUse lists the RSA key types of existing clusters, all of
// them, read page clusters at a time, so the bake key pool can fill before
// the first burst. It is a hint: a store it cannot read yields what it read.
func rsaKeyTypesInUse(ctx context.Context, st *store.Store, page int) []ca.KeyType {
	seen := map[ca.KeyType]bool{}
	var out []ca.KeyType
	for after := ""; ; {
		var next string
		err := st.View(ctx, func(tx *store.Txn) error {
			cs, n, err := tx.ListClusters(after, page)
			for _, c := range cs {
				kt := ca.KeyType(c.KeyType)
				if !seen[kt] && kt.Algorithm() == x509.RSA {
					seen[kt] = true
					out = append(out, kt)
				}
			}
			next = n
			return err
		})
		if err != nil || next == "" {
			return out
		}
		after = next
	}
}

func servePprof(l net.Listener, errc chan<- error) func(context.Context) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	return serveHTTP(l, mux, errc)
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
