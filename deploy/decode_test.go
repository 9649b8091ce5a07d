package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// errUnknownKind marks a manifest whose kind no test knows how to check.
var errUnknownKind = errors.New("unknown kind")

// object is one decoded manifest: its kind and the typed value.
type object struct {
	APIVersion string
	Kind       string
	Name       string
	Value      any
}

// splitDocuments returns the non-empty YAML documents of a multi-document
// stream.
func splitDocuments(data []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			docs = append(docs, doc)
		}
	}
}

// stripComments drops whole-line comments, so a document of only comments
// counts as empty.
func stripComments(doc []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(out, line...)
			out = append(out, '\n')
		}
	}
	return out
}

// decodeStrict decodes one YAML document into v the way the API server's
// strict field validation does: duplicate keys, unknown fields and fields
// spelled in another case are errors.
func decodeStrict(doc []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strictErrs, err := kjson.UnmarshalStrict(j, v, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

// decodeObject decodes one manifest strictly into the Go type of its kind.
// FlinkDeployments are checked against the operator's CRD schema instead.
func decodeObject(doc []byte) (object, error) {
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return object{}, err
	}
	obj := object{APIVersion: meta.APIVersion, Kind: meta.Kind, Name: meta.Metadata.Name}
	key := meta.APIVersion + "/" + meta.Kind
	var v any
	switch key {
	case "v1/Namespace":
		v = &corev1.Namespace{}
	case "v1/ServiceAccount":
		v = &corev1.ServiceAccount{}
	case "v1/Service":
		v = &corev1.Service{}
	case "v1/ConfigMap":
		v = &corev1.ConfigMap{}
	case "v1/Secret":
		v = &corev1.Secret{}
	case "v1/Pod":
		v = &corev1.Pod{}
	case "apps/v1/StatefulSet":
		v = &appsv1.StatefulSet{}
	case "apps/v1/Deployment":
		v = &appsv1.Deployment{}
	case "policy/v1/PodDisruptionBudget":
		v = &policyv1.PodDisruptionBudget{}
	case "networking.k8s.io/v1/NetworkPolicy":
		v = &networkingv1.NetworkPolicy{}
	case "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
		v = &rbacv1.ClusterRoleBinding{}
	case "rbac.authorization.k8s.io/v1/ClusterRole":
		v = &rbacv1.ClusterRole{}
	case "rbac.authorization.k8s.io/v1/Role":
		v = &rbacv1.Role{}
	case "rbac.authorization.k8s.io/v1/RoleBinding":
		v = &rbacv1.RoleBinding{}
	case "monitoring.coreos.com/v1/PrometheusRule":
		v = &prometheusRule{}
	case "monitoring.coreos.com/v1/ServiceMonitor":
		v = &serviceMonitor{}
	case "flink.apache.org/v1beta1/FlinkDeployment":
		fd, err := decodeFlinkDeployment(doc)
		if err != nil {
			return obj, fmt.Errorf("FlinkDeployment %q: %w", obj.Name, err)
		}
		obj.Value = fd
		return obj, nil
	default:
		return obj, fmt.Errorf("%w %q", errUnknownKind, key)
	}
	if err := decodeStrict(doc, v); err != nil {
		return obj, fmt.Errorf("%s %q: %w", meta.Kind, obj.Name, err)
	}
	obj.Value = v
	return obj, nil
}

// decodeAll decodes every manifest of a YAML stream strictly by kind.
func decodeAll(data []byte) ([]object, error) {
	docs, err := splitDocuments(data)
	if err != nil {
		return nil, err
	}
	var objs []object
	for _, doc := range docs {
		obj, err := decodeObject(doc)
		if err != nil {
			return nil, err
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// mustDecodeFile decodes every manifest of one file, failing the test on any
// error.
func mustDecodeFile(t testing.TB, path string) []object {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read manifest: %v", err)
	}
	objs, err := decodeAll(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return objs
}

// only returns the single object of type T among objs, failing otherwise.
func only[T any](t testing.TB, objs []object) T {
	t.Helper()
	var found []T
	for _, o := range objs {
		if v, ok := o.Value.(T); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want exactly one %T, found %d", zero, len(found))
	}
	return found[0]
}

func TestStrictDecodingRejectsWhatTheAPIServerWould(t *testing.T) {
	good, err := os.ReadFile("kubernetes/statefulset.yaml")
	if err != nil {
		t.Fatalf("read statefulset: %v", err)
	}
	tests := []struct {
		name    string
		doc     string
		wantErr bool
	}{
		{"the shipped StatefulSet decodes", string(good), false},
		{"a misspelled field is refused", strings.Replace(string(good), "readOnlyRootFilesystem", "readOnlyRootFilesytem", 1), true},
		{"a field in the wrong case is refused", strings.Replace(string(good), "readOnlyRootFilesystem", "readOnlyRootFileSystem", 1), true},
		{"a duplicate key is refused", strings.Replace(string(good), "  replicas: 1\n", "  replicas: 1\n  replicas: 2\n", 1), true},
		{"a wrong value type is refused", strings.Replace(string(good), "  replicas: 1\n", "  replicas: one\n", 1), true},
		{"an unknown kind is refused", "apiVersion: v1\nkind: Pod2\nmetadata: {name: x}\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.doc == string(good) && tt.wantErr {
				t.Fatal("test input was not changed: the replaced text is missing from statefulset.yaml")
			}
			_, err := decodeObject([]byte(tt.doc))
			if (err != nil) != tt.wantErr {
				t.Fatalf("decode error = %v, want error: %v", err, tt.wantErr)
			}
		})
	}
}
