package flinkconf

import (
	"cmp"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// checkInitWiring follows what the flinkpki init container writes to where
// Flink reads it, in the pods of each Flink process: the stores and the
// pod-local configuration with their passwords must land on volumes the
// Flink container mounts at the same paths, FLINK_CONF_DIR must name the
// copy, and the keys must stay in an emptyDir. Each break makes Flink fail
// to start (or, for the keys, leave the pod), which lint can say before
// the operator rolls the pods.
func checkInitWiring(s *subject, _ LintOptions) []Finding {
	d := s.deployment
	if d == nil || !s.internalSSL() {
		return nil
	}
	_, inlinePasswords := s.get("security.ssl.internal.keystore-password", "security.ssl.keystore-password")
	w := initWiring{protocols: map[string][]string{}}
	for _, pod := range d.processPods() {
		var problems []string
		call, init, opaque := internalInitOf(&pod.spec)
		confDir := emptyConfDir(&pod.spec)
		switch {
		case init == nil && inlinePasswords:
			continue // the stores come from elsewhere; FP004 and FP009 speak to that
		case init == nil && opaque:
			continue // flinkpki runs through a wrapper: there is nothing to follow
		case init == nil && bakedConf(&pod.spec):
			continue // Flink reads a configuration of its own (baked into the image, say)
		case init == nil && confDir != "":
			problems = append(problems, fmt.Sprintf(": FLINK_CONF_DIR %s is an emptyDir volume, and no flinkpki init container writes the configuration or the stores there, so Flink finds no configuration and refuses to start", confDir))
		case init == nil:
			problems = append(problems, ": no flinkpki init container makes their stores, and flinkConfiguration sets no keystore password, so Flink refuses to start (security.ssl.internal.keystore-password is missing)")
		default:
			problems = w.follow(pod, call, init, d.name, inlinePasswords)
		}
		w.report(pod, problems)
	}
	return w.findings(s)
}

// internalInitOf finds a pod's flinkpki init container for internal TLS
// (the last, if several) and how it is called. opaque says that an init
// container names flinkpki but runs something lint cannot read, so that
// no init container found is not taken for none there.
func internalInitOf(pod *corev1.PodSpec) (call initCall, init *corev1.Container, opaque bool) {
	for i, c := range pod.InitContainers {
		switch ic, kind := flinkpkiInit(c); kind {
		case internalInit:
			call, init = ic, &pod.InitContainers[i]
		case unreadable:
			opaque = true
		}
	}
	return call, init, opaque
}

// initWiring gathers checkInitWiring's findings pod by pod, so that a
// problem shared by the pods of both processes, a user to check and the
// TLS protocols they write are each said once for the deployment.
type initWiring struct {
	reports   []wiringReport
	owners    []ownerWarning      // users an image or an admission policy decides
	protocols map[string][]string // --tls-protocol of the init containers → the processes
}

// wiringReport is what breaks the wiring in the pods of some processes.
type wiringReport struct {
	pod      processPod
	problems []string
}

// ownerWarning is a user problem an image or an admission policy decides,
// with the processes whose pods have it.
type ownerWarning struct {
	roles   []string
	problem string
}

// follow follows the way from a pod's flinkpki init container to its
// Flink container: it returns what breaks it, the first problem naming
// the init container, and notes the TLS protocol the init container
// writes and a user problem that is not sure (ownerProblem).
func (w *initWiring) follow(pod processPod, call initCall, init *corev1.Container, deployment string, inlinePasswords bool) []string {
	p := cmp.Or(call.flags["--tls-protocol"], Protocol)
	if known, ok := ParseProtocol(p); ok {
		p = known
	}
	w.protocols[p] = append(w.protocols[p], pod.roles...)
	problems, owner := wiringProblems(&pod.spec, init, call, deployment, inlinePasswords)
	if len(problems) > 0 {
		problems[0] = fmt.Sprintf(", flinkpki init container %q: %s", call.name, problems[0])
	}
	if owner != "" {
		p := fmt.Sprintf("flinkpki init container %q: %s", call.name, owner)
		if i := slices.IndexFunc(w.owners, func(o ownerWarning) bool { return o.problem == p }); i >= 0 {
			w.owners[i].roles = append(w.owners[i].roles, pod.roles...)
		} else {
			w.owners = append(w.owners, ownerWarning{slices.Clone(pod.roles), p})
		}
	}
	return problems
}

// report keeps the problems of one process's pods, if any.
func (w *initWiring) report(pod processPod, problems []string) {
	if len(problems) == 0 {
		return
	}
	// A problem of the top-level template shows in both processes:
	// report it once.
	if n := len(w.reports); n > 0 && slices.Equal(w.reports[n-1].problems, problems) {
		w.reports[n-1].pod.roles = append(w.reports[n-1].pod.roles, pod.roles...)
		w.reports[n-1].pod.fields = mergeFields(w.reports[n-1].pod.fields, pod.fields)
		return
	}
	w.reports = append(w.reports, wiringReport{pod: pod, problems: problems})
}

// findings are the gathered problems (errors: Flink does not start), then
// the users to check (warnings), then what the protocols written say.
func (w *initWiring) findings(s *subject) []Finding {
	const fix = "wire the init container as deploy/examples does: --out and --flink-conf-out on emptyDir volumes that flink-main-container mounts at the same paths, and FLINK_CONF_DIR set to the --flink-conf-out directory"
	var out []Finding
	for _, r := range w.reports {
		where := "no pod template reaches them"
		if len(r.pod.fields) > 0 {
			where = "from " + strings.Join(r.pod.fields, " and ")
		}
		out = append(out, Finding{Rule: RuleInitWiring, Severity: SeverityError,
			Message: fmt.Sprintf("%s: in its %s pods (%s)%s", s.label, strings.Join(r.pod.roles, " and "), where, strings.Join(r.problems, "; ")),
			Fix:     fix})
	}
	for _, o := range w.owners {
		out = append(out, Finding{Rule: RuleInitWiring, Severity: SeverityWarning,
			Message: fmt.Sprintf("%s: in its %s pods, %s", s.label, strings.Join(o.roles, " and "), o.problem),
			Fix:     "set runAsUser (and runAsGroup) in the pod's securityContext to the user Flink runs as (9999 in Flink's images), as deploy/examples does"})
	}
	return append(out, protocolFindings(s, w.protocols)...)
}

// initWritesConf reports whether the subject is a FlinkDeployment whose
// every Flink process runs a flinkpki init container for internal TLS that
// writes the configuration copy (--flink-conf-out).
func (s *subject) initWritesConf() bool {
	d := s.deployment
	if d == nil {
		return false
	}
	pods := d.processPods()
	for _, pod := range pods {
		if !slices.ContainsFunc(pod.spec.InitContainers, func(c corev1.Container) bool {
			call, kind := flinkpkiInit(c)
			return kind == internalInit && call.flags["--flink-conf-out"] != ""
		}) {
			return false
		}
	}
	return len(pods) > 0
}

// protocolFindings compares the TLS protocol the init containers write
// (--tls-protocol, by process) with each other and with flinkConfiguration,
// whose security.ssl.* keys the init container's copy replaces.
func protocolFindings(s *subject, byProtocol map[string][]string) []Finding {
	switch len(byProtocol) {
	case 0:
		return nil
	case 1:
	default:
		var parts []string
		for _, p := range slices.Sorted(maps.Keys(byProtocol)) {
			parts = append(parts, fmt.Sprintf("%s pods %s", strings.Join(byProtocol[p], " and "), p))
		}
		return one(RuleInitWiring, SeverityError,
			fmt.Sprintf("%s: its flinkpki init containers write different TLS protocols (--tls-protocol: %s), and a process of one cannot reach a process of the other", s.label, strings.Join(parts, ", ")),
			"give every flinkpki init container of the cluster the same --tls-protocol")
	}
	var protocol string
	for p := range byProtocol {
		protocol = p
	}
	if v, set := s.get("security.ssl.protocol"); set && !strings.EqualFold(strings.TrimSpace(v), protocol) {
		return one(RuleInitWiring, SeverityWarning,
			fmt.Sprintf("%s sets security.ssl.protocol: %s, which has no effect: the flinkpki init container's copy of the configuration says %s (its --tls-protocol), with suites to match", s.label, v, protocol),
			fmt.Sprintf("give the init container --tls-protocol %s, or remove security.ssl.protocol and security.ssl.algorithms from flinkConfiguration", v))
	}
	return nil
}

// bakedConf reports whether flink-main-container reads its configuration
// from a directory of its own (FLINK_CONF_DIR, with no init container to
// write it): a configuration baked into the image with flinkpki bake, for
// instance, whose keys lint cannot see.
func bakedConf(pod *corev1.PodSpec) bool {
	main := containerNamed(pod.Containers, mainContainerName)
	return main != nil && envValue(*main, "FLINK_CONF_DIR") != "" && emptyConfDir(pod) == ""
}

// emptyConfDir returns flink-main-container's FLINK_CONF_DIR when it lies
// on an emptyDir volume, which starts empty: only an init container can
// have put a configuration there. Otherwise it returns "".
func emptyConfDir(pod *corev1.PodSpec) string {
	main := containerNamed(pod.Containers, mainContainerName)
	if main == nil {
		return ""
	}
	dir := path.Clean(envValue(*main, "FLINK_CONF_DIR"))
	for _, m := range main.VolumeMounts {
		mp := path.Clean(m.MountPath)
		if dir != mp && !strings.HasPrefix(dir, mp+"/") {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.EmptyDir != nil {
				return dir
			}
		}
	}
	return ""
}

func mergeFields(a, b []string) []string {
	for _, f := range b {
		if !slices.Contains(a, f) {
			a = append(a, f)
		}
	}
	return a
}

// wiringProblems lists what breaks the way from one flinkpki init container
// to the Flink container of its pod, and, apart, a users problem that an
// image's user or an admission policy decides (ownerProblem, not sure),
// which is a warning.
func wiringProblems(pod *corev1.PodSpec, init *corev1.Container, call initCall, deployment string, inlinePasswords bool) (problems []string, ownerWarning string) {
	say := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	main := containerNamed(pod.Containers, mainContainerName)
	out, confOut, confSrc := call.flags["--out"], call.flags["--flink-conf-out"], call.flags["--flink-conf-src"]
	// shared checks that what init writes under p reaches the Flink
	// container at the same path, and returns the volume it is on.
	shared := func(p, what string) *corev1.Volume {
		if strings.Contains(p, "$(") {
			return nil // named through a value lint cannot see
		}
		m := mountFor(init, p)
		if m == nil {
			say("it writes %s to %s, which is on none of its volumes, so the files stay in its own file system", what, p)
			return nil
		}
		v := volumeNamed(pod, m.Name)
		if v == nil {
			say("it mounts volume %q, which the pod template does not define, so the pod is refused", m.Name)
			return nil
		}
		if main == nil || !slices.ContainsFunc(main.VolumeMounts, func(n corev1.VolumeMount) bool {
			return n.Name == m.Name && path.Clean(n.MountPath) == path.Clean(m.MountPath) && n.SubPath == m.SubPath
		}) {
			say("%s does not mount volume %q at %s, where it writes %s", mainContainerName, m.Name, m.MountPath, what)
		}
		return v
	}
	if out == "" {
		say("it has no --out, so it refuses to start")
	} else if v := shared(out, "the keystore and truststore"); v != nil && v.EmptyDir == nil {
		say("the stores go to volume %q, which is not an emptyDir: private keys must stay in the pod that uses them", v.Name)
	}
	switch {
	case confOut == "" && inlinePasswords:
		say("it has no --flink-conf-out, so the random passwords of the stores it makes reach no configuration Flink reads, and the ones in flinkConfiguration do not open them")
	case confOut == "":
		say("it has no --flink-conf-out, so the random passwords of the stores it makes reach no configuration Flink reads, and Flink refuses to start without them")
	case confOut != "":
		shared(confOut, "the configuration with the store passwords")
		dir := ""
		if main != nil {
			dir = envValue(*main, "FLINK_CONF_DIR")
		}
		if dir == "" || path.Clean(dir) != path.Clean(confOut) {
			say("%s does not set FLINK_CONF_DIR to %s (its --flink-conf-out), so Flink reads the operator's configuration, without the store passwords, and refuses to start", mainContainerName, confOut)
		}
	}
	if p, sure := ownerProblem(pod, init, main); sure {
		say("%s", p)
	} else {
		ownerWarning = p
	}
	if p := confSrcProblem(pod, init, confSrc, deployment); p != "" {
		say("%s", p)
	}
	return problems, ownerWarning
}

// confSrcProblem says why the init container cannot read the operator's
// configuration it copies (--flink-conf-src), or "": without it the pod
// does not start.
func confSrcProblem(pod *corev1.PodSpec, init *corev1.Container, confSrc, deployment string) string {
	if confSrc == "" || strings.Contains(confSrc, "$(") {
		return ""
	}
	switch m := mountFor(init, confSrc); {
	case m == nil:
		return fmt.Sprintf("it reads --flink-conf-src %s from none of its volumes: mount the operator's ConfigMap %s%s there", confSrc, operatorConfigMap, deployment)
	case volumeNamed(pod, m.Name) == nil && m.Name == operatorConfVolume:
		// The operator adds this volume itself.
	case volumeNamed(pod, m.Name) == nil:
		return fmt.Sprintf("it mounts volume %q, which the pod template does not define, so the pod is refused", m.Name)
	default:
		if cm := volumeNamed(pod, m.Name).ConfigMap; cm != nil && deployment != "" && cm.Name != operatorConfigMap+deployment {
			return fmt.Sprintf("it copies the configuration from ConfigMap %q, but the operator writes it to %s%s, so the pod cannot start", cm.Name, operatorConfigMap, deployment)
		}
	}
	return ""
}

// The users the images run as: flinkpki's (distroless nonroot, the
// Dockerfile's USER) and the official Flink images' (flink).
const (
	flinkpkiImageUID = 65532
	flinkImageUID    = 9999
)

// runAsUser returns the user c runs as when the pod says (its own
// securityContext, else the pod's), else nil: its image's user.
func runAsUser(pod *corev1.PodSpec, c *corev1.Container) *int64 {
	if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
		return c.SecurityContext.RunAsUser
	}
	if pod.SecurityContext != nil {
		return pod.SecurityContext.RunAsUser
	}
	return nil
}

