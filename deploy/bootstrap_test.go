package deploy

import (
	"path/filepath"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestBootstrapPodsAreRestrictedAndUseTheServersSecrets: the one-off pods
// that make the first administrator token decode strictly, meet the
// restricted profile, mount the server's key-encryption key read-only and
// reach the same store as the server (the StatefulSet's volume of replica 0,
// or etcd with the replicas' client certificate).
func TestBootstrapPodsAreRestrictedAndUseTheServersSecrets(t *testing.T) {
	for file, store := range map[string]string{"pod-bolt.yaml": "data", "pod-etcd.yaml": "etcd"} {
		t.Run(file, func(t *testing.T) {
			pod := only[*corev1.Pod](t, mustDecodeFile(t, filepath.Join("bootstrap", file)))
			if pod.Namespace != "flinkpki" || pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
				t.Errorf("namespace %q, restartPolicy %q: want flinkpki, Never", pod.Namespace, pod.Spec.RestartPolicy)
			}
			if a := pod.Spec.AutomountServiceAccountToken; a == nil || *a {
				t.Error("the bootstrap pod must not mount API credentials")
			}
			if len(pod.Spec.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
			}
			c := &pod.Spec.Containers[0]
			checkRestricted(t, &pod.Spec, c, true)
			if !slices.Equal(c.Args[:2], []string{"admin", "bootstrap"}) || !slices.Contains(c.Args, "--kek-file=/etc/flinkpki/kek/kek") {
				t.Errorf("args %v: want admin bootstrap with the server's --kek-file", c.Args)
			}
			vols := map[string]corev1.Volume{}
			for _, v := range pod.Spec.Volumes {
				vols[v.Name] = v
			}
			if k := vols["kek"].Secret; k == nil || k.SecretName != "flinkpki-kek" {
				t.Errorf("kek volume = %+v, want the Secret flinkpki-kek", vols["kek"].VolumeSource)
			}
			switch store {
			case "data":
				// A StatefulSet names replica 0's claim <template>-<set>-0.
				if p := vols["data"].PersistentVolumeClaim; p == nil || p.ClaimName != "data-flinkpki-0" {
					t.Errorf("data volume = %+v, want the claim data-flinkpki-0", vols["data"].VolumeSource)
				}
			case "etcd":
				if s := vols["etcd"].Secret; s == nil || s.SecretName != "flinkpki-etcd" {
					t.Errorf("etcd volume = %+v, want the Secret flinkpki-etcd", vols["etcd"].VolumeSource)
				}
			}
			for _, m := range c.VolumeMounts {
				if m.Name != "data" && !m.ReadOnly {
					t.Errorf("mount %s is writable", m.Name)
				}
			}
		})
	}
}
