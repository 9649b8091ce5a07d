package flinkconf

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// TestTaskManagersOnTheJobManagersAccountAreWarnedOf: FP022 on the
// standalone example, whose TaskManagers run as an account of their own:
// none as it is; a warning when they share the JobManager's (the key
// removed, or naming the same account); none when they enroll with an
// enrollment token from a Secret instead of a service-account token,
// since the binding's roles are then not theirs.
func TestTaskManagersOnTheJobManagersAccountAreWarnedOf(t *testing.T) {
	data, err := os.ReadFile("../deploy/examples/standalone/flinkdeployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	example := string(data)
	const key = "    " + TaskManagerServiceAccountKey + ": orders-flink-tm\n"
	const projected = "          projected:\n            sources:\n              - serviceAccountToken:\n                  audience: flinkpki\n                  expirationSeconds: 600\n                  path: token\n"
	if !strings.Contains(example, key) || !strings.Contains(example, projected) {
		t.Fatal("the standalone example no longer has the key or the token volume this test edits")
	}
	unset := strings.Replace(example, key, "", 1)
	for _, tt := range []struct {
		what, manifest string
		warned         bool
	}{
		{"an account of their own", example, false},
		{"no account of their own", unset, true},
		{"the JobManager's account named again", strings.Replace(example, key, "    "+TaskManagerServiceAccountKey+": orders-flink\n", 1), true},
		{"an enrollment token from a Secret", strings.Replace(unset, projected, "          secret:\n            secretName: orders-enrollment-token\n", 1), false},
		{"the JobManager moved to the TaskManagers' account", strings.Replace(example, key, key+"    "+JobManagerServiceAccountKey+": orders-flink-tm\n", 1), true},
		{"the JobManager on an account of its own, the TaskManagers on spec.serviceAccount", strings.Replace(example, key, "    "+JobManagerServiceAccountKey+": orders-flink-jm\n", 1), false},
		{"spec.serviceAccount empty, kubernetes.service-account shared", strings.Replace(strings.Replace(unset, "  serviceAccount: orders-flink\n", "", 1), "    taskmanager.numberOfTaskSlots:", "    "+ServiceAccountKey+": orders-flink\n    taskmanager.numberOfTaskSlots:", 1), true},
	} {
		if tt.manifest == unset && tt.what != "no account of their own" || tt.manifest == example && tt.what != "an account of their own" {
			t.Fatalf("%s: the edit did not apply to the example", tt.what)
		}
		findings, err := Lint([]byte(tt.manifest), "d.yaml")
		if err != nil {
			t.Fatalf("%s: %v", tt.what, err)
		}
		warned := slices.ContainsFunc(findings, func(f Finding) bool { return f.Rule == RuleTaskManagerAccount && f.Severity == SeverityWarning })
		if warned != tt.warned {
			t.Errorf("TaskManagers with %s: FP022 warned %v, want %v: %v", tt.what, warned, tt.warned, findings)
		}
	}
}
