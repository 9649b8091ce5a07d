package flinkconf

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// The operator's names for what it adds to every Flink pod (Flink's
// kubernetes Constants: MAIN_CONTAINER_NAME, FLINK_CONF_VOLUME and
// CONFIG_MAP_PREFIX, read from flink-kubernetes 2.2.0 with javap).
const (
	mainContainerName  = "flink-main-container"
	operatorConfVolume = "flink-config-volume"
	operatorConfigMap  = "flink-config-"
)

// flinkProcesses are the pods of a FlinkDeployment and the pod template
// fields that reach each: the top-level template reaches both.
var flinkProcesses = []struct {
	role  string
	field string
}{
	{"JobManager", "spec.jobManager.podTemplate"},
	{"TaskManager", "spec.taskManager.podTemplate"},
}

// processPod is the pod spec the operator builds for one kind of process
// from the manifest's templates, merged by name.
type processPod struct {
	roles  []string // "JobManager", "TaskManager"
	fields []string // the templates it was merged from
	spec   corev1.PodSpec
}

// topTemplate returns the top-level pod template's spec, or nil.
func (d *deploymentInfo) topTemplate() *corev1.PodSpec {
	for _, t := range d.templates {
		if t.field == "spec.podTemplate" {
			return &t.spec.Spec
		}
	}
	return nil
}

// processPods merges the top-level template with each process's own.
func (d *deploymentInfo) processPods() []processPod {
	top := d.topTemplate()
	var out []processPod
	for _, p := range flinkProcesses {
		pod := processPod{roles: []string{p.role}}
		if top != nil {
			pod.fields = append(pod.fields, "spec.podTemplate")
			pod.spec = *top.DeepCopy()
		}
		for _, t := range d.templates {
			if t.field == p.field {
				pod.fields = append(pod.fields, t.field)
				mergePodSpec(&pod.spec, &t.spec.Spec)
			}
		}
		out = append(out, pod)
	}
	return out
}

// mergePodSpec merges a process's template into the top-level one the way
// the operator does with merge-arrays-by-name: containers, init
// containers, volumes, environment variables and mounts by name, the
// process's fields winning.
func mergePodSpec(to, from *corev1.PodSpec) {
	to.InitContainers = mergeContainers(to.InitContainers, from.InitContainers)
	to.Containers = mergeContainers(to.Containers, from.Containers)
	for _, v := range from.Volumes {
		if i := slices.IndexFunc(to.Volumes, func(w corev1.Volume) bool { return w.Name == v.Name }); i >= 0 {
			to.Volumes[i] = v
		} else {
			to.Volumes = append(to.Volumes, v)
		}
	}
}

func mergeContainers(to, from []corev1.Container) []corev1.Container {
	for _, c := range from {
		i := slices.IndexFunc(to, func(d corev1.Container) bool { return d.Name == c.Name })
		if i < 0 {
			to = append(to, *c.DeepCopy())
			continue
		}
		t := &to[i]
		if c.Image != "" {
			t.Image = c.Image
		}
		if len(c.Command) > 0 {
			t.Command = c.Command
		}
		if len(c.Args) > 0 {
			t.Args = c.Args
		}
		for _, e := range c.Env {
			if j := slices.IndexFunc(t.Env, func(f corev1.EnvVar) bool { return f.Name == e.Name }); j >= 0 {
				t.Env[j] = e
			} else {
				t.Env = append(t.Env, e)
			}
		}
		for _, m := range c.VolumeMounts {
			if j := slices.IndexFunc(t.VolumeMounts, func(n corev1.VolumeMount) bool { return n.Name == m.Name }); j >= 0 {
				t.VolumeMounts[j] = m
			} else {
				t.VolumeMounts = append(t.VolumeMounts, m)
			}
		}
	}
	return to
}

// initCall is a flinkpki init container and the flags it runs with.
type initCall struct {
	name  string
	flags map[string]string // last value of each flag, e.g. "--out"
}

// initKind is what flinkpkiInit makes of a container.
type initKind int

const (
	notInternalInit initKind = iota // not flinkpki, or its init for REST material
	internalInit                    // flinkpki init for a Flink process's internal TLS
	unreadable                      // names flinkpki but runs something lint cannot read (a shell wrapper)
)

