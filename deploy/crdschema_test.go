package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// crdPath is the Flink Kubernetes operator's FlinkDeployment CRD, shared
// test data beside the repository.
const crdPath = "../../shared/testdata/flink-kubernetes-operator/flinkdeployments.flink.apache.org-v1.yml"

// Schema violations, matched with errors.Is.
var (
	errUnknownField    = errors.New("unknown field")
	errWrongType       = errors.New("wrong type")
	errNotInEnum       = errors.New("value not in enum")
	errMissingRequired = errors.New("required field missing")
	errNullValue       = errors.New("null value")
	errNoAnyOfMatch    = errors.New("value matches no anyOf branch")
	errBadSchema       = errors.New("schema node without a type")
)

// schema is the subset of an OpenAPI v3 structural schema that the
// FlinkDeployment CRD uses. The CRD is decoded into it strictly, so a CRD
// that starts using a keyword this checker does not implement fails loudly
// instead of being checked loosely.
type schema struct {
	Type                 string             `json:"type,omitempty"`
	Properties           map[string]*schema `json:"properties,omitempty"`
	Items                *schema            `json:"items,omitempty"`
	AdditionalProperties *schema            `json:"additionalProperties,omitempty"`
	AnyOf                []*schema          `json:"anyOf,omitempty"`
	Enum                 []any              `json:"enum,omitempty"`
	Required             []string           `json:"required,omitempty"`
	IntOrString          bool               `json:"x-kubernetes-int-or-string,omitempty"`
	PreserveUnknown      bool               `json:"x-kubernetes-preserve-unknown-fields,omitempty"`
}

// validate returns every violation of v against s, joined. Like the API
// server with strict field validation, it refuses fields the schema does not
// declare unless x-kubernetes-preserve-unknown-fields allows them.
func (s *schema) validate(path string, v any) error {
	if v == nil {
		return fmt.Errorf("%s: %w", path, errNullValue)
	}
	if s.IntOrString {
		if isInteger(v) || isString(v) {
			return nil
		}
		return fmt.Errorf("%s: %w: want integer or string, got %T", path, errWrongType, v)
	}
	if len(s.AnyOf) > 0 && !s.anyOfMatches(path, v) {
		return fmt.Errorf("%s: %w", path, errNoAnyOfMatch)
	}
	switch s.Type {
	case "object":
		return s.validateObject(path, v)
	case "array":
		arr, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: %w: want array, got %T", path, errWrongType, v)
		}
		var errs []error
		for i, item := range arr {
			if s.Items != nil {
				errs = append(errs, s.Items.validate(fmt.Sprintf("%s[%d]", path, i), item))
			}
		}
		return errors.Join(errs...)
	case "string":
		if !isString(v) {
			return fmt.Errorf("%s: %w: want string, got %T", path, errWrongType, v)
		}
	case "integer":
		if !isInteger(v) {
			return fmt.Errorf("%s: %w: want integer, got %v", path, errWrongType, v)
		}
	case "number":
		if _, ok := v.(json.Number); !ok {
			return fmt.Errorf("%s: %w: want number, got %T", path, errWrongType, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: %w: want boolean, got %T", path, errWrongType, v)
		}
	case "":
		if s.PreserveUnknown {
			return nil
		}
		return fmt.Errorf("%s: %w", path, errBadSchema)
	default:
		return fmt.Errorf("%s: %w: unsupported type %q", path, errBadSchema, s.Type)
	}
	return s.checkEnum(path, v)
}

func (s *schema) validateObject(path string, v any) error {
	obj, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: %w: want object, got %T", path, errWrongType, v)
	}
	var errs []error
	for _, key := range sortedKeys(obj) {
		child := path + "." + key
		switch {
		case s.Properties[key] != nil:
			errs = append(errs, s.Properties[key].validate(child, obj[key]))
		case s.AdditionalProperties != nil:
			errs = append(errs, s.AdditionalProperties.validate(child, obj[key]))
		case s.PreserveUnknown:
		default:
			errs = append(errs, fmt.Errorf("%s: %w", child, errUnknownField))
		}
	}
	for _, req := range s.Required {
		if _, ok := obj[req]; !ok {
			errs = append(errs, fmt.Errorf("%s.%s: %w", path, req, errMissingRequired))
		}
	}
	return errors.Join(errs...)
}

func (s *schema) anyOfMatches(path string, v any) bool {
	for _, branch := range s.AnyOf {
		if branch.validate(path, v) == nil {
			return true
		}
	}
	return false
}

func (s *schema) checkEnum(path string, v any) error {
	if len(s.Enum) == 0 {
		return nil
	}
	for _, e := range s.Enum {
		if fmt.Sprintf("%T:%v", e, e) == fmt.Sprintf("%T:%v", v, v) {
			return nil
		}
	}
	return fmt.Errorf("%s: %w: %v (allowed: %v)", path, errNotInEnum, v, s.Enum)
}

func isString(v any) bool { _, ok := v.(string); return ok }

