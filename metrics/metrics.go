// Package metrics exposes flinkpki's Prometheus metrics. Labels are bounded:
// cluster, role, purpose, reason, gRPC method and code, never a holder.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Metrics holds flinkpki's collectors in their own registry.
type Metrics struct {
	reg      *prometheus.Registry
	issued   *prometheus.CounterVec
	denied   *prometheus.CounterVec
	caExpiry *prometheus.GaugeVec
	leafExp  *prometheus.GaugeVec
	phase    *prometheus.GaugeVec
	blocked  *prometheus.GaugeVec
	latency  *prometheus.HistogramVec
}

// New registers every collector, with the Go and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flinkpki_certificates_issued_total", Help: "Leaf certificates issued, by cluster and role.",
		}, []string{"cluster", "role"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flinkpki_requests_denied_total", Help: "Requests refused, by reason.",
		}, []string{"reason"}),
		caExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flinkpki_ca_expiry_timestamp_seconds", Help: "NotAfter of each CA of each cluster, as a Unix time.",
		}, []string{"cluster", "ca", "state"}),
		leafExp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flinkpki_live_leaf_earliest_expiry_timestamp_seconds", Help: "Earliest NotAfter among a cluster's live leaves, as a Unix time.",
		}, []string{"cluster"}),
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flinkpki_rotation_phase", Help: "1 for the next rotation step a lineage waits for (prepare, activate or retire).",
		}, []string{"cluster", "purpose", "step"}),
		blocked: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flinkpki_rotation_blocked", Help: "1 when a due automatic rotation step is blocked by live holders.",
		}, []string{"cluster", "purpose", "step"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "flinkpki_grpc_request_duration_seconds", Help: "gRPC request latency by method and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"method", "code"}),
	}
	m.reg.MustRegister(m.issued, m.denied, m.caExpiry, m.leafExp, m.phase, m.blocked, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Issued implements authority.Observer.
func (m *Metrics) Issued(cluster, role string) { m.issued.WithLabelValues(cluster, role).Inc() }

// Denied implements authority.Observer.
func (m *Metrics) Denied(reason string) { m.denied.WithLabelValues(reason).Inc() }

// RotationWaiting implements authority.Observer.
func (m *Metrics) RotationWaiting(cluster, purpose, step string, blocked bool) {
	for _, s := range []string{"prepare", "activate", "retire"} {
		v := 0.0
		if s == step {
			v = 1
		}
		m.phase.WithLabelValues(cluster, purpose, s).Set(v)
		b := 0.0
		if s == step && blocked {
			b = 1
		}
		m.blocked.WithLabelValues(cluster, purpose, s).Set(b)
	}
}

// CA is one CA's expiry, for SetCAs.
type CA struct {
	Cluster, ID, State string
	NotAfter           time.Time
}

// SetCAs replaces the CA expiry and live-leaf gauges with a fresh view.
func (m *Metrics) SetCAs(cas []CA, earliestLeaf map[string]time.Time) {
	m.caExpiry.Reset()
	for _, c := range cas {
		m.caExpiry.WithLabelValues(c.Cluster, c.ID, c.State).Set(float64(c.NotAfter.Unix()))
	}
	m.leafExp.Reset()
	for cl, t := range earliestLeaf {
		m.leafExp.WithLabelValues(cl).Set(float64(t.Unix()))
	}
}

// WatchKeyPool reports ready(), the keys the bake key pool holds ready per
// key type, as flinkpki_bake_key_pool_ready, read at every scrape.
func (m *Metrics) WatchKeyPool(ready func() map[string]int) {
	m.reg.MustRegister(keyPoolCollector{ready: ready, desc: prometheus.NewDesc("flinkpki_bake_key_pool_ready",
		"Pre-generated keys held ready in memory for bake, by key type.", []string{"key_type"}, nil)})
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

// UnaryInterceptor records request latency.
func (m *Metrics) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	m.latency.WithLabelValues(info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
	return resp, err
}

// StreamInterceptor records stream duration.
func (m *Metrics) StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := handler(srv, ss)
	m.latency.WithLabelValues(info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
	return err
}