// flinkpkiInit reads c as a flinkpki init container that enrolls a Flink
// process for internal TLS. A container counts when its name, image or
// command names flinkpki and it runs the init subcommand; one for REST
// material (--role rest-server or rest-client) does not.
func flinkpkiInit(c corev1.Container) (initCall, initKind) {
	var args []string
	for _, a := range append(append([]string(nil), c.Command...), c.Args...) {
		args = append(args, expandEnv(c, a))
	}
	id := strings.ToLower(c.Name + " " + c.Image)
	if len(args) > 0 && path.Base(args[0]) == "flinkpki" {
		id += " flinkpki"
		args = args[1:]
	}
	switch {
	case !strings.Contains(id, "flinkpki"):
		return initCall{}, notInternalInit
	case len(args) == 0 || args[0] != "init":
		return initCall{}, unreadable
	}
	call := initCall{name: c.Name, flags: map[string]string{}}
	for i := 1; i < len(args); i++ {
		k, v, ok := strings.Cut(args[i], "=")
		if !strings.HasPrefix(k, "--") {
			continue
		}
		if !ok && i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			v = args[i+1]
			i++
		}
		call.flags[k] = strings.TrimSpace(v)
	}
	role := call.flags["--role"]
	if role == "" {
		role = envValue(c, envRole)
	}
	if strings.HasPrefix(role, "rest-") {
		return initCall{}, notInternalInit
	}
	return call, internalInit
}

// expandEnv expands $(NAME) in a container argument as the kubelet does,
// from the container's literal environment values; a reference to a value
// from elsewhere (the downward API, a Secret) stays as written.
func expandEnv(c corev1.Container, arg string) string {
	return ExpandVars(arg, func(name string) (string, bool) { return literalEnv(c, name) })
}

// ExpandVars expands $(NAME) in a container's command or argument as the
// kubelet does, with the values lookup knows: $$ is a literal $, and a
// name lookup does not know stays as written.
func ExpandVars(s string, lookup func(name string) (string, bool)) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "$$"):
			b.WriteByte('$')
			i++
			continue
		case strings.HasPrefix(s[i:], "$("):
			if end := strings.IndexByte(s[i:], ')'); end > 2 {
				if v, ok := lookup(s[i+2 : i+end]); ok {
					b.WriteString(v)
					i += end
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// literalEnv returns a container's literal environment value.
func literalEnv(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom == nil {
			return e.Value, true
		}
	}
	return "", false
}

// envRole is init's environment fallback of --role.
const envRole = "FLINKPKI_ROLE"

// envValue returns the literal value of a container's environment
// variable, or "" when it is unset or comes from elsewhere.
func envValue(c corev1.Container, name string) string {
	v, _ := literalEnv(c, name)
	return v
}

// mountFor returns the mount of c under which p lies (the deepest one).
func mountFor(c *corev1.Container, p string) *corev1.VolumeMount {
	var best *corev1.VolumeMount
	p = path.Clean(p)
	for i, m := range c.VolumeMounts {
		mp := path.Clean(m.MountPath)
		if (p == mp || strings.HasPrefix(p, strings.TrimSuffix(mp, "/")+"/")) && (best == nil || len(mp) > len(path.Clean(best.MountPath))) {
			best = &c.VolumeMounts[i]
		}
	}
	return best
}

func volumeNamed(pod *corev1.PodSpec, name string) *corev1.Volume {
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == name {
			return &pod.Volumes[i]
		}
	}
	return nil
}

