// Package metrics exposes flinkpki's Prometheus metrics. Labels are bounded:
// cluster, role, purpose, reason, gRPC method and code, never a holder.
package metrics

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/flinkpki/flinkpki/authority"
)

// Metrics holds flinkpki's collectors in their own registry.
type Metrics struct {
	reg      *prometheus.Registry
	issued   *prometheus.CounterVec
	denied   *prometheus.CounterVec
	expiry   expiryCollector
	rotation *rotationCollector
	latency  *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec

	refreshedAt  prometheus.Gauge
	refreshTakes prometheus.Gauge

	ready          prometheus.Gauge
	auditIntact    prometheus.Gauge
	auditVerified  prometheus.Gauge
	jwksUnknownKey prometheus.Counter

	// issuedClusters holds the clusters with an issued series, each with
	// whether the last view (SetCAs) lacked it: a series goes once two
	// views in a row lack its cluster (deleted, here or on another
	// replica), so that a cluster made after a view's read, which issued
	// before the view was stored, keeps its series.
	issuedMu       sync.Mutex
	issuedClusters map[string]bool
}

// New registers every collector, with the Go and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg:            prometheus.NewRegistry(),
		issuedClusters: map[string]bool{},
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flinkpki_certificates_issued_total", Help: "Leaf certificates issued, by cluster and role.",
		}, []string{"cluster", "role"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flinkpki_requests_denied_total", Help: "Requests refused, by reason.",
		}, []string{"reason"}),
		expiry:   newExpiryCollector(),
		rotation: newRotationCollector(),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "flinkpki_grpc_request_duration_seconds", Help: "gRPC request latency by method and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"method", "code"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flinkpki_grpc_requests_in_flight", Help: "gRPC requests being served now, by method (from their message's arrival).",
		}, []string{"method"}),
		refreshedAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flinkpki_expiry_gauges_refresh_timestamp_seconds",
			Help: "When the CA and live-leaf expiry gauges were last recomputed from the store, as a Unix time (0 before the first time).",
		}),
		refreshTakes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flinkpki_expiry_gauges_refresh_duration_seconds",
			Help: "How long the last recomputation of the expiry gauges took; it reads every holder of every cluster.",
		}),
	}
	m.ready = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "flinkpki_ready",
		Help: "1 while the server's health is SERVING (its store passes its checks), 0 while it is NOT_SERVING.",
	})
	m.ready.Set(1)
	m.auditIntact = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "flinkpki_audit_chain_intact",
		Help: "1 until a verification of the audit trail's hash chain (the server's own, every --audit-verify-interval) finds a break, then 0.",
	})
	m.auditIntact.Set(1)
	m.auditVerified = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "flinkpki_audit_verified_timestamp_seconds",
		Help: "When the server last finished verifying its audit trail, as a Unix time (0 before the first time).",
	})
	m.jwksUnknownKey = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flinkpki_k8s_jwks_unknown_key_total",
		Help: "Service-account tokens signed by a key the --k8s-jwks-file lacks, after reading the file again if it changed: with TokenReview, those the API server vouched for; without, every one (refused), made-up key IDs included.",
	})
	m.reg.MustRegister(m.ready, m.auditIntact, m.auditVerified, m.jwksUnknownKey)
	m.reg.MustRegister(m.issued, m.denied, m.expiry, m.rotation, m.latency, m.inFlight, m.refreshedAt, m.refreshTakes,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Issued implements authority.Observer.
func (m *Metrics) Issued(cluster, role string) {
	m.issued.WithLabelValues(cluster, role).Inc()
	m.issuedMu.Lock()
	m.issuedClusters[cluster] = false
	m.issuedMu.Unlock()
}

// Denied implements authority.Observer.
func (m *Metrics) Denied(reason string) { m.denied.WithLabelValues(reason).Inc() }

// Rotations implements authority.Observer: it replaces the rotation gauges
// with one scheduler tick's view, in one step, as SetCAs does. A lineage
// the tick failed on keeps what the tick before said, so an alert on a
// blocked step does not resolve because the next tick failed. Only the
// step a lineage waits for has series, two per lineage: at 10,000
// clusters, a view of 20,000 small records instead of 120,000 gauges.
func (m *Metrics) Rotations(waits []authority.RotationWait) {
	c := m.rotation
	c.mu.Lock()
	defer c.mu.Unlock()
	prev := c.view
	next := make(map[lineage]authority.RotationWait, len(waits))
	for _, w := range waits {
		k := lineage{w.Cluster, w.Purpose}
		if w.Failed {
			if old, ok := prev[k]; ok {
				next[k] = old
			}
			continue
		}
		next[k] = w
	}
	c.view = next
}

type lineage struct{ cluster, purpose string }

// newRotationCollector describes the series of the rotation steps that
// lineages wait for, which Rotations fills from the leader's scheduler
// ticks.
func newRotationCollector() *rotationCollector {
	return &rotationCollector{
		phase: prometheus.NewDesc("flinkpki_rotation_phase",
			"1 for the next rotation step a lineage with automatic rotation waits for (prepare, activate or retire), as the leader's last scheduler tick saw it.",
			[]string{"cluster", "purpose", "step"}, nil),
		blocked: prometheus.NewDesc("flinkpki_rotation_blocked",
			"1 when that step is due but live holders hold it back, else 0.",
			[]string{"cluster", "purpose", "step"}, nil),
	}
}

// rotationCollector serves the last view Rotations stored.
type rotationCollector struct {
	phase, blocked *prometheus.Desc
	mu             sync.Mutex
	view           map[lineage]authority.RotationWait
}

func (c *rotationCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.phase; ch <- c.blocked }

func (c *rotationCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	view := c.view // replaced whole, never changed in place
	c.mu.Unlock()
	for k, w := range view {
		ch <- prometheus.MustNewConstMetric(c.phase, prometheus.GaugeValue, 1, k.cluster, k.purpose, w.Step)
		ch <- prometheus.MustNewConstMetric(c.blocked, prometheus.GaugeValue, oneIf(w.Blocked), k.cluster, k.purpose, w.Step)
	}
}

// CA is one CA's expiry, for SetCAs.
type CA struct {
	Cluster, ID, State string
	NotAfter           time.Time
}

// SetCAs replaces the CA expiry, live-leaf and live-holder gauges with a
// fresh view, in one step: a scrape sees the whole old view or the whole new
// one, never a half-written one whose missing series would resolve an
// expiry alert.
// liveHolders names every cluster (0 for none): the issued counters of a
// cluster it has lacked twice in a row are dropped, so a platform that
// creates and deletes clusters for months does not keep a series per
// cluster it ever had.
func (m *Metrics) SetCAs(cas []CA, earliestLeaf map[string]time.Time, liveHolders map[string]int, leafValidity map[string]time.Duration) {
	m.expiry.view.Store(&expiryView{cas: cas, leaf: earliestLeaf, live: liveHolders, validity: leafValidity})
	m.issuedMu.Lock()
	defer m.issuedMu.Unlock()
	for cluster, lacked := range m.issuedClusters {
		switch _, ok := liveHolders[cluster]; {
		case ok:
			m.issuedClusters[cluster] = false
		case lacked:
			m.issued.DeletePartialMatch(prometheus.Labels{"cluster": cluster})
			delete(m.issuedClusters, cluster)
		default:
			m.issuedClusters[cluster] = true
		}
	}
}

type expiryView struct {
	cas      []CA
	leaf     map[string]time.Time
	live     map[string]int
	validity map[string]time.Duration
}

// Step is when one lineage's next rotation step is due, for
// SetRotationSchedule.
type Step struct {
	Cluster, Purpose, Step string
	At                     time.Time
	AutoRotate             bool
}

// SetRotationSchedule replaces the next-step gauges with a fresh view, in
// one step, as SetCAs does.
func (m *Metrics) SetRotationSchedule(steps []Step) { m.expiry.steps.Store(&steps) }

// newExpiryCollector describes the series of expiries and of the rotation
// schedule, which SetCAs and SetRotationSchedule fill from views of the
// store.
func newExpiryCollector() expiryCollector {
	return expiryCollector{
		ca: prometheus.NewDesc("flinkpki_ca_expiry_timestamp_seconds",
			"NotAfter of each CA of each cluster, as a Unix time.", []string{"cluster", "ca", "state"}, nil),
		leaf: prometheus.NewDesc("flinkpki_live_leaf_earliest_expiry_timestamp_seconds",
			"Earliest NotAfter among a cluster's live leaves, as a Unix time.", []string{"cluster"}, nil),
		live: prometheus.NewDesc("flinkpki_live_holders",
			"Holders (pods, baked images) of a cluster whose leaf has not expired, both lineages together, 0 for none.", []string{"cluster"}, nil),
		validity: prometheus.NewDesc("flinkpki_cluster_leaf_validity_seconds",
			"The leaf validity L of each cluster: its rotation schedule and what expiry alerts compare against follow from it.", []string{"cluster"}, nil),
		next: prometheus.NewDesc("flinkpki_rotation_next_step_timestamp_seconds",
			"When the next rotation step of a cluster's CA lineage (prepare, activate or retire) is due by its schedule, as a Unix time; auto_rotate says whether the scheduler takes it or an administrator must.",
			[]string{"cluster", "purpose", "step", "auto_rotate"}, nil),
		view:  new(atomic.Pointer[expiryView]),
		steps: new(atomic.Pointer[[]Step]),
	}
}

// expiryCollector serves the last views SetCAs and SetRotationSchedule
// stored.
type expiryCollector struct {
	ca, leaf, live, validity, next *prometheus.Desc
	view                           *atomic.Pointer[expiryView]
	steps                          *atomic.Pointer[[]Step]
}

func (c expiryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.ca
	ch <- c.leaf
	ch <- c.live
	ch <- c.validity
	ch <- c.next
}

func (c expiryCollector) Collect(ch chan<- prometheus.Metric) {
	if steps := c.steps.Load(); steps != nil {
		for _, s := range *steps {
			ch <- prometheus.MustNewConstMetric(c.next, prometheus.GaugeValue, float64(s.At.Unix()), s.Cluster, s.Purpose, s.Step, strconv.FormatBool(s.AutoRotate))
		}
	}
	v := c.view.Load()
	if v == nil {
		return
	}
	for _, e := range v.cas {
		ch <- prometheus.MustNewConstMetric(c.ca, prometheus.GaugeValue, float64(e.NotAfter.Unix()), e.Cluster, e.ID, e.State)
	}
	for cl, t := range v.leaf {
		ch <- prometheus.MustNewConstMetric(c.leaf, prometheus.GaugeValue, float64(t.Unix()), cl)
	}
	for cl, n := range v.live {
		ch <- prometheus.MustNewConstMetric(c.live, prometheus.GaugeValue, float64(n), cl)
	}
	for cl, d := range v.validity {
		ch <- prometheus.MustNewConstMetric(c.validity, prometheus.GaugeValue, d.Seconds(), cl)
	}
}

// SetReady says whether the server's health is SERVING (flinkpki_ready).
func (m *Metrics) SetReady(ready bool) { m.ready.Set(oneIf(ready)) }

// SetAuditCheck records a verification of the audit trail that ended at
// at: whether the chain held (flinkpki_audit_chain_intact), and when
// (flinkpki_audit_verified_timestamp_seconds).
func (m *Metrics) SetAuditCheck(intact bool, at time.Time) {
	m.auditIntact.Set(oneIf(intact))
	m.auditVerified.Set(float64(at.UnixNano()) / 1e9)
}

// oneIf is a yes-or-no gauge's value.
func oneIf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// JWKSUnknownKey counts a service-account token signed by a key the
// --k8s-jwks-file lacks (flinkpki_k8s_jwks_unknown_key_total).
func (m *Metrics) JWKSUnknownKey() { m.jwksUnknownKey.Inc() }

// RefreshingHandler serves /metrics and keeps the expiry gauges at most
// every old, or 20 times as long as the last refresh took when that is
// longer, so that refreshing never costs more than a twentieth of a core.
// Computing them reads every holder of every cluster (seconds at a million
// holders), so no scrape waits for it but the first:
//   - the first scrape waits for the first refresh (or for its own end), so
//     the gauges are there from the start;
//   - later, a scrape that finds the last refresh older than every starts the
//     next one in the background and answers at once with the last values;
//   - one refresh runs at a time, under ctx, whatever the number of scrapers
//     (two Prometheus replicas, say);
//   - a refresh that fails is handed to onErr and retried at the next scrape.
//
// flinkpki_expiry_gauges_refresh_timestamp_seconds says how old the values
// are, so an alert can tell gauges that stopped moving.
func (m *Metrics) RefreshingHandler(ctx context.Context, every time.Duration, refresh func(context.Context) error, onErr func(error)) http.Handler {
	r := &refresher{ctx: ctx, every: every, refresh: refresh, onErr: onErr, m: m, now: time.Now, first: make(chan struct{})}
	h := m.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.scrape(req.Context())
		h.ServeHTTP(w, req)
	})
}

