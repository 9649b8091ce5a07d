package flinkconf

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// The keys that name the service accounts of a Flink cluster's pods. The
// operator sets kubernetes.service-account from spec.serviceAccount; the
// JobManager's and the TaskManagers' keys fall back to it (Flink in native
// mode, the operator's decorators in standalone mode).
const (
	ServiceAccountKey            = "kubernetes.service-account"
	JobManagerServiceAccountKey  = "kubernetes.jobmanager.service-account"
	TaskManagerServiceAccountKey = "kubernetes.taskmanager.service-account"
)

// checkTaskManagerAccount warns when TaskManagers, which run job code,
// enroll with a service-account token of the account the JobManager runs
// as: flinkpki takes a pod's token for every role its account is bound to,
// and a binding without roles allows the REST endpoint's server material,
// so a job could pose as its cluster's REST endpoint to the clients that
// trust the REST CA. A TaskManager account of its own, bound to the
// taskmanager role alone, keeps that from job code.
func checkTaskManagerAccount(s *subject, _ LintOptions) []Finding {
	d := s.deployment
	if d == nil || !slices.ContainsFunc(d.processPods(), enrollsWithServiceAccount) {
		return nil
	}
	base := d.serviceAccount
	if base == "" {
		base, _ = s.get(ServiceAccountKey)
	}
	jm, tm := base, base
	if v, _ := s.get(JobManagerServiceAccountKey); v != "" {
		jm = v
	}
	if v, _ := s.get(TaskManagerServiceAccountKey); v != "" {
		tm = v
	}
	if jm == "" || tm != jm {
		return nil
	}
	return one(RuleTaskManagerAccount, SeverityWarning,
		fmt.Sprintf("%s runs its TaskManagers, and so its jobs' code, as the JobManager's service account %s: their tokens enroll for every role that account is bound to (without roles, the REST endpoint's server certificate too)", s.label, jm),
		fmt.Sprintf("set %s: %s-tm in flinkConfiguration, create that service account, and bind each to its roles: flinkpki cluster create NAME --k8s-binding NS/%s:jobmanager,rest-server --k8s-binding NS/%s-tm:taskmanager",
			TaskManagerServiceAccountKey, jm, jm, jm))
}

// enrollsWithServiceAccount reports whether pod is a TaskManager whose
// flinkpki init container reads its token from a projected
// service-account token.
func enrollsWithServiceAccount(pod processPod) bool {
	if !slices.Contains(pod.roles, "TaskManager") {
		return false
	}
	for _, c := range pod.spec.InitContainers {
		m := initTokenMount(&c)
		if m == nil {
			continue
		}
		if v := volumeNamed(&pod.spec, m.Name); v != nil && v.Projected != nil &&
			slices.ContainsFunc(v.Projected.Sources, func(p corev1.VolumeProjection) bool { return p.ServiceAccountToken != nil }) {
			return true
		}
	}
	return false
}
