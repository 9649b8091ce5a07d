package deploy

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// rulesTestFile holds promtool's unit tests of the PrometheusRule.
const rulesTestFile = "monitoring/rules_test.yaml"

// promtoolPath returns .tools/bin/promtool, which make tools installs (make
// test runs it first), else a promtool on PATH. Without either it fails the
// test, saying how to install it: these tests never skip.
func promtoolPath(t testing.TB) string {
	t.Helper()
	local, err := filepath.Abs(filepath.Join("..", ".tools", "bin", "promtool"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(local); err == nil {
		return local
	}
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	t.Fatalf("promtool is needed to test the alert rules: run make tools (it installs promtool into .tools/bin; about 5 minutes to build the first time)")
	return ""
}

// promtoolRulesTest is the part of promtool's unit-test file format that
// rulesTestFile uses, decoded strictly.
type promtoolRulesTest struct {
	RuleFiles          []string `json:"rule_files"`
	EvaluationInterval string   `json:"evaluation_interval"`
	Tests              []struct {
		Interval    string `json:"interval"`
		InputSeries []struct {
			Series string `json:"series"`
			Values string `json:"values"`
		} `json:"input_series"`
		AlertRuleTest []struct {
			EvalTime  string `json:"eval_time"`
			AlertName string `json:"alertname"`
			ExpAlerts []struct {
				ExpLabels map[string]string `json:"exp_labels"`
			} `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// The PrometheusRule passes promtool check rules (PromQL and annotation
// templates) and promtool's unit tests, in which every alert, at each of
// its severities, fires in one case and stays quiet in another.
func TestPrometheusRulesPassPromtool(t *testing.T) {
	promtool := promtoolPath(t)
	rule := only[*prometheusRule](t, mustDecodeFile(t, "kubernetes/monitoring/prometheusrule.yaml"))
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	// The spec of a PrometheusRule is a Prometheus rule file; JSON is YAML.
	spec, err := json.Marshal(rule.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "full.rules.yaml"), spec, 0o644); err != nil {
		t.Fatal(err)
	}
	out := run("check", "rules", "full.rules.yaml")
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool check rules:\n%s", out)
	}

	// The unit tests compare labels only: promtool would compare every
	// annotation too, which check rules has validated.
	alerts := map[string][]string{} // alert -> its severities
	for g := range rule.Spec.Groups {
		for r := range rule.Spec.Groups[g].Rules {
			rl := &rule.Spec.Groups[g].Rules[r]
			alerts[rl.Alert] = append(alerts[rl.Alert], rl.Labels["severity"])
			rl.Annotations = nil
		}
	}
	if spec, err = json.Marshal(rule.Spec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "flinkpki.rules.yaml"), spec, 0o644); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules_test.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := run("test", "rules", "rules_test.yaml"); !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules:\n%s", out)
	}

	var rt promtoolRulesTest
	if err := yaml.UnmarshalStrict(tests, &rt); err != nil {
		t.Fatalf("%s: %v", rulesTestFile, err)
	}
	if !slices.Equal(rt.RuleFiles, []string{"flinkpki.rules.yaml"}) {
		t.Errorf("%s: rule_files = %v, want [flinkpki.rules.yaml] (the file this test writes)", rulesTestFile, rt.RuleFiles)
	}
	fires := map[string]bool{} // alert/severity
	quiet := map[string]bool{} // alert
	for _, tc := range rt.Tests {
		for _, a := range tc.AlertRuleTest {
			if _, ok := alerts[a.AlertName]; !ok {
				t.Errorf("%s tests %s, which the PrometheusRule lacks", rulesTestFile, a.AlertName)
			}
			if len(a.ExpAlerts) == 0 {
				quiet[a.AlertName] = true
			}
			for _, e := range a.ExpAlerts {
				fires[a.AlertName+"/"+e.ExpLabels["severity"]] = true
			}
		}
	}
	for name, severities := range alerts {
		if !quiet[name] {
			t.Errorf("%s has no case where %s stays quiet", rulesTestFile, name)
		}
		for _, s := range severities {
			if !fires[name+"/"+s] {
				t.Errorf("%s has no case where %s fires with severity %s", rulesTestFile, name, s)
			}
		}
	}
}