type refresher struct {
	ctx     context.Context
	every   time.Duration
	refresh func(context.Context) error
	onErr   func(error)
	m       *Metrics
	now     func() time.Time

	mu      sync.Mutex
	last    time.Time     // start of the last successful refresh; zero before one
	took    time.Duration // how long it took
	running bool
	first   chan struct{} // closed when the first refresh ends
	once    sync.Once
}

// scrape starts a refresh when one is due and none runs, and waits only
// until the first refresh has ended.
func (r *refresher) scrape(ctx context.Context) {
	r.mu.Lock()
	if !r.running && (r.last.IsZero() || r.now().Sub(r.last) >= max(r.every, 20*r.took)) {
		r.running = true
		go r.run()
	}
	r.mu.Unlock()
	select {
	case <-r.first:
	case <-ctx.Done():
	}
}

func (r *refresher) run() {
	start := r.now()
	err := r.safeRefresh()
	end := r.now()
	r.mu.Lock()
	r.running = false
	if err == nil {
		r.last, r.took = start, end.Sub(start)
	}
	r.mu.Unlock()
	if err == nil {
		r.m.refreshedAt.Set(float64(end.UnixNano()) / 1e9)
		r.m.refreshTakes.Set(end.Sub(start).Seconds())
	} else if r.onErr != nil && r.ctx.Err() == nil { // not at shutdown
		r.onErr(err)
	}
	r.once.Do(func() { close(r.first) })
}

