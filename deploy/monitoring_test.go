package deploy

import (
	"regexp"
	"slices"
	"testing"
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
		"FlinkpkiCAExpiringSoon":    {[]string{"flinkpki_ca_expiry_timestamp_seconds"}, `flinkpki_ca_expiry_timestamp_seconds - time() < 30 * 86400`, ""},
		"FlinkpkiLeafExpiringSoon":  {[]string{"flinkpki_live_leaf_earliest_expiry_timestamp_seconds"}, `flinkpki_live_leaf_earliest_expiry_timestamp_seconds - time() < 7 * 86400`, ""},
		"FlinkpkiRotationBlocked":   {[]string{"flinkpki_rotation_blocked"}, `flinkpki_rotation_blocked > 0`, "1d"},
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
