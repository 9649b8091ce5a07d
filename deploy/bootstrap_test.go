package deploy

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestBootstrapPodsAreRestrictedAndUseTheServersSecrets: the one-off pods
// that make the first administrator token (and take a step of the serving
// CA's replacement) decode strictly, meet the
// restricted profile, mount the server's key-encryption key read-only and
// reach the same store as the server (the StatefulSet's volume of replica 0,
// or etcd with the replicas' client certificate).
func TestBootstrapPodsAreRestrictedAndUseTheServersSecrets(t *testing.T) {
	for file, store := range map[string]string{"pod-bolt.yaml": "data", "pod-etcd.yaml": "etcd", "pod-serving-ca.yaml": "data", "pod-serving-ca-etcd.yaml": "etcd"} {
		t.Run(file, func(t *testing.T) {
			c, vols := oneOffPod(t, file)
			command := []string{"admin", "bootstrap"}
			if strings.Contains(file, "serving-ca") {
				// The step comes from STEP, status unless changed.
				command = []string{"admin", "serving-ca", "$(STEP)"}
				if i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "STEP" }); i < 0 || c.Env[i].Value != "status" {
					t.Errorf("env %v: want STEP, status by default", c.Env)
				}
			}
			if !slices.Equal(c.Args[:len(command)], command) || !slices.Contains(c.Args, "--kek-file=/etc/flinkpki/kek/kek") {
				t.Errorf("args %v: want %v with the server's --kek-file", c.Args, command)
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

// TestTheRestorePodReadsTheBackupOnStdinIntoTheServersVolume: the image
// has no shell and no tar (no kubectl cp), so the restore pod reads the
// backup on its standard input (kubectl attach), checks it in a writable
// /tmp, and writes the StatefulSet's volume of replica 0; it needs no KEK
// and mounts no credentials.
func TestTheRestorePodReadsTheBackupOnStdinIntoTheServersVolume(t *testing.T) {
	c, vols := oneOffPod(t, "pod-restore.yaml")
	if !slices.Equal(c.Args, []string{"admin", "restore", "-", "--data-dir=/var/lib/flinkpki"}) || !c.Stdin || !c.StdinOnce {
		t.Errorf("args %v, stdin %v/%v: want admin restore - into the data volume, on a stdin closed after one attach", c.Args, c.Stdin, c.StdinOnce)
	}
	if p := vols["data"].PersistentVolumeClaim; p == nil || p.ClaimName != "data-flinkpki-0" {
		t.Errorf("data volume = %+v, want the claim data-flinkpki-0", vols["data"].VolumeSource)
	}
	if vols["tmp"].EmptyDir == nil {
		t.Error("no emptyDir for /tmp: the root file system is read-only and the backup is checked there first")
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	if mounts["data"] != "/var/lib/flinkpki" || mounts["tmp"] != "/tmp" || len(mounts) != 2 {
		t.Errorf("mounts %v: want the data volume and /tmp only", mounts)
	}
}

// oneOffPod decodes deploy/bootstrap/file strictly and checks what every
// one-off pod on the server's store must be: in the flinkpki namespace,
// run once, without API credentials, one container meeting the restricted
// profile. It returns that container and the pod's volumes by name.
func oneOffPod(t *testing.T, file string) (*corev1.Container, map[string]corev1.Volume) {
	t.Helper()
	pod := only[*corev1.Pod](t, mustDecodeFile(t, filepath.Join("bootstrap", file)))
	if pod.Namespace != "flinkpki" || pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("namespace %q, restartPolicy %q: want flinkpki, Never", pod.Namespace, pod.Spec.RestartPolicy)
	}
	if a := pod.Spec.AutomountServiceAccountToken; a == nil || *a {
		t.Error("a one-off pod must not mount API credentials")
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := &pod.Spec.Containers[0]
	checkRestricted(t, &pod.Spec, c, true)
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		vols[v.Name] = v
	}
	return c, vols
}