// ownerProblem says why flink-main-container cannot read what the init
// container writes, or "". init writes the stores, their passwords and the
// configuration copy readable by their owner alone (0600), so both must
// run as one user (or Flink as root). A container without runAsUser runs
// as its image's user: 65532 for flinkpki's image, 9999 for Flink's. sure
// is false when an image's user decides, which an admission policy may
// also set (OpenShift's restricted one gives every container of a
// namespace one user).
func ownerProblem(pod *corev1.PodSpec, init, main *corev1.Container) (problem string, sure bool) {
	if main == nil {
		return "", false
	}
	iu, mu := runAsUser(pod, init), runAsUser(pod, main)
	initUID, mainUID := int64(flinkpkiImageUID), int64(flinkImageUID)
	if iu != nil {
		initUID = *iu
	}
	if mu != nil {
		mainUID = *mu
	}
	if mainUID == 0 || initUID == mainUID {
		return "", false
	}
	const why = "the stores and the configuration copy it writes are readable by their owner alone (0600), so Flink cannot open them and refuses to start: set runAsUser (and runAsGroup) in the pod's securityContext to Flink's user (9999 in Flink's images)"
	switch {
	case iu != nil && mu != nil:
		return fmt.Sprintf("it runs as user %d and %s as user %d: %s", initUID, mainContainerName, mainUID, why), true
	case iu == nil && mu == nil:
		return fmt.Sprintf("neither it nor %s sets runAsUser, so each runs as its image's user (%d in flinkpki's image, %d in Flink's), unless an admission policy sets one user for both: %s", mainContainerName, flinkpkiImageUID, flinkImageUID, why), false
	case iu == nil:
		return fmt.Sprintf("it sets no runAsUser, so it runs as its image's user (%d in flinkpki's image), and %s as user %d: %s", flinkpkiImageUID, mainContainerName, mainUID, why), false
	default:
		return fmt.Sprintf("it runs as user %d, and %s sets no runAsUser, so it runs as its image's user (%d in Flink's images): %s", initUID, mainContainerName, flinkImageUID, why), false
	}
}

