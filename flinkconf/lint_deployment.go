package flinkconf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

// deploymentInfo is what the rules need from a FlinkDeployment besides its
// configuration.
type deploymentInfo struct {
	name           string // metadata.name, which the operator uses as the cluster id
	mode           string
	serviceAccount string
	templates      []podTemplate
	// mergeByName is the operator's MergeArraysByNameKey for this
	// deployment: how it merges the templates' arrays (mergePodSpec).
	mergeByName bool
	pods        []processPod // processPods, once merged
}

// podTemplate is one of the manifest's pod templates and the field it sits in.
type podTemplate struct {
	field string // e.g. "spec.jobManager.podTemplate"
	spec  *corev1.PodTemplateSpec
}

// podTemplateFields are the places a FlinkDeployment carries pod templates.
// The top-level one reaches JobManager and TaskManager alike.
var podTemplateFields = [][]string{
	{"spec", "podTemplate"},
	{"spec", "jobManager", "podTemplate"},
	{"spec", "taskManager", "podTemplate"},
}

// ConfSetFlag is the flinkpki init flag that merges KEY=VALUE into the
// pod-local copy of the configuration.
const ConfSetFlag = "--flink-conf-set"

// jobManagerConfSet returns the value an init container of the JobManager's
// pod, as the operator merges it from the templates, merges for key with
// --flink-conf-set.
func (d *deploymentInfo) jobManagerConfSet(key string) (string, bool) {
	value, found := "", false
	for _, pod := range d.processPods() {
		if !slices.Contains(pod.roles, "JobManager") {
			continue
		}
		for _, c := range pod.spec.InitContainers {
			args := append(append([]string(nil), c.Command...), c.Args...)
			for i, a := range args {
				kv, ok := strings.CutPrefix(a, ConfSetFlag+"=")
				if a == ConfSetFlag && i+1 < len(args) {
					kv, ok = args[i+1], true
				}
				if k, v, cut := strings.Cut(kv, "="); ok && cut && strings.TrimSpace(k) == key {
					value, found = strings.TrimSpace(v), true
				}
			}
		}
	}
	return value, found
}

// parseDocuments parses every YAML document of data, skipping empty ones.
func parseDocuments(data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(yamlInput(data)))
	var docs []*yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
			docs = append(docs, doc.Content[0])
		}
	}
}

// lookup follows a path of mapping keys and returns the node there, or nil.
func lookup(n *yaml.Node, path ...string) *yaml.Node {
	for _, key := range path {
		n = resolveAlias(n)
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k, ok := scalarKey(n.Content[i]); ok && k == key {
				next = n.Content[i+1]
			}
		}
		n = next
	}
	return resolveAlias(n)
}

// scalarAt returns the scalar at path, or "" when it is absent or not a scalar.
func scalarAt(n *yaml.Node, path ...string) string {
	v := lookup(n, path...)
	if v == nil || v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" {
		return ""
	}
	return v.Value
}

func isFlinkDeployment(doc *yaml.Node) bool {
	return scalarAt(doc, "kind") == "FlinkDeployment" &&
		strings.HasPrefix(scalarAt(doc, "apiVersion"), "flink.apache.org/")
}

// readDeployments reads every FlinkDeployment document of a manifest.
func readDeployments(docs []*yaml.Node, filename string) ([]subject, error) {
	var out []subject
	for _, doc := range docs {
		if !isFlinkDeployment(doc) {
			continue
		}
		s, err := readDeployment(doc)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrLintInput, filename, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func readDeployment(doc *yaml.Node) (subject, error) {
	label := fmt.Sprintf("FlinkDeployment %q", scalarAt(doc, "metadata", "name"))
	var kvs []KV
	switch fc := lookup(doc, "spec", "flinkConfiguration"); {
	case fc == nil || fc.ShortTag() == "!!null":
	case fc.Kind == yaml.MappingNode:
		var err error
		if kvs, err = flattenOperator(fc); err != nil {
			return subject{}, fmt.Errorf("spec.flinkConfiguration of %s: %v", label, err)
		}
	default:
		return subject{}, fmt.Errorf("spec.flinkConfiguration of %s is a YAML %s, not a mapping of keys", label, kindName(fc.Kind))
	}
	info := &deploymentInfo{
		name:           scalarAt(doc, "metadata", "name"),
		mode:           scalarAt(doc, "spec", "mode"),
		serviceAccount: scalarAt(doc, "spec", "serviceAccount"),
		mergeByName:    isTrueValue(confMap(kvs)[MergeArraysByNameKey]),
	}
	for _, path := range podTemplateFields {
		n := lookup(doc, path...)
		if n == nil || n.ShortTag() == "!!null" {
			continue
		}
		field := strings.Join(path, ".")
		spec, err := decodePodTemplate(n)
		if err != nil {
			return subject{}, fmt.Errorf("%s of %s is not a valid pod template: %v", field, label, err)
		}
		info.templates = append(info.templates, podTemplate{field: field, spec: spec})
	}
	// The CRD holds spec.flinkVersion to its enum; a value this lint does
	// not know leaves the version unknown.
	major, _ := ParseFlinkVersion(scalarAt(doc, "spec", "flinkVersion"))
	return subject{label: label, conf: confMap(kvs), deployment: info, major: major}, nil
}

// decodePodTemplate decodes a pod template node into the Kubernetes type,
// through JSON tags as the API server would.
func decodePodTemplate(n *yaml.Node) (*corev1.PodTemplateSpec, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("it is a YAML %s, not a mapping", kindName(n.Kind))
	}
	raw, err := encodeYAML(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{n}})
	if err != nil {
		return nil, err
	}
	var spec corev1.PodTemplateSpec
	if err := sigsyaml.Unmarshal(raw, &spec); err != nil {
		return nil, err
	}
	return &spec, nil
}
