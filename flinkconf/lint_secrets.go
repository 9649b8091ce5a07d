package flinkconf

import (
	"fmt"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// storeKeys name the stores Flink reads: the internal and REST keystores
// and truststores, and the shared keys both fall back to.
var storeKeys = []string{
	"security.ssl.internal.keystore", "security.ssl.rest.keystore", "security.ssl.keystore",
	"security.ssl.internal.truststore", "security.ssl.rest.truststore", "security.ssl.truststore",
}

// secretStore is a store Flink reads from a Kubernetes Secret.
type secretStore struct {
	key    string // the store's key, e.g. security.ssl.internal.keystore
	secret string
	via    string // how the Secret gets there: kubernetes.secrets, or a volume
	roles  []string
}

func (st secretStore) String() string {
	s := fmt.Sprintf("%s from Secret %s", st.key, st.secret)
	if st.via != "" {
		s += " (" + st.via
		if len(st.roles) > 0 {
			s += " in the " + strings.Join(st.roles, " and ") + " pods"
		}
		s += ")"
	}
	return s
}

// checkStoresFromSecrets finds keystores and truststores that Flink reads
// from a Kubernetes Secret, mounted by kubernetes.secrets (SECRET:PATH,
// comma-separated) or by a secret or projected volume of a pod template
// that flink-main-container mounts where a store's key points. A private
// key then sits in the API server's storage, readable by whoever may read
// Secrets there, instead of being made in the pod that uses it; and
// whoever may write them decides what a truststore trusts.
func checkStoresFromSecrets(s *subject, _ LintOptions) []Finding {
	if s.deployment == nil {
		return nil
	}
	found := s.storesFromSecretsOption()
	for _, st := range s.storesFromSecretVolumes() {
		if !slices.ContainsFunc(found, func(f secretStore) bool { return f.key == st.key && f.secret == st.secret }) {
			found = append(found, st)
		}
	}
	if len(found) == 0 {
		return nil
	}
	var names []string
	keystores, truststores := false, false
	for _, st := range found {
		names = append(names, st.String())
		if strings.HasSuffix(st.key, "truststore") {
			truststores = true
		} else {
			keystores = true
		}
	}
	var what, why []string
	if keystores {
		what = append(what, "private keys")
		why = append(why, "the keys are stored by the API server and readable by whoever may read Secrets in the namespace")
	}
	if truststores {
		what = append(what, "trusted certificates")
		why = append(why, "whoever may write Secrets there decides whom the cluster trusts")
	}
	return one(RuleStoresFromSecrets, SeverityError,
		fmt.Sprintf("%s reads %s from a Kubernetes Secret (%s): %s", s.label, strings.Join(what, " and "), strings.Join(names, "; "), strings.Join(why, ", and ")),
		"let the flinkpki init container make the key and the truststore in the pod (init --out into an emptyDir) and point the store keys there")
}

// storesFromSecretsOption finds the stores under a directory that
// kubernetes.secrets mounts a Secret at.
func (s *subject) storesFromSecretsOption() []secretStore {
	mounts, _ := s.get("kubernetes.secrets")
	var found []secretStore
	for _, m := range strings.Split(mounts, ",") {
		secret, dir, ok := strings.Cut(strings.TrimSpace(m), ":")
		dir = strings.TrimRight(strings.TrimSpace(dir), "/")
		if !ok || dir == "" {
			continue
		}
		for _, key := range storeKeys {
			if p, set := s.get(key); set && strings.HasPrefix(strings.TrimSpace(p), dir+"/") {
				found = append(found, secretStore{key: key, secret: strings.TrimSpace(secret)})
			}
		}
	}
	return found
}

// storesFromSecretVolumes finds the stores that flink-main-container reads
// from a secret volume, or a projected volume's secret source, in the pods
// of each Flink process (the top-level template merged with the process's
// own): the store's path lies under the mount whose mountPath is its
// longest prefix, and the file it names in the volume (below the mount's
// subPath) comes from a Secret.
func (s *subject) storesFromSecretVolumes() []secretStore {
	var found []secretStore
	for _, pod := range s.deployment.processPods() {
		c := containerNamed(pod.spec.Containers, mainContainerName)
		if c == nil {
			continue
		}
		for _, key := range storeKeys {
			p, set := s.get(key)
			if !set || !path.IsAbs(strings.TrimSpace(p)) {
				continue
			}
			p = cleanPath(p)
			m := mountFor(c, p)
			if m == nil {
				continue
			}
			v := volumeNamed(&pod.spec, m.Name)
			if v == nil {
				continue
			}
			file, known := fileInVolume(m, p)
			secret, ok := secretFor(v, file, known)
			if !ok {
				continue
			}
			via := fmt.Sprintf("volume %q at %s", v.Name, m.MountPath)
			if i := slices.IndexFunc(found, func(f secretStore) bool { return f.key == key && f.secret == secret && f.via == via }); i >= 0 {
				found[i].roles = append(found[i].roles, pod.roles...)
				continue
			}
			found = append(found, secretStore{key: key, secret: secret, via: via, roles: slices.Clone(pod.roles)})
		}
	}
	return found
}

// fileInVolume returns the path within the volume of the file p that a
// container reads through mount m: p below the mountPath, joined to the
// mount's subPath. known is false when the kubelet decides the subPath
// (subPathExpr).
func fileInVolume(m *corev1.VolumeMount, p string) (file string, known bool) {
	if m.SubPathExpr != "" {
		return "", false
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(p, path.Clean(m.MountPath)), "/")
	return path.Join(m.SubPath, rel), true
}

// secretFor returns the Secret that puts file into volume v: a secret
// volume (all its keys, or the items it lists), or a projected volume's
// secret source. In a projected volume a file that a source's items name
// comes from that source; one they do not name comes from a source without
// items, known to be a Secret only when no ConfigMap is projected whole
// beside it.
func secretFor(v *corev1.Volume, file string, known bool) (string, bool) {
	if sv := v.Secret; sv != nil {
		if !known || len(sv.Items) == 0 || slices.ContainsFunc(sv.Items, func(it corev1.KeyToPath) bool { return path.Clean(it.Path) == file }) {
			return sv.SecretName, true
		}
		return "", false
	}
	if v.Projected == nil {
		return "", false
	}
	var whole []string // Secrets projected with all their keys
	otherWhole := false
	for _, src := range v.Projected.Sources {
		switch {
		case src.Secret != nil && len(src.Secret.Items) == 0:
			whole = append(whole, src.Secret.Name)
		case src.Secret != nil:
			if !known || slices.ContainsFunc(src.Secret.Items, func(it corev1.KeyToPath) bool { return path.Clean(it.Path) == file }) {
				return src.Secret.Name, true
			}
		case src.ConfigMap != nil && len(src.ConfigMap.Items) == 0:
			otherWhole = true
		case src.ConfigMap != nil:
			if known && slices.ContainsFunc(src.ConfigMap.Items, func(it corev1.KeyToPath) bool { return path.Clean(it.Path) == file }) {
				return "", false
			}
		}
	}
	if len(whole) > 0 && !otherWhole {
		return strings.Join(whole, " or "), true
	}
	return "", false
}
