package deploy

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
)

// haObjects renders the base with the HA component, as an operator's
// overlay does.
func haObjects(t testing.TB) []object {
	t.Helper()
	return rendered(t, overlay(t, []string{"kubernetes"}, []string{"kubernetes/ha"}))
}

func haDeployment(t testing.TB, objs []object) (*appsv1.Deployment, *corev1.Container) {
	t.Helper()
	d := only[*appsv1.Deployment](t, objs)
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(d.Spec.Template.Spec.Containers))
	}
	return d, &d.Spec.Template.Spec.Containers[0]
}

func TestHAReplacesTheStatefulSetWithADeploymentAndABudget(t *testing.T) {
	var kinds []string
	for _, o := range haObjects(t) {
		kinds = append(kinds, o.Kind)
		if o.Kind != "Namespace" && !strings.Contains(o.Name, "flinkpki") {
			t.Errorf("%s %q is not a flinkpki object", o.Kind, o.Name)
		}
	}
	slices.Sort(kinds)
	want := []string{"ConfigMap", "Deployment", "Namespace", "NetworkPolicy", "NetworkPolicy", "PodDisruptionBudget", "Service", "ServiceAccount"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("rendered kinds = %v, want %v (no StatefulSet: its bbolt volume allows one writer)", kinds, want)
	}
}

func TestHARunsThreeReplicasOnSeparateNodesWithABudgetOfTwo(t *testing.T) {
	objs := haObjects(t)
	d, _ := haDeployment(t, objs)
	if d.Namespace != "flinkpki" {
		t.Errorf("Deployment namespace = %q, want flinkpki", d.Namespace)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Errorf("replicas = %v, want 3", d.Spec.Replicas)
	}
	labels := d.Spec.Template.Labels
	aff := d.Spec.Template.Spec.Affinity
	if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Fatalf("the pods have no required anti-affinity: %+v", aff)
	}
	term := aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0]
	if term.TopologyKey != "kubernetes.io/hostname" || term.LabelSelector == nil ||
		term.LabelSelector.MatchLabels["app.kubernetes.io/name"] != labels["app.kubernetes.io/name"] {
		t.Errorf("anti-affinity term %+v does not keep flinkpki pods on separate nodes", term)
	}
	pdb := only[*policyv1.PodDisruptionBudget](t, objs)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 2 {
		t.Errorf("PodDisruptionBudget minAvailable = %v, want 2", pdb.Spec.MinAvailable)
	}
	if pdb.Spec.Selector == nil || pdb.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != labels["app.kubernetes.io/name"] {
		t.Errorf("PodDisruptionBudget selector %+v does not select the pods %v", pdb.Spec.Selector, labels)
	}
	if u := d.Spec.Strategy.RollingUpdate; u == nil || u.MaxUnavailable == nil || u.MaxUnavailable.IntValue() != 1 || u.MaxSurge == nil || u.MaxSurge.IntValue() != 0 {
		t.Errorf("rolling update %+v: want one replica down at a time and no surge (anti-affinity leaves a surge pod no node)", u)
	}
}

// volumeOf returns the pod volume mounted at path.
func volumeOf(t testing.TB, pod *corev1.PodSpec, c *corev1.Container, path string) *corev1.Volume {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.MountPath != path {
			continue
		}
		for i := range pod.Volumes {
			if pod.Volumes[i].Name == m.Name {
				return &pod.Volumes[i]
			}
		}
	}
	t.Fatalf("nothing is mounted at %s", path)
	return nil
}

func TestHAReachesEtcdWithSettingsAndClientTLSFromASecret(t *testing.T) {
	objs := haObjects(t)
	d, c := haDeployment(t, objs)
	pod := &d.Spec.Template.Spec
	checkRestricted(t, pod, c, true)
	for _, arg := range []string{
		"--store=etcd",
		"--etcd-endpoints=$(FLINKPKI_ETCD_ENDPOINTS)",
		"--etcd-prefix=$(FLINKPKI_ETCD_PREFIX)",
		"--etcd-ca-file=/etc/flinkpki/etcd/ca.crt",
		"--etcd-cert-file=/etc/flinkpki/etcd/tls.crt",
		"--etcd-key-file=/etc/flinkpki/etcd/tls.key",
	} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("args %v lack %s", c.Args, arg)
		}
	}
	envFrom := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			envFrom[e.Name] = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		}
	}
	if envFrom["FLINKPKI_ETCD_ENDPOINTS"] != "flinkpki-etcd/endpoints" || envFrom["FLINKPKI_ETCD_PREFIX"] != "flinkpki-etcd/prefix" {
		t.Errorf("the etcd endpoints and prefix do not come from the Secret flinkpki-etcd: %v", envFrom)
	}
	etcd := volumeOf(t, pod, c, "/etc/flinkpki/etcd")
	if etcd.Secret == nil || etcd.Secret.SecretName != "flinkpki-etcd" || etcd.Secret.DefaultMode == nil || *etcd.Secret.DefaultMode != 0o400 {
		t.Fatalf("/etc/flinkpki/etcd is not the Secret flinkpki-etcd with mode 0400: %+v", etcd.VolumeSource)
	}
	var keys []string
	for _, it := range etcd.Secret.Items {
		keys = append(keys, it.Key+"="+it.Path)
	}
	if want := []string{"ca.crt=ca.crt", "tls.crt=tls.crt", "tls.key=tls.key"}; !slices.Equal(keys, want) {
		t.Errorf("etcd Secret items = %v, want %v", keys, want)
	}
	if kek := volumeOf(t, pod, c, "/etc/flinkpki/kek"); kek.Secret == nil || kek.Secret.SecretName != "flinkpki-kek" {
		t.Errorf("the replicas do not share the key-encryption key Secret flinkpki-kek: %+v", kek.VolumeSource)
	}
	if data := volumeOf(t, pod, c, "/var/lib/flinkpki"); data.EmptyDir == nil {
		t.Errorf("the data directory is %+v, want an emptyDir: the store is etcd", data.VolumeSource)
	}
	jwks := volumeOf(t, pod, c, "/etc/flinkpki/jwks")
	cm := only[*corev1.ConfigMap](t, objs)
	if jwks.ConfigMap == nil || jwks.ConfigMap.Name != cm.Name {
		t.Errorf("the JWKS volume names %+v, but the generated ConfigMap is %q", jwks.VolumeSource, cm.Name)
	}
	// The base's arguments carry over: same listeners, KEK, names, issuer.
	_, base := serverStatefulSet(t, rendered(t, "kubernetes"))
	for _, arg := range base.Args {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("the HA args lack the base's %s", arg)
		}
	}
}