// checkTemplateMerge finds pod template arrays the operator would merge by
// position: without merge-arrays-by-name, the n-th init container (or
// container, or volume) of a process's template is merged into the n-th
// of the top-level one, whatever their names.
func checkTemplateMerge(s *subject, _ LintOptions) []Finding {
	d := s.deployment
	if d == nil || s.isTrue(MergeArraysByNameKey) {
		return nil
	}
	top := d.topTemplate()
	if top == nil {
		return nil
	}
	var clashes []string
	for _, t := range d.templates {
		if t.field == "spec.podTemplate" {
			continue
		}
		spec := &t.spec.Spec
		clash := func(array string, a, b []string) {
			for i := 0; i < min(len(a), len(b)); i++ {
				if a[i] != b[i] {
					clashes = append(clashes, fmt.Sprintf("%s %s[%d] %q into spec.podTemplate's %q", t.field, array, i, b[i], a[i]))
				}
			}
		}
		clash("initContainers", containerNames(top.InitContainers), containerNames(spec.InitContainers))
		clash("containers", containerNames(top.Containers), containerNames(spec.Containers))
		var tv, sv []string
		for _, v := range top.Volumes {
			tv = append(tv, v.Name)
		}
		for _, v := range spec.Volumes {
			sv = append(sv, v.Name)
		}
		clash("volumes", tv, sv)
	}
	if len(clashes) == 0 {
		return nil
	}
	return one(RuleTemplateMerge, SeverityWarning,
		fmt.Sprintf("%s merges its pod templates by position unless the operator is configured otherwise, which merges %s", s.label, strings.Join(clashes, "; ")),
		"set "+MergeArraysByNameKey+`: "true" in flinkConfiguration`)
}

