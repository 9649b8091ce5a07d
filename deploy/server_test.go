package deploy

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/flinkpki/flinkpki/flinkconf"
)

// healthPort is the plaintext port that serves grpc.health.v1 only, for
// kubelet's native gRPC probes (which cannot speak TLS).
const healthPort = 7444

func serverStatefulSet(t testing.TB, objs []object) (*appsv1.StatefulSet, *corev1.Container) {
	t.Helper()
	sts := only[*appsv1.StatefulSet](t, objs)
	if len(sts.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(sts.Spec.Template.Spec.Containers))
	}
	return sts, &sts.Spec.Template.Spec.Containers[0]
}

// checkRestricted asserts the restricted Pod Security Standard's container
// rules plus a read-only root file system.
func checkRestricted(t testing.TB, pod *corev1.PodSpec, c *corev1.Container, wantReadOnlyRoot bool) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Errorf("container %s: no securityContext", c.Name)
		return
	}
	nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) ||
		(pod.SecurityContext != nil && pod.SecurityContext.RunAsNonRoot != nil && *pod.SecurityContext.RunAsNonRoot)
	if !nonRoot {
		t.Errorf("container %s: runAsNonRoot is not set", c.Name)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("container %s: allowPrivilegeEscalation must be false", c.Name)
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("container %s: capabilities must drop ALL and add none, got %+v", c.Name, sc.Capabilities)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && pod.SecurityContext != nil {
		seccomp = pod.SecurityContext.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container %s: seccompProfile must be RuntimeDefault, got %+v", c.Name, seccomp)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("container %s: privileged", c.Name)
	}
	if wantReadOnlyRoot && (sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem) {
		t.Errorf("container %s: readOnlyRootFilesystem must be true", c.Name)
	}
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
		t.Errorf("container %s: memory limit and memory and cpu requests must be set, got %+v", c.Name, c.Resources)
	}
}

func TestServerPodIsRestricted(t *testing.T) {
	sts, c := serverStatefulSet(t, rendered(t, "kubernetes"))
	pod := &sts.Spec.Template.Spec
	checkRestricted(t, pod, c, true)
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsUser == nil || *pod.SecurityContext.RunAsUser != 65532 {
		t.Errorf("pod must run as user 65532 (distroless nonroot), got %+v", pod.SecurityContext)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the server mounts a service-account token although offline JWKS verification needs none")
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Error("the server shares a host namespace")
	}
	// A burst of 2,000 new connections at once (a large cluster starting)
	// takes 110 to 125 MiB of anonymous memory: 128Mi would kill the server
	// when it is needed most.
	if got := c.Resources.Limits.Memory(); got.Cmp(resource.MustParse("256Mi")) != 0 {
		t.Errorf("memory limit = %v, want 256Mi", got)
	}
	if *sts.Spec.Replicas != 1 {
		t.Errorf("replicas = %d, want 1 (bbolt has one writer)", *sts.Spec.Replicas)
	}
}

func TestServerProbesUseTheNativeGRPCHealthPort(t *testing.T) {
	_, c := serverStatefulSet(t, rendered(t, "kubernetes"))
	probes := map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe}
	for name, p := range probes {
		if p == nil || p.GRPC == nil {
			t.Errorf("%s probe is not a native gRPC probe: %+v", name, p)
			continue
		}
		if p.GRPC.Port != healthPort {
			t.Errorf("%s probe hits port %d, want the plaintext health port %d", name, p.GRPC.Port, healthPort)
		}
	}
	if !slices.Contains(c.Args, "--health-listen=0.0.0.0:7444") {
		t.Errorf("args %v lack --health-listen for the probe port", c.Args)
	}
}

// expandArgs expands $(NAME) in a container's args as the kubelet does
// (flinkconf.ExpandVars): from the container's env, where a downward-API
// field reference to metadata.namespace reads namespace and any other
// reference reads "<from NAME>".
func expandArgs(c *corev1.Container, namespace string) []string {
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env[e.Name] = namespace
		default:
			env[e.Name] = "<from " + e.Name + ">"
		}
	}
	var out []string
	for _, a := range c.Args {
		out = append(out, flinkconf.ExpandVars(a, func(name string) (string, bool) {
			v, ok := env[name]
			return v, ok
		}))
	}
	return out
}

