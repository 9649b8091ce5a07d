package deploy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/metrics"
)

// prometheusRule is the part of monitoring.coreos.com/v1 PrometheusRule that
// our rules use. The Prometheus Operator's Go types would pull in
// controller-runtime and apiextensions-apiserver, so a strict local struct
// stands in: any field it does not know fails the decode.
type prometheusRule struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   monitoringMeta `json:"metadata"`
	Spec       struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels,omitempty"`
				Annotations map[string]string `json:"annotations,omitempty"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// serviceMonitor is the part of monitoring.coreos.com/v1 ServiceMonitor that
// we use, decoded strictly like prometheusRule.
type serviceMonitor struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   monitoringMeta `json:"metadata"`
	Spec       struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path,omitempty"`
			Interval string `json:"interval,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type monitoringMeta struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// metricName matches identifiers in a PromQL expression that look like
// flinkpki metric names.
var metricName = regexp.MustCompile(`\bflinkpki_[a-z_]+\b`)

// durationRE is Prometheus' duration syntax for the "for" field.
var durationRE = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)

func TestPrometheusRulesWatchTheRightMetrics(t *testing.T) {
	rule := only[*prometheusRule](t, mustDecodeFile(t, "kubernetes/monitoring/prometheusrule.yaml"))
	want := map[string]struct {
		metrics []string
		expr    string
		for_    string
	}{
		// A retiring CA lives inside 30 days of its expiry in every healthy
		// rotation (until expiry minus the margin): it has its own alert.
		"FlinkpkiCAExpiringSoon":          {[]string{"flinkpki_ca_expiry_timestamp_seconds"}, `min by (cluster, ca, state) (flinkpki_ca_expiry_timestamp_seconds{state!="retiring"}) - time() < 30 * 86400`, ""},
		"FlinkpkiRetiringCAExpiringSoon":  {[]string{"flinkpki_ca_expiry_timestamp_seconds"}, `min by (cluster, ca, state) (flinkpki_ca_expiry_timestamp_seconds{state="retiring"}) - time() < 3 * 86400`, ""},
		"FlinkpkiServingCertExpiringSoon": {[]string{"flinkpki_serving_cert_expiry_timestamp_seconds"}, `flinkpki_serving_cert_expiry_timestamp_seconds - time() < 30 * 86400`, "1h"},
		"FlinkpkiServingCAExpiringSoon":   {[]string{"flinkpki_serving_ca_expiry_timestamp_seconds"}, `min(flinkpki_serving_ca_expiry_timestamp_seconds) - time() < 365 * 86400`, "1h"},
		"FlinkpkiLeafExpiringSoon":        {[]string{"flinkpki_live_leaf_earliest_expiry_timestamp_seconds"}, `min by (cluster) (flinkpki_live_leaf_earliest_expiry_timestamp_seconds) - time() < 7 * 86400`, ""},
		// The other alerts go silent with their series when the server is
		// down or not scraped at all.
		"FlinkpkiDown":        {nil, `max(up{job="flinkpki"}) == 0 or absent(up{job="flinkpki"})`, "5m"},
		"FlinkpkiReplicaDown": {nil, `up{job="flinkpki"} == 0 and on () count(up{job="flinkpki"}) > 1`, "10m"},
		// The kubelet's volume statistics of the StatefulSet's claim.
		"FlinkpkiStoreVolumeFilling": {nil, `kubelet_volume_stats_available_bytes{persistentvolumeclaim=~"data-flinkpki-.*"} / kubelet_volume_stats_capacity_bytes{persistentvolumeclaim=~"data-flinkpki-.*"} < 0.25`, "15m"},
		"FlinkpkiRotationBlocked":    {[]string{"flinkpki_rotation_blocked"}, `max by (cluster, purpose, step) (flinkpki_rotation_blocked) > 0`, "1d"},
		"FlinkpkiRotationOverdue": {[]string{"flinkpki_rotation_next_step_timestamp_seconds", "flinkpki_rotation_blocked"},
			`time() - min by (cluster, purpose, step, auto_rotate) (flinkpki_rotation_next_step_timestamp_seconds) > 86400 unless on (cluster, purpose) (max by (cluster, purpose) (flinkpki_rotation_blocked) > 0)`, "1h"},
		"FlinkpkiDenialsSpike":      {[]string{"flinkpki_requests_denied_total"}, `sum(rate(flinkpki_requests_denied_total[5m])) > 1`, ""},
		"FlinkpkiExpiryGaugesStale": {[]string{"flinkpki_expiry_gauges_refresh_timestamp_seconds"}, `time() - flinkpki_expiry_gauges_refresh_timestamp_seconds > 3600`, "15m"},
	}
	seen := map[string]bool{}
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			w, ok := want[r.Alert]
			if !ok {
				t.Errorf("unexpected alert %q: add it to this test with its metrics", r.Alert)
				continue
			}
			seen[r.Alert] = true
			if r.Expr != w.expr {
				t.Errorf("%s: expr = %q, want %q", r.Alert, r.Expr, w.expr)
			}
			if got := metricName.FindAllString(r.Expr, -1); !slices.Equal(got, w.metrics) {
				t.Errorf("%s: expression uses metrics %v, want %v", r.Alert, got, w.metrics)
			}
			if w.for_ != "" && r.For != w.for_ {
				t.Errorf("%s: for = %q, want %q", r.Alert, r.For, w.for_)
			}
			if r.For != "" && !durationRE.MatchString(r.For) {
				t.Errorf("%s: for = %q is not a Prometheus duration", r.Alert, r.For)
			}
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: needs a severity label and a summary annotation", r.Alert)
			}
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("alert %s is missing", name)
		}
	}
}

func TestServiceMonitorScrapesTheMetricsPort(t *testing.T) {
	sm := only[*serviceMonitor](t, mustDecodeFile(t, "kubernetes/monitoring/servicemonitor.yaml"))
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Fatalf("endpoints = %+v, want the named port metrics at /metrics", sm.Spec.Endpoints)
	}
	if sm.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != "flinkpki" {
		t.Fatalf("selector = %v, want app.kubernetes.io/name=flinkpki", sm.Spec.Selector.MatchLabels)
	}
}

// grafanaDashboard is the part of Grafana's dashboard model that
// flinkpki-dashboard.json uses, decoded strictly: a misspelt field fails.
type grafanaDashboard struct {
	Title         string   `json:"title"`
	UID           string   `json:"uid"`
	Description   string   `json:"description"`
	Tags          []string `json:"tags"`
	Timezone      string   `json:"timezone"`
	SchemaVersion int      `json:"schemaVersion"`
	Version       int      `json:"version"`
	Refresh       string   `json:"refresh"`
	Time          struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"time"`
	Templating struct {
		List []struct {
			Name       string         `json:"name"`
			Type       string         `json:"type"`
			Label      string         `json:"label"`
			Query      string         `json:"query"`
			Datasource map[string]any `json:"datasource,omitempty"`
			IncludeAll bool           `json:"includeAll,omitempty"`
			AllValue   string         `json:"allValue,omitempty"`
			Refresh    int            `json:"refresh,omitempty"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID          int            `json:"id"`
		Type        string         `json:"type"`
		Title       string         `json:"title"`
		Description string         `json:"description"`
		Datasource  map[string]any `json:"datasource"`
		GridPos     struct {
			X, Y, W, H int
		} `json:"gridPos"`
		FieldConfig map[string]any `json:"fieldConfig"`
		Options     map[string]any `json:"options"`
		Targets     []struct {
			RefID        string         `json:"refId"`
			Expr         string         `json:"expr"`
			Datasource   map[string]any `json:"datasource"`
			LegendFormat string         `json:"legendFormat,omitempty"`
		} `json:"targets"`
	} `json:"panels"`
}

// exportedMetrics returns the names a real flinkpki metrics registry
// exposes once every collector has a value (histograms with their
// _bucket, _sum and _count series).
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New()
	m.Issued("orders", "taskmanager")
	m.Denied("unauthenticated")
	m.Rotations([]authority.RotationWait{{Cluster: "orders", Purpose: "internal", Step: "activate", Blocked: true}})
	m.SetRotationSchedule([]metrics.Step{{Cluster: "orders", Purpose: "internal", Step: "prepare", At: time.Now(), AutoRotate: true}})
	m.SetCAs([]metrics.CA{{Cluster: "orders", ID: "internal-1", State: "active", NotAfter: time.Now().Add(time.Hour)}},
		map[string]time.Time{"orders": time.Now().Add(time.Hour)}, map[string]int{"orders": 2}, map[string]time.Duration{"orders": 24 * time.Hour})
	m.WatchKeyPool(func() map[string]int { return map[string]int{"rsa-2048": 3} })
	_, _ = m.UnaryInterceptor(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/flinkpki.v1.EnrollmentService/Enroll"},
		func(context.Context, any) (any, error) { return nil, nil })
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	names := map[string]bool{}
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			names[f[2]] = true
			if f[3] == "histogram" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					names[f[2]+s] = true
				}
			}
		}
	}
	if !names["flinkpki_certificates_issued_total"] || !names["process_resident_memory_bytes"] {
		t.Fatalf("the registry exposes %d names, not the expected ones:\n%s", len(names), rec.Body.String())
	}
	return names
}

// promName matches the metric names a PromQL expression of ours uses.
var promName = regexp.MustCompile(`\b(?:flinkpki|process|go)_[a-z_]+\b`)

// The Grafana dashboard ships as a ConfigMap Grafana's sidecar loads, and
// every query it runs names metrics the server really exports.
func TestGrafanaDashboardQueriesWhatTheServerExports(t *testing.T) {
	var cm *corev1.ConfigMap
	for _, o := range rendered(t, "kubernetes/monitoring") {
		if c, ok := o.Value.(*corev1.ConfigMap); ok && o.Name == "flinkpki-grafana-dashboard" {
			cm = c
		}
	}
	if cm == nil || cm.Labels["grafana_dashboard"] != "1" || cm.Data["flinkpki-dashboard.json"] == "" {
		t.Fatalf("want the ConfigMap flinkpki-grafana-dashboard, labelled grafana_dashboard=1, holding flinkpki-dashboard.json; got %+v", cm)
	}
	var d grafanaDashboard
	dec := json.NewDecoder(strings.NewReader(cm.Data["flinkpki-dashboard.json"]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	exported := exportedMetrics(t)
	ids := map[int]bool{}
	queried := map[string]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H <= 0 {
			t.Errorf("panel %q: gridPos %+v does not fit Grafana's 24 columns", p.Title, p.GridPos)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if strings.Count(q.Expr, "(") != strings.Count(q.Expr, ")") || strings.Count(q.Expr, "{") != strings.Count(q.Expr, "}") {
				t.Errorf("panel %q: unbalanced query %q", p.Title, q.Expr)
			}
			names := promName.FindAllString(q.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q names no metric", p.Title, q.Expr)
			}
			for _, n := range names {
				queried[n] = true
				if !exported[n] {
					t.Errorf("panel %q: query %q uses %s, which the server does not export", p.Title, q.Expr, n)
				}
			}
		}
	}
	for _, n := range []string{"flinkpki_certificates_issued_total", "flinkpki_requests_denied_total", "flinkpki_grpc_request_duration_seconds_bucket",
		"flinkpki_ca_expiry_timestamp_seconds", "flinkpki_live_leaf_earliest_expiry_timestamp_seconds", "flinkpki_live_holders", "flinkpki_rotation_blocked", "flinkpki_bake_key_pool_ready"} {
		if !queried[n] {
			t.Errorf("no panel shows %s", n)
		}
	}
}