func containerNames(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// checkTokenExposed finds the volume a flinkpki init container reads its
// token from (--token-file) mounted in one of the pod's long-running
// containers too, where job code or a sidecar can read it.
func checkTokenExposed(s *subject, _ LintOptions) []Finding {
	d := s.deployment
	if d == nil {
		return nil
	}
	type exposure struct{ container, volume string }
	var found []exposure
	roles := map[exposure][]string{}
	for _, pod := range d.processPods() {
		// Long-running: the pod's containers, and init containers that
		// restart Always (Kubernetes-native sidecars).
		longRunning := slices.Clone(pod.spec.Containers)
		for _, c := range pod.spec.InitContainers {
			if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
				longRunning = append(longRunning, c)
			}
		}
		for _, c := range pod.spec.InitContainers {
			m := initTokenMount(&c)
			if m == nil {
				continue
			}
			for _, other := range longRunning {
				if slices.ContainsFunc(other.VolumeMounts, func(n corev1.VolumeMount) bool { return n.Name == m.Name }) {
					e := exposure{other.Name, m.Name}
					if _, seen := roles[e]; !seen {
						found = append(found, e)
					}
					roles[e] = append(roles[e], pod.roles...)
				}
			}
		}
	}
	if len(found) == 0 {
		return nil
	}
	var parts []string
	for _, e := range found {
		parts = append(parts, fmt.Sprintf("container %q of the %s pods mounts volume %q", e.container, strings.Join(slices.Compact(roles[e]), " and "), e.volume))
	}
	return one(RuleTokenExposed, SeverityWarning,
		fmt.Sprintf("%s mounts the token its flinkpki init container enrolls with into long-running containers too (%s): job code in flink-main-container, or anything in a sidecar, can read it", s.label, strings.Join(parts, "; ")),
		"mount the token volume in the flinkpki init container only")
}
