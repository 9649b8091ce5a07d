package flinkconf

import (
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// Severities of a Finding.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
)

// Rule ids. They are stable: scripts and suppressions refer to them.
const (
	RuleInternalSSL         = "FP001" // internal SSL disabled or not configured
	RuleRESTUnauthenticated = "FP002" // REST reachable without authentication
	RuleNativeMode          = "FP003" // native mode gives job code pod-creation rights
	RuleInlinePassword      = "FP004" // store passwords written into the configuration
	RuleCipherSuites        = "FP005" // cipher suites missing, RSA key exchange or mismatched
	RuleProtocol            = "FP006" // TLS protocol below TLSv1.2
	RuleServiceAccount      = "FP007" // default or missing service account
	RuleHostNetwork         = "FP008" // hostNetwork in a pod template
	RuleStoresFromSecrets   = "FP009" // keystores mounted from a Kubernetes Secret
)

// ErrLintInput is returned when the file given to Lint is neither a
// FlinkDeployment manifest nor a Flink configuration file.
var ErrLintInput = errors.New("unrecognised flink lint input")

// Finding is one failed security recommendation.
type Finding struct {
	Rule     string // stable id, e.g. "FP001"
	Severity string // SeverityError or SeverityWarning
	Message  string // what is wrong, naming the object it is wrong in
	Fix      string // what to change
}

// String renders the finding as one line: "RULE severity: message (fix: ...)".
func (f Finding) String() string {
	return fmt.Sprintf("%s %s: %s (fix: %s)", f.Rule, f.Severity, f.Message, f.Fix)
}

// HasErrors reports whether any finding has error severity, which is what
// makes `flinkpki flink lint` exit 1.
func HasErrors(findings []Finding) bool {
	for _, f := range findings {
		if f.Severity == SeverityError {
			return true
		}
	}
	return false
}

// LintOptions carries facts the file itself does not state.
type LintOptions struct {
	// KeyAlgorithm is the cluster's key type when known (x509.ECDSA or
	// x509.RSA); cipher suites are then checked against it.
	KeyAlgorithm x509.PublicKeyAlgorithm
}

// Lint checks a FlinkDeployment manifest (one or more YAML documents), a
// Flink config.yaml or a legacy flink-conf.yaml against flinkpki's security
// recommendations. The kind is detected from the content; the file name
// only marks a legacy flink-conf.yaml, which is parsed line by line like
// Flink does. It returns an error only when the input cannot be read.
func Lint(data []byte, filename string) ([]Finding, error) {
	return LintWith(data, filename, LintOptions{})
}

// LintWith is Lint with facts about the cluster supplied by the caller.
func LintWith(data []byte, filename string, opts LintOptions) ([]Finding, error) {
	subjects, err := readSubjects(data, filename)
	if err != nil {
		return nil, err
	}
	var findings []Finding
	for i := range subjects {
		for _, r := range rules {
			findings = append(findings, r(&subjects[i], opts)...)
		}
	}
	return findings, nil
}

// subject is one thing being linted: a FlinkDeployment or a config file.
type subject struct {
	label      string            // names it in messages
	conf       map[string]string // flattened configuration, last value wins
	deployment *deploymentInfo   // nil for plain configuration files
}

// get returns the first of keys that is set, which models Flink's fallback
// keys (e.g. security.ssl.enabled behind security.ssl.internal.enabled).
func (s *subject) get(keys ...string) (string, bool) {
	for _, k := range keys {
		if v, ok := s.conf[k]; ok {
			return v, true
		}
	}
	return "", false
}

func (s *subject) isTrue(keys ...string) bool {
	v, _ := s.get(keys...)
	return strings.EqualFold(strings.TrimSpace(v), "true")
}

func confMap(kvs []KV) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

// readSubjects detects the kind of input and reads it.
func readSubjects(data []byte, filename string) ([]subject, error) {
	base := filepath.Base(filename)
	if base == LegacyYAML {
		return []subject{legacySubject(data, base)}, nil
	}
	docs, err := parseDocuments(data)
	if err != nil {
		if strings.Contains(string(data), "FlinkDeployment") {
			return nil, fmt.Errorf("%w: %s is not valid YAML: %v", ErrLintInput, filename, err)
		}
		if kvs := ParseLegacy(data); len(kvs) > 0 {
			return []subject{legacySubject(data, base)}, nil
		}
		return nil, fmt.Errorf("%w: %s is neither valid YAML nor flink-conf.yaml lines: %v", ErrLintInput, filename, err)
	}
	if deployments, err := readDeployments(docs, filename); err != nil || len(deployments) > 0 {
		return deployments, err
	}
	for _, d := range docs {
		if kind := scalarAt(d, "kind"); kind != "" && scalarAt(d, "apiVersion") != "" {
			return nil, fmt.Errorf("%w: %s holds a Kubernetes %s but no FlinkDeployment: lint the FlinkDeployment manifest or a Flink config.yaml", ErrLintInput, filename, kind)
		}
	}
	if len(docs) > 1 {
		return nil, fmt.Errorf("%w: %s holds %d YAML documents, but a Flink config.yaml holds one", ErrLintInput, filename, len(docs))
	}
	var kvs []KV
	if len(docs) == 1 {
		if kvs, err = Flatten(docs[0]); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrLintInput, filename, err)
		}
	}
	return []subject{{label: base, conf: confMap(kvs)}}, nil
}

func legacySubject(data []byte, base string) subject {
	return subject{label: base, conf: confMap(ParseLegacy(data))}
}