func containerNamed(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

// internalSSL reports whether the subject turns internal SSL on for its
// Flink version (see checkInternalSSL).
func (s *subject) internalSSL() bool {
	if _, set := s.get("security.ssl.internal.enabled"); set || !legacySSLSwitch(s.major) {
		return s.isTrue("security.ssl.internal.enabled")
	}
	return s.isTrue("security.ssl.enabled")
}

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
	const fix = "wire the init container as deploy/examples does: --out and --flink-conf-out on emptyDir volumes that flink-main-container mounts at the same paths, and FLINK_CONF_DIR set to the --flink-conf-out directory"
	type report struct {
		pod      processPod
		problems []string
	}
	var reports []report
	protocols := map[string][]string{} // --tls-protocol of the init containers → the processes
	for _, pod := range d.processPods() {
		var problems []string
		var call initCall
		var init *corev1.Container
		opaque := false
		for i, c := range pod.spec.InitContainers {
			switch ic, kind := flinkpkiInit(c); kind {
			case internalInit:
				call, init = ic, &pod.spec.InitContainers[i]
			case unreadable:
				opaque = true
			}
		}
		switch {
		case init == nil && inlinePasswords:
			continue // the stores come from elsewhere; FP004 and FP009 speak to that
		case init == nil && opaque:
			continue // flinkpki runs through a wrapper: there is nothing to follow
		case init == nil && bakedConf(&pod.spec):
			continue // Flink reads a configuration of its own (baked into the image, say)
		case init == nil:
			problems = append(problems, ": no flinkpki init container makes their stores, and flinkConfiguration sets no keystore password, so Flink refuses to start (security.ssl.internal.keystore-password is missing)")
		default:
			p := call.flags["--tls-protocol"]
			if p == "" || strings.EqualFold(p, Protocol) {
				p = Protocol
			} else if strings.EqualFold(p, ProtocolTLS13) {
				p = ProtocolTLS13
			}
			protocols[p] = append(protocols[p], pod.roles...)
			problems = wiringProblems(&pod.spec, init, call, d.name, inlinePasswords)
			if len(problems) > 0 {
				problems[0] = fmt.Sprintf(", flinkpki init container %q: %s", call.name, problems[0])
			}
		}
		if len(problems) == 0 {
			continue
		}
		// A problem of the top-level template shows in both processes:
		// report it once.
		if n := len(reports); n > 0 && slices.Equal(reports[n-1].problems, problems) {
			reports[n-1].pod.roles = append(reports[n-1].pod.roles, pod.roles...)
			reports[n-1].pod.fields = mergeFields(reports[n-1].pod.fields, pod.fields)
			continue
		}
		reports = append(reports, report{pod: pod, problems: problems})
	}
	var out []Finding
	for _, r := range reports {
		where := "no pod template reaches them"
		if len(r.pod.fields) > 0 {
			where = "from " + strings.Join(r.pod.fields, " and ")
		}
		out = append(out, Finding{Rule: RuleInitWiring, Severity: SeverityError,
			Message: fmt.Sprintf("%s: in its %s pods (%s)%s", s.label, strings.Join(r.pod.roles, " and "), where, strings.Join(r.problems, "; ")),
			Fix:     fix})
	}
	return append(out, protocolFindings(s, protocols)...)
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
	return main != nil && envValue(*main, "FLINK_CONF_DIR") != ""
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
// to the Flink container of its pod.
func wiringProblems(pod *corev1.PodSpec, init *corev1.Container, call initCall, deployment string, inlinePasswords bool) []string {
	var problems []string
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
	if confSrc == "" || strings.Contains(confSrc, "$(") {
		return problems
	}
	switch m := mountFor(init, confSrc); {
	case m == nil:
		say("it reads --flink-conf-src %s from none of its volumes: mount the operator's ConfigMap %s%s there", confSrc, operatorConfigMap, deployment)
	case volumeNamed(pod, m.Name) == nil && m.Name == operatorConfVolume:
		// The operator adds this volume itself.
	case volumeNamed(pod, m.Name) == nil:
		say("it mounts volume %q, which the pod template does not define, so the pod is refused", m.Name)
	default:
		if cm := volumeNamed(pod, m.Name).ConfigMap; cm != nil && deployment != "" && cm.Name != operatorConfigMap+deployment {
			say("it copies the configuration from ConfigMap %q, but the operator writes it to %s%s, so the pod cannot start", cm.Name, operatorConfigMap, deployment)
		}
	}
	return problems
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

// envTokenFile is init's environment fallback of --token-file.
const envTokenFile = "FLINKPKI_TOKEN_FILE"

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
		for _, c := range pod.spec.InitContainers {
			call, kind := flinkpkiInit(c)
			if kind != internalInit {
				continue
			}
			file := call.flags["--token-file"]
			if file == "" {
				file = envValue(c, envTokenFile)
			}
			if file == "" || strings.Contains(file, "$(") {
				continue
			}
			m := mountFor(&c, file)
			if m == nil {
				continue
			}
			for _, other := range pod.spec.Containers {
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