func isInteger(v any) bool {
	n, ok := v.(json.Number)
	if !ok {
		return false
	}
	_, err := n.Int64()
	return err == nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// flinkDeploymentSchema loads the v1beta1 openAPIV3Schema of the operator's
// CRD once per test binary.
var flinkDeploymentSchema = sync.OnceValues(func() (*schema, error) {
	data, err := os.ReadFile(crdPath)
	if err != nil {
		return nil, fmt.Errorf("the FlinkDeployment CRD is missing (expected at %s, copied from apache/flink-kubernetes-operator): %w", crdPath, err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Name   string `json:"name"`
				Schema struct {
					OpenAPIV3Schema json.RawMessage `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &crd); err != nil {
		return nil, fmt.Errorf("parse %s: %w", crdPath, err)
	}
	for _, v := range crd.Spec.Versions {
		if v.Name != "v1beta1" {
			continue
		}
		var s schema
		strictErrs, err := kjson.UnmarshalStrict(v.Schema.OpenAPIV3Schema, &s, kjson.DisallowUnknownFields)
		if err = errors.Join(append(strictErrs, err)...); err != nil {
			return nil, fmt.Errorf("the CRD schema uses keywords this checker does not implement: %w", err)
		}
		return &s, nil
	}
	return nil, fmt.Errorf("%s has no v1beta1 version", crdPath)
})

// flinkDeployment is a FlinkDeployment decoded generically (numbers kept as
// json.Number), after it passed the CRD schema.
type flinkDeployment map[string]any

// decodeFlinkDeployment validates one FlinkDeployment document against the
// CRD schema and returns it. The root's apiVersion, kind and metadata are
// checked as the API server does for every custom resource: metadata as an
// ObjectMeta, strictly.
func decodeFlinkDeployment(doc []byte) (flinkDeployment, error) {
	s, err := flinkDeploymentSchema()
	if err != nil {
		return nil, err
	}
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	if obj["apiVersion"] != "flink.apache.org/v1beta1" || obj["kind"] != "FlinkDeployment" {
		return nil, fmt.Errorf("%w: want flink.apache.org/v1beta1 FlinkDeployment, got %v %v", errWrongType, obj["apiVersion"], obj["kind"])
	}
	meta, err := json.Marshal(obj["metadata"])
	if err != nil {
		return nil, err
	}
	var om metav1.ObjectMeta
	strictErrs, err := kjson.UnmarshalStrict(meta, &om, kjson.DisallowUnknownFields)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w: %w", errWrongType, err)
	}
	if len(strictErrs) > 0 {
		return nil, fmt.Errorf("metadata: %w: %w", errUnknownField, errors.Join(strictErrs...))
	}
	rest := make(map[string]any, len(obj))
	for k, v := range obj {
		if k != "apiVersion" && k != "kind" && k != "metadata" {
			rest[k] = v
		}
	}
	if err := s.validate("", rest); err != nil {
		return nil, err
	}
	return flinkDeployment(obj), nil
}

func TestSchemaCheckerCatchesWhatTheCRDForbids(t *testing.T) {
	base := `apiVersion: flink.apache.org/v1beta1
kind: FlinkDeployment
metadata:
  name: probe
spec:
  mode: standalone
  flinkVersion: v2_2
  serviceAccount: probe
  flinkConfiguration:
    security.ssl: {internal: {enabled: true}}
  podTemplate:
    spec:
      containers:
        - name: flink-main-container
          resources:
            limits: {memory: 1Gi, cpu: 2}
          ports:
            - containerPort: 8081
  job:
    parallelism: 2
`
	tests := []struct {
		name    string
		from    string
		to      string
		wantErr error
	}{
		{"a valid document passes, with int-or-string and free-form flinkConfiguration", "", "", nil},
		{"an unknown spec field is refused", "  mode: standalone\n", "  mode: standalone\n  replicas: 2\n", errUnknownField},
		{"an unknown field deep in the pod template is refused", "          ports:\n", "          portz:\n", errUnknownField},
		{"a mode outside the enum is refused", "mode: standalone", "mode: hybrid", errNotInEnum},
		{"a flinkVersion outside the enum is refused", "flinkVersion: v2_2", "flinkVersion: v9_9", errNotInEnum},
		{"a string where an integer belongs is refused", "parallelism: 2", "parallelism: two", errWrongType},
		{"a fraction where an integer belongs is refused", "containerPort: 8081", "containerPort: 80.5", errWrongType},
		{"a boolean where an int-or-string belongs is refused", "cpu: 2}", "cpu: true}", errWrongType},
		{"a null value is refused", "serviceAccount: probe", "serviceAccount: null", errNullValue},
		{"an unknown metadata field is refused", "  name: probe\n", "  name: probe\n  nam: probe\n", errUnknownField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := base
			if tt.from != "" {
				if !bytes.Contains([]byte(base), []byte(tt.from)) {
					t.Fatalf("test input %q is not in the base document", tt.from)
				}
				doc = string(bytes.Replace([]byte(base), []byte(tt.from), []byte(tt.to), 1))
			}
			_, err := decodeFlinkDeployment([]byte(doc))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("valid document refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestSchemaCheckerRefusesKeywordsItDoesNotImplement(t *testing.T) {
	var s schema
	strictErrs, err := kjson.UnmarshalStrict([]byte(`{"type":"string","pattern":"^a$"}`), &s, kjson.DisallowUnknownFields)
	if err == nil && len(strictErrs) == 0 {
		t.Fatal("a schema with the unimplemented keyword pattern was accepted")
	}
}