// safeRefresh runs the refresh, which runs on a goroutine of its own, and
// turns a panic in it into an error (reported, retried at the next
// scrape), so that a bug in it cannot end the server.
func (r *refresher) safeRefresh() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the expiry gauges' refresh panicked: %v\n%s", p, debug.Stack())
		}
	}()
	return r.refresh(r.ctx)
}

// WatchKeyPool reports ready(), the keys the bake key pool holds ready per
// key type, as flinkpki_bake_key_pool_ready, read at every scrape.
func (m *Metrics) WatchKeyPool(ready func() map[string]int) {
	m.reg.MustRegister(keyPoolCollector{ready: ready, desc: prometheus.NewDesc("flinkpki_bake_key_pool_ready",
		"Pre-generated keys held ready in memory for bake, by key type.", []string{"key_type"}, nil)})
}

// WatchStoreSize reports size(), the bytes the database file takes, as
// flinkpki_store_size_bytes, read at every scrape; a size below 0 (it could
// not be read) reports nothing. The audit trail only grows, and a bbolt
// file never shrinks: when its volume fills, no issuance commits.
func (m *Metrics) WatchStoreSize(size func() int64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "flinkpki_store_size_bytes",
		Help: "Size of the embedded database file in bytes (bolt store only).",
	}, func() float64 { return float64(max(size(), 0)) }))
}

