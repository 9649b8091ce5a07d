package flinkconf

import (
	"encoding/json"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// The pods of a FlinkDeployment as the operator builds them from its pod
// templates, and what lint reads in them: the flinkpki init container and
// its flags, environment values, volumes and mounts.

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
// from the manifest's templates (see mergePodSpec).
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

// processPods returns the pods of the deployment's processes: the
// top-level template merged with each process's own, once per deployment
// (every rule reads them; a merge is a round trip through JSON). The
// specs are shared and read only; roles and fields are the caller's.
func (d *deploymentInfo) processPods() []processPod {
	if d.pods == nil {
		d.pods = d.mergePods()
	}
	out := make([]processPod, len(d.pods))
	for i, p := range d.pods {
		p.roles, p.fields = slices.Clone(p.roles), slices.Clone(p.fields)
		out[i] = p
	}
	return out
}

// mergePods merges the top-level template with each process's own.
func (d *deploymentInfo) mergePods() []processPod {
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
				pod.spec = mergePodSpec(pod.spec, t.spec.Spec, d.mergeByName)
			}
		}
		out = append(out, pod)
	}
	return out
}

// mergePodSpec merges a process's template (from) into the top-level one
// (to) exactly as the operator does (FlinkUtils.mergePodTemplates and
// mergeInto, on the templates' JSON): an object is merged key by key, the
// process's value replacing anything but an object or an array; an array
// of objects that all have a name is merged by name when byName (the
// operator's MergeArraysByNameKey), and every other array by position:
// each element merged into the one at its index, those past the end
// appended. A string in an array merges into nothing, so a container's
// args keep the top-level template's items where both have one, and only
// the process's extra items are appended.
func mergePodSpec(to, from corev1.PodSpec, byName bool) corev1.PodSpec {
	var toTree, fromTree any
	if !jsonTree(to, &toTree) || !jsonTree(from, &fromTree) {
		return to
	}
	mergeJSONInto(toTree, fromTree, byName)
	raw, err := json.Marshal(toTree)
	if err != nil {
		return to
	}
	var out corev1.PodSpec
	if err := json.Unmarshal(raw, &out); err != nil {
		return to // a merge the Kubernetes types cannot hold: keep the top level
	}
	return out
}

// jsonTree reads v as generic JSON, as Jackson's valueToTree does with
// the operator's Kubernetes model, which leaves out null fields and empty
// lists (the Go types write some of those: a PodSpec without containers
// has "containers": null, which would replace the top-level template's
// containers). An empty object stays: "emptyDir: {}" is a volume's
// source.
func jsonTree(v any, tree *any) bool {
	raw, err := json.Marshal(v)
	if err != nil || json.Unmarshal(raw, tree) != nil {
		return false
	}
	*tree = dropEmpty(*tree)
	return true
}

// dropEmpty removes null values and empty arrays from the objects of a
// JSON tree.
func dropEmpty(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			e = dropEmpty(e)
			switch x := e.(type) {
			case nil:
				delete(t, k)
				continue
			case []any:
				if len(x) == 0 {
					delete(t, k)
					continue
				}
			}
			t[k] = e
		}
	case []any:
		for i, e := range t {
			t[i] = dropEmpty(e)
		}
	}
	return v
}

// mergeJSONInto is the operator's mergeInto: from's keys into to, which
// must be an object for anything to happen.
func mergeJSONInto(to, from any, byName bool) {
	toObj, toIsObj := to.(map[string]any)
	fromObj, fromIsObj := from.(map[string]any)
	if !toIsObj || !fromIsObj {
		return // a scalar or an array has no fields to merge, nor to merge into
	}
	for k, fv := range fromObj {
		tv, present := toObj[k]
		tArr, tIsArr := tv.([]any)
		fArr, fIsArr := fv.([]any)
		switch _, tIsObj := tv.(map[string]any); {
		case present && tIsArr && fIsArr:
			toObj[k] = mergeJSONArray(tArr, fArr, byName)
		case present && tIsObj:
			mergeJSONInto(tv, fv, byName)
		default:
			toObj[k] = fv
		}
	}
}

// mergeJSONArray is the operator's mergeArray.
func mergeJSONArray(to, from []any, byName bool) []any {
	if byName && allNamed(to) && allNamed(from) {
		for _, f := range from {
			name := f.(map[string]any)["name"]
			if i := slices.IndexFunc(to, func(t any) bool { return t.(map[string]any)["name"] == name }); i >= 0 {
				mergeJSONInto(to[i], f, byName)
			} else {
				to = append(to, f)
			}
		}
		return to
	}
	for i, f := range from {
		if i >= len(to) {
			to = append(to, f)
			continue
		}
		mergeJSONInto(to[i], f, byName)
	}
	return to
}

// allNamed reports whether every element is an object with a name (true
// for none, as in the operator).
func allNamed(a []any) bool {
	for _, e := range a {
		o, ok := e.(map[string]any)
		if !ok {
			return false
		}
		if _, ok := o["name"]; !ok {
			return false
		}
	}
	return true
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
	call, kind := flinkpkiCall(c)
	if kind != internalInit {
		return initCall{}, kind
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

// flinkpkiCall reads c as a flinkpki init container of any role, REST
// material included: internalInit then means "flinkpki init", whatever it
// enrolls for.
func flinkpkiCall(c corev1.Container) (initCall, initKind) {
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

// Environment fallbacks of init's --role and --token-file.
const (
	envRole      = "FLINKPKI_ROLE"
	envTokenFile = "FLINKPKI_TOKEN_FILE"
)

// envValue returns the literal value of a container's environment
// variable, or "" when it is unset or comes from elsewhere.
func envValue(c corev1.Container, name string) string {
	v, _ := literalEnv(c, name)
	return v
}

// initTokenMount is the volume mount a flinkpki init container of any role
// (REST material too: the same token) reads its token file from
// (--token-file, or FLINKPKI_TOKEN_FILE), or nil for another container, a
// path only known at run time, or one on no volume.
func initTokenMount(c *corev1.Container) *corev1.VolumeMount {
	call, kind := flinkpkiCall(*c)
	if kind != internalInit {
		return nil
	}
	file := call.flags["--token-file"]
	if file == "" {
		file = envValue(*c, envTokenFile)
	}
	if file == "" || strings.Contains(file, "$(") {
		return nil
	}
	return mountFor(c, file)
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