func TestHAProbesTakeAReplicaWithoutEtcdOutOfServiceButDoNotRestartIt(t *testing.T) {
	_, c := haDeployment(t, haObjects(t))
	if c.ReadinessProbe == nil || c.ReadinessProbe.GRPC == nil || c.ReadinessProbe.GRPC.Port != healthPort {
		t.Errorf("readiness probe %+v: want gRPC health on %d, which turns NOT_SERVING without etcd", c.ReadinessProbe, healthPort)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.GRPC != nil || c.LivenessProbe.TCPSocket == nil {
		t.Errorf("liveness probe %+v: want a TCP check, so an etcd outage does not restart every replica", c.LivenessProbe)
	}
}

func TestHAOpensEgressToEtcdAndDNSOnly(t *testing.T) {
	var np *networkingv1.NetworkPolicy
	for _, o := range haObjects(t) {
		if p, ok := o.Value.(*networkingv1.NetworkPolicy); ok && p.Name == "flinkpki-etcd-egress" {
			np = p
		}
	}
	if np == nil {
		t.Fatal("no NetworkPolicy flinkpki-etcd-egress")
	}
	var ports []string
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			ports = append(ports, p.Port.String()+"/"+string(*p.Protocol))
		}
	}
	slices.Sort(ports)
	if want := []string{"2379/TCP", "53/TCP", "53/UDP"}; !slices.Equal(ports, want) {
		t.Errorf("egress ports = %v, want %v", ports, want)
	}
	if len(np.Spec.Ingress) > 0 || slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		t.Errorf("the etcd egress policy also governs ingress: %+v", np.Spec)
	}
}

// TestTokenReviewCombinesWithHA renders both components, ha first as the
// tokenreview component's comment says: the HA Deployment, not the deleted
// StatefulSet, must carry the TokenReview settings, and the API-server
// egress policy must select its pods.
// TestTokenReviewBeforeHAFailsTheBuild: components apply in order, and
// tokenreview listed before ha would patch the StatefulSet that ha then
// drops: the rendered Deployment would lack --k8s-tokenreview while the
// ClusterRole and the egress stay. The ha component's guard fails the build.
func TestTokenReviewBeforeHAFailsTheBuild(t *testing.T) {
	out, err := runKustomize(t, overlay(t, []string{"kubernetes"}, []string{"kubernetes/tokenreview", "kubernetes/ha"}))
	if err == nil {
		t.Fatalf("tokenreview listed before ha rendered without an error:\n%.2000s", out)
	}
	if !strings.Contains(err.Error(), "automountServiceAccountToken") || !strings.Contains(err.Error(), "kubernetes/ha") {
		t.Errorf("the error does not point at the ha component's guard: %v", err)
	}
}

func TestTokenReviewCombinesWithHA(t *testing.T) {
	objs := rendered(t, overlay(t, []string{"kubernetes"}, []string{"kubernetes/ha", "kubernetes/tokenreview"}))
	for _, o := range objs {
		if o.Kind == "StatefulSet" {
			t.Fatal("the StatefulSet survived the ha component")
		}
	}
	d, c := haDeployment(t, objs)
	if a := d.Spec.Template.Spec.AutomountServiceAccountToken; a == nil || !*a {
		t.Error("with TokenReview the HA replicas need their own token mounted")
	}
	if !slices.Contains(c.Args, "--k8s-tokenreview") {
		t.Errorf("args %v lack --k8s-tokenreview", c.Args)
	}
	found := false
	for _, o := range objs {
		np, ok := o.Value.(*networkingv1.NetworkPolicy)
		if !ok || np.Name != "flinkpki-apiserver-egress" {
			continue
		}
		found = true
		for k, v := range np.Spec.PodSelector.MatchLabels {
			if d.Spec.Template.Labels[k] != v {
				t.Errorf("the API-server egress policy selects %s=%s, which the HA pods lack", k, v)
			}
		}
	}
	if !found {
		t.Error("no API-server egress policy")
	}
}