// WatchServing reports the expiry of the certificate the server presents
// and of the serving CA that signs it (the trust anchor every client holds
// as server-ca.crt), read at every scrape, as
// flinkpki_serving_cert_expiry_timestamp_seconds and
// flinkpki_serving_ca_expiry_timestamp_seconds. The first is renewed
// (tried every 5 minutes) with four months to go; the second lasts ten years and is
// replaced by hand (admin serving-ca), and once it expires no client can
// verify the server.
func (m *Metrics) WatchServing(cert, ca func() time.Time) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "flinkpki_serving_cert_expiry_timestamp_seconds",
		Help: "Expiry of the TLS certificate the server presents, Unix seconds.",
	}, func() float64 { return float64(cert().Unix()) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "flinkpki_serving_ca_expiry_timestamp_seconds",
		Help: "Expiry of the serving CA, which clients trust as server-ca.crt, Unix seconds.",
	}, func() float64 { return float64(ca().Unix()) }))
}

type keyPoolCollector struct {
	desc  *prometheus.Desc
	ready func() map[string]int
}

func (c keyPoolCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c keyPoolCollector) Collect(ch chan<- prometheus.Metric) {
	for kt, n := range c.ready() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), kt)
	}
}

// UnaryInterceptor records request latency and requests in flight.
func (m *Metrics) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	g := m.inFlight.WithLabelValues(info.FullMethod)
	g.Inc()
	defer g.Dec()
	resp, err := handler(ctx, req)
	m.latency.WithLabelValues(info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
	return resp, err
}

// StreamInterceptor records stream duration and streams in flight.
func (m *Metrics) StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	g := m.inFlight.WithLabelValues(info.FullMethod)
	g.Inc()
	defer g.Dec()
	err := handler(srv, ss)
	m.latency.WithLabelValues(info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
	return err
}