// inNamespace writes an overlay that puts the given resources and
// components into namespace, and returns its directory.
func inNamespace(t testing.TB, namespace string, resources, components []string) string {
	t.Helper()
	dir := overlay(t, resources, components)
	path := filepath.Join(dir, "kustomization.yaml")
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read overlay: %v", err)
	}
	if err := os.WriteFile(path, append(text, "namespace: "+namespace+"\n"...), 0o644); err != nil {
		t.Fatalf("write overlay: %v", err)
	}
	return dir
}

// The serving certificate must name the Service that init containers dial,
// in whatever namespace an overlay puts the server, without a patch: the
// kubelet's expansion of the --san arguments must give the Service's DNS
// names, and nothing else.
func TestServerSANsNameTheServiceInTheNamespaceItRunsIn(t *testing.T) {
	cases := []struct {
		name string
		dir  func(t *testing.T) string
		want string // the namespace the server runs in
	}{
		{"base", func(*testing.T) string { return "kubernetes" }, "flinkpki"},
		{"overlay", func(t *testing.T) string { return inNamespace(t, "data-platform", []string{"kubernetes"}, nil) }, "data-platform"},
		{"HA overlay", func(t *testing.T) string {
			return inNamespace(t, "data-platform", []string{"kubernetes"}, []string{"kubernetes/ha"})
		}, "data-platform"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			objs := rendered(t, tc.dir(t))
			svc := only[*corev1.Service](t, objs)
			var pod corev1.PodTemplateSpec
			var podNamespace string
			if tc.name == "HA overlay" {
				d := only[*appsv1.Deployment](t, objs)
				pod, podNamespace = d.Spec.Template, d.Namespace
			} else {
				sts := only[*appsv1.StatefulSet](t, objs)
				pod, podNamespace = sts.Spec.Template, sts.Namespace
			}
			if svc.Namespace != tc.want || podNamespace != tc.want {
				t.Fatalf("Service in %q, server in %q, want both in %q", svc.Namespace, podNamespace, tc.want)
			}
			var sans []string
			for _, a := range expandArgs(&pod.Spec.Containers[0], podNamespace) {
				if san, ok := strings.CutPrefix(a, "--san="); ok {
					sans = append(sans, san)
				}
			}
			want := []string{svc.Name + "." + svc.Namespace + ".svc", svc.Name + "." + svc.Namespace + ".svc.cluster.local"}
			if !slices.Equal(sans, want) {
				t.Errorf("the server's expanded --san arguments are %v, want the Service's names %v", sans, want)
			}
		})
	}
}

