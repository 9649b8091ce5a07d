package deploy

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/flinkpki/flinkpki/flinkconf"
)

// TestTheOperatorRESTOverlayOpensRESTToTheOperatorAlone: the operator-rest
// overlay changes the standalone example in two places only (REST on the
// pod network, the operator's startup probe back on), and its
// NetworkPolicy selects the JobManager pods by the labels the operator
// gives them (StandaloneKubernetesUtils.getJobManagerSelectors: type, app,
// component), admits REST (8081) from the operator's pods in the
// operator's namespace alone (one peer with both selectors: two peers
// would admit either), RPC and blob from this cluster's TaskManagers, and
// the mutual-TLS sidecar from anyone. flink lint reports REST beyond
// loopback (FP002) and nothing else: the README says to --ignore it there.
func TestTheOperatorRESTOverlayOpensRESTToTheOperatorAlone(t *testing.T) {
	base := only[flinkDeployment](t, rendered(t, "examples/standalone"))
	objs := rendered(t, "examples/operator-rest")
	fd := only[flinkDeployment](t, objs)

	args := func(fd flinkDeployment) []any {
		init := fd["spec"].(map[string]any)["podTemplate"].(map[string]any)["spec"].(map[string]any)["initContainers"].([]any)[0]
		return init.(map[string]any)["args"].([]any)
	}
	i := slices.Index(args(base), any("rest.bind-address=127.0.0.1"))
	if i < 0 || args(fd)[i] != "rest.bind-address=0.0.0.0" {
		t.Fatalf("the overlay's init container args: %v; want rest.bind-address=0.0.0.0 where the base has 127.0.0.1", args(fd))
	}
	const probe = "kubernetes.operator.jm-deployment.startup.probe.enabled"
	conf := fd["spec"].(map[string]any)["flinkConfiguration"].(map[string]any)
	if _, ok := conf[probe]; ok {
		t.Errorf("the overlay keeps %s: the operator's startup probe stays off", probe)
	}
	// Nothing else differs.
	undo := deepCopy(t, fd)
	args(undo)[i] = "rest.bind-address=127.0.0.1"
	undo["spec"].(map[string]any)["flinkConfiguration"].(map[string]any)[probe] = "false"
	if !reflect.DeepEqual(undo, deepCopy(t, base)) {
		t.Errorf("the overlay changes the FlinkDeployment beyond REST's address and the probe")
	}

	np := only[*networkingv1.NetworkPolicy](t, objs)
	jm := labels.Set{"type": "flink-standalone-kubernetes", "app": "orders", "component": "jobmanager"}
	sel := func(ls map[string]string) labels.Selector { return labels.SelectorFromSet(ls) }
	if !sel(np.Spec.PodSelector.MatchLabels).Matches(jm) || len(np.Spec.PodSelector.MatchExpressions) != 0 {
		t.Fatalf("the policy selects %v; want the orders JobManager pods", np.Spec.PodSelector)
	}
	if np.Namespace != "flink" || !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
		t.Errorf("policy in namespace %q with types %v; want flink, Ingress", np.Namespace, np.Spec.PolicyTypes)
	}
	operatorPod := labels.Set{"app.kubernetes.io/name": "flink-kubernetes-operator"}
	operatorNS := labels.Set{"kubernetes.io/metadata.name": "flink-operator"}
	tm := labels.Set{"type": "flink-standalone-kubernetes", "app": "orders", "component": "taskmanager"}
	otherTM := labels.Set{"type": "flink-standalone-kubernetes", "app": "billing", "component": "taskmanager"}
	// admits says whether a pod with podLabels in a namespace with nsLabels
	// ("" for the policy's own) reaches port.
	admits := func(port int32, podLabels, nsLabels labels.Set) bool {
		for _, rule := range np.Spec.Ingress {
			if !slices.ContainsFunc(rule.Ports, func(p networkingv1.NetworkPolicyPort) bool { return p.Port != nil && p.Port.IntVal == port }) {
				continue
			}
			if len(rule.From) == 0 {
				return true
			}
			for _, peer := range rule.From {
				if peer.IPBlock != nil {
					return true
				}
				nsOK := nsLabels == nil
				if peer.NamespaceSelector != nil {
					nsOK = nsLabels != nil && sel(peer.NamespaceSelector.MatchLabels).Matches(nsLabels)
				}
				podOK := peer.PodSelector == nil || sel(peer.PodSelector.MatchLabels).Matches(podLabels)
				if nsOK && podOK {
					return true
				}
			}
		}
		return false
	}
	for _, c := range []struct {
		what    string
		port    int32
		pod, ns labels.Set
		want    bool
	}{
		{"the operator to REST", 8081, operatorPod, operatorNS, true},
		{"another pod of the operator's namespace to REST", 8081, labels.Set{"app": "ci"}, operatorNS, false},
		{"an operator-labelled pod elsewhere to REST", 8081, operatorPod, labels.Set{"kubernetes.io/metadata.name": "tenant"}, false},
		{"a TaskManager to REST", 8081, tm, nil, false},
		{"a TaskManager to RPC", 6123, tm, nil, true},
		{"a TaskManager to the blob server", 6124, tm, nil, true},
		{"another cluster's TaskManager to RPC", 6123, otherTM, nil, false},
		{"anyone to the mutual-TLS sidecar", 8443, labels.Set{"app": "ci"}, labels.Set{"kubernetes.io/metadata.name": "ci"}, true},
	} {
		if got := admits(c.port, c.pod, c.ns); got != c.want {
			t.Errorf("%s (%d): admitted %v, want %v", c.what, c.port, got, c.want)
		}
	}

	doc, err := yaml.Marshal(map[string]any(fd))
	if err != nil {
		t.Fatal(err)
	}
	findings, err := flinkconf.Lint(doc, "operator-rest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	for _, f := range findings {
		rules = append(rules, f.Rule+" "+f.Severity)
	}
	if !slices.Equal(rules, []string{flinkconf.RuleRESTUnauthenticated + " error"}) {
		t.Errorf("flink lint of the overlay's FlinkDeployment: %v; want FP002 alone (the README's --ignore FP002)", findings)
	}
}

func deepCopy(t *testing.T, fd flinkDeployment) flinkDeployment {
	t.Helper()
	j, err := json.Marshal(fd)
	if err != nil {
		t.Fatal(err)
	}
	var out flinkDeployment
	if err := json.Unmarshal(j, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
