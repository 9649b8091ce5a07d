package deploy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
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
var metricName = regexp.MustCompile(`\bflinkpki_[a-z0-9_]+\b`)

// durationRE is Prometheus' duration syntax for the "for" field.
var durationRE = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)

// Every rule of the PrometheusRule, by alert and severity, with the flinkpki
// metrics it reads, its expression and its "for" (none: fires at once).
// promtool_test.go runs them; this pins them, so that a change to one is a
// change to this test too.
func TestPrometheusRulesWatchTheRightMetrics(t *testing.T) {
	rule := only[*prometheusRule](t, mustDecodeFile(t, "kubernetes/monitoring/prometheusrule.yaml"))
	const (
		caExpiry   = "flinkpki_ca_expiry_timestamp_seconds"
		leafL      = "flinkpki_cluster_leaf_validity_seconds"
		enrollRate = `rate(flinkpki_grpc_request_duration_seconds_count{method=~"/flinkpki.v1.EnrollmentService/(Enroll|Bake)"`
	)
	want := map[string]struct {
		metrics []string
		expr    string
		for_    string
	}{
		// A prepared or active CA has more than L + 7d to go in every healthy
		// rotation (activation at expiry - L - max(7d, L/4)); a retiring CA
		// lives inside that in every healthy rotation (until expiry minus
		// the margin): it has its own alert. The critical rule needs no L.
		"FlinkpkiCAExpiringSoon/warning": {[]string{caExpiry, leafL},
			`min by (cluster, ca, state) (flinkpki_ca_expiry_timestamp_seconds{state!="retiring"}) - time() < on (cluster) group_left () (max by (cluster) (flinkpki_cluster_leaf_validity_seconds) + 7 * 86400)`, "1h"},
		"FlinkpkiCAExpiringSoon/critical": {[]string{caExpiry},
			`min by (cluster, ca, state) (flinkpki_ca_expiry_timestamp_seconds{state!="retiring"}) - time() < 7 * 86400`, "1h"},
		"FlinkpkiRetiringCAExpiringSoon/warning":  {[]string{caExpiry}, `min by (cluster, ca, state) (flinkpki_ca_expiry_timestamp_seconds{state="retiring"}) - time() < 3 * 86400`, "1h"},
		"FlinkpkiServingCertExpiringSoon/warning": {[]string{"flinkpki_serving_cert_expiry_timestamp_seconds"}, `flinkpki_serving_cert_expiry_timestamp_seconds - time() < 30 * 86400`, "1h"},
		"FlinkpkiServingCAExpiringSoon/warning":   {[]string{"flinkpki_serving_ca_expiry_timestamp_seconds"}, `min(flinkpki_serving_ca_expiry_timestamp_seconds) - time() < 365 * 86400`, "1h"},
		// Within min(7d, L/4) of the earliest leaf's expiry.
		"FlinkpkiLeafExpiringSoon/info": {[]string{"flinkpki_live_leaf_earliest_expiry_timestamp_seconds", leafL},
			`min by (cluster) (flinkpki_live_leaf_earliest_expiry_timestamp_seconds) - time() < on (cluster) clamp_max(max by (cluster) (flinkpki_cluster_leaf_validity_seconds) / 4, 7 * 86400)`, "1h"},
		// The other alerts go silent with their series when the server is
		// down or not scraped at all.
		"FlinkpkiDown/critical":       {nil, `max(up{job="flinkpki"}) == 0 or absent(up{job="flinkpki"})`, "5m"},
		"FlinkpkiReplicaDown/warning": {nil, `up{job="flinkpki"} == 0 and on () count(up{job="flinkpki"}) > 1`, "10m"},
		// Scraped, but health NOT_SERVING: every replica of an installation,
		// or some of them.
		"FlinkpkiNotReady/critical": {[]string{"flinkpki_ready"}, `max by (namespace, job) (flinkpki_ready) == 0`, "5m"},
		"FlinkpkiNotReady/warning": {[]string{"flinkpki_ready", "flinkpki_ready"},
			`flinkpki_ready == 0 unless on (namespace, job) (max by (namespace, job) (flinkpki_ready) == 0)`, "5m"},
		// The kubelet's volume statistics of the StatefulSet's claim.
		"FlinkpkiStoreVolumeFilling/warning": {nil, `kubelet_volume_stats_available_bytes{persistentvolumeclaim=~"data-flinkpki-.*"} / kubelet_volume_stats_capacity_bytes{persistentvolumeclaim=~"data-flinkpki-.*"} < 0.25`, "15m"},
		// etcd's own metrics, of the job flinkpki-etcd only.
		"FlinkpkiEtcdQuotaFilling/warning": {nil, `max by (job) (etcd_mvcc_db_total_size_in_bytes{job="flinkpki-etcd"} / etcd_server_quota_backend_bytes{job="flinkpki-etcd"}) > 0.75`, "15m"},
		"FlinkpkiRotationBlocked/warning":  {[]string{"flinkpki_rotation_blocked"}, `max by (cluster, purpose, step) (flinkpki_rotation_blocked) > 0`, "1d"},
		"FlinkpkiRotationOverdue/warning": {[]string{"flinkpki_rotation_next_step_timestamp_seconds", "flinkpki_rotation_blocked"},
			`time() - min by (cluster, purpose, step, auto_rotate) (flinkpki_rotation_next_step_timestamp_seconds) > 86400 unless on (cluster, purpose) (max by (cluster, purpose) (flinkpki_rotation_blocked) > 0)`, "1h"},
		"FlinkpkiDenialsSpike/warning":      {[]string{"flinkpki_requests_denied_total"}, `sum(rate(flinkpki_requests_denied_total[5m])) > 1`, "10m"},
		"FlinkpkiExpiryGaugesStale/warning": {[]string{"flinkpki_expiry_gauges_refresh_timestamp_seconds"}, `time() - flinkpki_expiry_gauges_refresh_timestamp_seconds > 3600`, "15m"},
		"FlinkpkiAuditChainBroken/critical": {[]string{"flinkpki_audit_chain_intact"}, `min by (namespace, job) (flinkpki_audit_chain_intact) == 0`, ""},
		"FlinkpkiAuditNotVerified/warning": {[]string{"flinkpki_audit_verified_timestamp_seconds"},
			`time() - max by (namespace, job) (flinkpki_audit_verified_timestamp_seconds) > 3 * 3600`, "2h"},
		// Server-side failures of Enroll and Bake: not the client's own
		// mistakes, rate limits (retried) or calls it abandoned.
		"FlinkpkiEnrollmentsFailing/critical": {[]string{"flinkpki_grpc_request_duration_seconds_count", "flinkpki_grpc_request_duration_seconds_count"},
			`sum by (namespace, job) (` + enrollRate + `,code!~"OK|PermissionDenied|Unauthenticated|InvalidArgument|NotFound|AlreadyExists|ResourceExhausted|Canceled"}[10m])) / sum by (namespace, job) (` + enrollRate + `}[10m])) > 0.1`, "15m"},
		"FlinkpkiServerErrors/warning":  {[]string{"flinkpki_requests_denied_total"}, `sum by (namespace, job) (increase(flinkpki_requests_denied_total{reason="error"}[10m])) > 0`, ""},
		"FlinkpkiJWKSOutOfDate/warning": {[]string{"flinkpki_k8s_jwks_unknown_key_total"}, `sum by (namespace, job) (increase(flinkpki_k8s_jwks_unknown_key_total[15m])) > 0`, ""},
	}
	seen := map[string]bool{}
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			key := r.Alert + "/" + r.Labels["severity"]
			w, ok := want[key]
			if !ok {
				t.Errorf("unexpected rule %s: add it to this test with its metrics", key)
				continue
			}
			if seen[key] {
				t.Errorf("two rules %s", key)
			}
			seen[key] = true
			if r.Expr != w.expr {
				t.Errorf("%s: expr = %q, want %q", key, r.Expr, w.expr)
			}
			if got := metricName.FindAllString(r.Expr, -1); !slices.Equal(got, w.metrics) {
				t.Errorf("%s: expression uses metrics %v, want %v", key, got, w.metrics)
			}
			if r.For != w.for_ {
				t.Errorf("%s: for = %q, want %q", key, r.For, w.for_)
			}
			if r.For != "" && !durationRE.MatchString(r.For) {
				t.Errorf("%s: for = %q is not a Prometheus duration", key, r.For)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: needs a summary and a description", key)
			}
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("rule %s is missing", name)
		}
	}
	// The operator's runbook for a JWKS out of date.
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "FlinkpkiJWKSOutOfDate" && !strings.Contains(r.Annotations["description"], "Refresh the JWKS ConfigMap") {
				t.Errorf("FlinkpkiJWKSOutOfDate: the description does not tell the operator to refresh the JWKS ConfigMap: %q", r.Annotations["description"])
			}
		}
	}
}