func TestServerArgsFollowTheContract(t *testing.T) {
	sts, c := serverStatefulSet(t, rendered(t, "kubernetes"))
	want := []string{
		"serve",
		"--data-dir=/var/lib/flinkpki",
		"--listen=0.0.0.0:7443",
		"--metrics-listen=0.0.0.0:9090",
		"--kek-file=/etc/flinkpki/kek/kek",
		"--k8s-issuer=https://kubernetes.default.svc.cluster.local",
		"--k8s-jwks-file=/etc/flinkpki/jwks/jwks.json",
	}
	for _, a := range want {
		if !slices.Contains(c.Args, a) {
			t.Errorf("args %v lack %q", c.Args, a)
		}
	}
	if slices.Contains(c.Args, "--dev") {
		t.Error("the production manifest runs the server with --dev")
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	if mounts["data"].MountPath != "/var/lib/flinkpki" || len(sts.Spec.VolumeClaimTemplates) != 1 || sts.Spec.VolumeClaimTemplates[0].Name != "data" {
		t.Error("the data dir is not on the volumeClaimTemplate data")
	}
	for _, v := range sts.Spec.Template.Spec.Volumes {
		switch v.Name {
		case "kek":
			if v.Secret == nil || v.Secret.SecretName != "flinkpki-kek" || v.Secret.DefaultMode == nil || *v.Secret.DefaultMode != 0o400 {
				t.Errorf("kek volume must be the Secret flinkpki-kek with mode 0400, got %+v", v.VolumeSource)
			}
			if m := mounts["kek"]; m.MountPath != "/etc/flinkpki/kek" || !m.ReadOnly {
				t.Errorf("kek mount = %+v, want read-only at /etc/flinkpki/kek", m)
			}
		case "jwks":
			if v.ConfigMap == nil || !strings.HasPrefix(v.ConfigMap.Name, "flinkpki-k8s-jwks-") {
				t.Errorf("jwks volume must be the generated ConfigMap flinkpki-k8s-jwks-<hash>, got %+v", v.VolumeSource)
			}
		}
	}
}

func TestServiceExposesGRPCAndMetricsButNotHealth(t *testing.T) {
	svc := only[*corev1.Service](t, rendered(t, "kubernetes"))
	var ports []int32
	for _, p := range svc.Spec.Ports {
		ports = append(ports, p.Port)
	}
	if !slices.Equal(ports, []int32{7443, 9090}) {
		t.Fatalf("service ports = %v, want [7443 9090]", ports)
	}
}

func TestNetworkPolicyAdmitsOnlyLabelledNamespaces(t *testing.T) {
	np := only[*networkingv1.NetworkPolicy](t, rendered(t, "kubernetes"))
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) || len(np.Spec.Egress) != 0 {
		t.Errorf("egress must be denied (policyTypes include Egress, no egress rules), got %v %v", np.Spec.PolicyTypes, np.Spec.Egress)
	}
	want := map[int]map[string]string{
		7443: {"flinkpki.io/enrollment": "enabled"},
		9090: {"flinkpki.io/monitoring": "enabled"},
	}
	if len(np.Spec.Ingress) != len(want) {
		t.Fatalf("want %d ingress rules, got %d", len(want), len(np.Spec.Ingress))
	}
	for _, rule := range np.Spec.Ingress {
		if len(rule.Ports) != 1 || len(rule.From) != 1 {
			t.Fatalf("each ingress rule must name one port and one peer, got %+v", rule)
		}
		port := rule.Ports[0].Port.IntValue()
		peer := rule.From[0]
		if peer.NamespaceSelector == nil || peer.PodSelector != nil || peer.IPBlock != nil {
			t.Errorf("port %d: peer must be a namespace selector only, got %+v", port, peer)
			continue
		}
		if !equalLabels(peer.NamespaceSelector.MatchLabels, want[port]) || len(peer.NamespaceSelector.MatchExpressions) > 0 {
			t.Errorf("port %d: namespace selector = %+v, want %v", port, peer.NamespaceSelector, want[port])
		}
	}
}

func equalLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestTokenReviewComponentGrantsOnlyTokenReviews: the server's service
// account may create TokenReviews and nothing else (system:auth-delegator
// would add SubjectAccessReviews).
func TestTokenReviewComponentGrantsOnlyTokenReviews(t *testing.T) {
	objs := rendered(t, overlay(t, []string{"kubernetes"}, []string{"kubernetes/tokenreview"}))
	crb := only[*rbacv1.ClusterRoleBinding](t, objs)
	role := only[*rbacv1.ClusterRole](t, objs)
	if crb.RoleRef.Kind != "ClusterRole" || crb.RoleRef.Name != role.Name {
		t.Errorf("roleRef = %+v, want the component's ClusterRole %s", crb.RoleRef, role.Name)
	}
	want := []rbacv1.PolicyRule{{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}}}
	if !reflect.DeepEqual(role.Rules, want) {
		t.Errorf("rules = %+v, want %+v", role.Rules, want)
	}
	if len(crb.Subjects) != 1 || crb.Subjects[0].Name != "flinkpki" || crb.Subjects[0].Namespace != "flinkpki" {
		t.Errorf("subjects = %+v, want only the flinkpki service account", crb.Subjects)
	}
	sts, c := serverStatefulSet(t, objs)
	if a := sts.Spec.Template.Spec.AutomountServiceAccountToken; a == nil || !*a {
		t.Error("with TokenReview the server needs its own token mounted")
	}
	if !slices.Contains(c.Args, "--k8s-tokenreview") {
		t.Errorf("args %v lack --k8s-tokenreview", c.Args)
	}
}