// The alert table of deploy/README.md's Monitoring section names every
// alert of the PrometheusRule, and no other.
func TestREADMEAlertTableListsEveryAlert(t *testing.T) {
	rule := only[*prometheusRule](t, mustDecodeFile(t, "kubernetes/monitoring/prometheusrule.yaml"))
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "\n## Monitoring\n")
	if start < 0 {
		t.Fatal("README.md has no Monitoring section")
	}
	section := text[start+1:]
	if end := strings.Index(section[1:], "\n## "); end >= 0 {
		section = section[:end+1]
	}
	row := regexp.MustCompile("(?m)^\\| `(Flinkpki[A-Za-z]+)`")
	table := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		table[m[1]] = true
	}
	alerts := map[string]bool{}
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			if !table[r.Alert] {
				t.Errorf("README.md's alert table (Monitoring) does not list %s", r.Alert)
			}
		}
	}
	for name := range table {
		if !alerts[name] {
			t.Errorf("README.md's alert table lists %s, which the PrometheusRule lacks", name)
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
			Instant      bool           `json:"instant,omitempty"`
			Range        *bool          `json:"range,omitempty"`
			Format       string         `json:"format,omitempty"`
		} `json:"targets"`
		Transformations []struct {
			ID      string         `json:"id"`
			Options map[string]any `json:"options"`
		} `json:"transformations,omitempty"`
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
var promName = regexp.MustCompile(`\b(?:flinkpki|process|go)_[a-z0-9_]+\b`)

// promSelector matches a metric name of ours with the label matchers that
// follow it, if any.
var promSelector = regexp.MustCompile(`\b((?:flinkpki|process|go)_[a-z0-9_]+)\b(\{[^}]*\})?`)

// jobMatcher is the dashboard's job variable as a label matcher: with two
// flinkpki installations in one Prometheus, every panel shows the chosen one.
const jobMatcher = `job=~"$job"`

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
			for _, m := range promSelector.FindAllStringSubmatch(q.Expr, -1) {
				if !strings.Contains(m[2], jobMatcher) {
					t.Errorf("panel %q: query %q selects %s without %s", p.Title, q.Expr, m[1], jobMatcher)
				}
			}
			// A table of a range query shows one series at a time in
			// Grafana; an instant query in table format gives one row per
			// series.
			if p.Type == "table" && (!q.Instant || q.Range == nil || *q.Range || q.Format != "table") {
				t.Errorf("panel %q: a table's query must be instant (instant: true, range: false) in table format", p.Title)
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
