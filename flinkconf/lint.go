package flinkconf

import (
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
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
	RuleProtocol            = "FP006" // TLS protocol below TLSv1.2, or one Flink cannot hand to the JDK
	RuleServiceAccount      = "FP007" // default or missing service account
	RuleHostNetwork         = "FP008" // hostNetwork in a pod template
	RuleStoresFromSecrets   = "FP009" // keystores mounted from a Kubernetes Secret
	RuleInitWiring          = "FP010" // the flinkpki init container's output does not reach Flink
	RuleTemplateMerge       = "FP011" // pod templates merged by position
	RuleFingerprintPinning  = "FP012" // peer leaves pinned by fingerprint instead of trusted by CA
	RuleTokenExposed        = "FP013" // the token flinkpki enrolls with is mounted where job code runs
	RuleSSLProvider         = "FP014" // an SSL provider Flink cannot load
	RuleRPCQuoting          = "FP015" // an internal store path or password Flink's RPC configuration cannot hold
	RuleNullValue           = "FP016" // a null value, which makes Flink refuse the whole config.yaml
	RuleSSLStores           = "FP017" // SSL turned on without the stores Flink needs, so it fails at start
	RuleDuplicateKey        = "FP018" // a key written twice in one mapping, which makes Flink refuse the whole config.yaml
	RuleTransportSSL        = "FP019" // TLS turned off for the RPC, the blob server or the data plane while internal SSL is on
	RulePublicTruststore    = "FP020" // a truststore that is the JDK's or the system's public CA bundle
	RuleStartupProbe        = "FP021" // REST on loopback while the operator's JobManager startup probe calls it on the pod IP
	RuleTaskManagerAccount  = "FP022" // TaskManagers enroll with the JobManager's service account
)

// ruleSummaries is what each rule checks, in one line, in rule order: the
// one list of the rules, for --ignore and for lint's help.
var ruleSummaries = []struct{ id, summary string }{
	{RuleInternalSSL, "internal SSL (RPC, blob server, data plane) off or not configured"},
	{RuleRESTUnauthenticated, "REST reachable beyond loopback without client authentication that works"},
	{RuleNativeMode, "native mode, whose JobManager can create pods: job code gets that right (warning)"},
	{RuleInlinePassword, "store passwords written into the configuration or a pod template's env"},
	{RuleCipherSuites, "cipher suites missing, without forward secrecy, unknown to JDK 17 or not matching the key type"},
	{RuleProtocol, "a TLS protocol below TLSv1.2, or one Flink cannot hand to the JDK"},
	{RuleServiceAccount, "the default service account, none, or one the operator's chart shares (warning)"},
	{RuleHostNetwork, "hostNetwork in a pod template"},
	{RuleStoresFromSecrets, "keystores or truststores mounted from a Kubernetes Secret, not made in the pod"},
	{RuleInitWiring, "the flinkpki init container's files, copy or user do not reach flink-main-container"},
	{RuleTemplateMerge, "pod templates the operator would merge by position (warning)"},
	{RuleFingerprintPinning, "peer certificates pinned by fingerprint instead of trusted by CA"},
	{RuleTokenExposed, "the token init enrolls with is mounted where job code runs (warning)"},
	{RuleSSLProvider, "an SSL provider Flink cannot load (OPENSSL, which needs netty-tcnative, a warning)"},
	{RuleRPCQuoting, "a quote, backslash or control character in an internal store path, password or type"},
	{RuleNullValue, "a null value, which makes Flink refuse the whole config.yaml"},
	{RuleSSLStores, "SSL on without the stores Flink needs at start, or a store type JDK 17 does not offer (warning)"},
	{RuleDuplicateKey, "a key written twice in one mapping, which makes Flink refuse the whole config.yaml"},
	{RuleTransportSSL, "TLS turned off for the RPC, the blob server or the data plane while internal SSL is on"},
	{RulePublicTruststore, "a truststore that is the JDK's or the system's public CA bundle"},
	{RuleStartupProbe, "REST kept on loopback while the operator's JobManager startup probe, which calls it on the pod IP, is on"},
	{RuleTaskManagerAccount, "TaskManagers, which run job code, enrolling with the JobManager's service account (warning)"},
}

// Rules lists every rule id, in order.
func Rules() []string {
	ids := make([]string, len(ruleSummaries))
	for i, r := range ruleSummaries {
		ids[i] = r.id
	}
	return ids
}

// RuleList is every rule id with what it checks, one per line, for help.
func RuleList() string {
	var b strings.Builder
	for _, r := range ruleSummaries {
		fmt.Fprintf(&b, "  %s  %s\n", r.id, r.summary)
	}
	return b.String()
}

// ErrLintInput is returned when the file given to Lint is neither a
// FlinkDeployment manifest nor a Flink configuration file.
var ErrLintInput = errors.New("flink lint cannot check this file")

// nothingToLintError is the ErrLintInput of input without a key: no YAML
// document, or documents of comments or an empty mapping. Its message is
// the sentence alone.
type nothingToLintError struct{ name string }

func (e nothingToLintError) Error() string {
	return "no FlinkDeployment or Flink configuration keys in " + e.name
}

// Is makes the error an ErrLintInput.
func (e nothingToLintError) Is(target error) bool { return target == ErrLintInput }

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
	// FlinkMajor is the Flink major version (1 or 2) the configuration is
	// for, when the input does not say: a FlinkDeployment's
	// spec.flinkVersion does, and a legacy flink-conf.yaml is read by Flink
	// 1.x only. 0 means unknown: the configuration is then held to Flink
	// 1.x and 2.x alike, and a finding that holds on one of them only says
	// so (everyVersion).
	FlinkMajor int
	// PodLocalCopy marks a configuration file that flinkpki init (or bake)
	// wrote as its merged copy (IsPodLocalCopy): the store passwords belong
	// there, so FP004 says nothing about them.
	PodLocalCopy bool
}

// legacySSLSwitch reports whether Flink of the given major version reads
// security.ssl.enabled as the fallback of security.ssl.internal.enabled and
// security.ssl.rest.enabled. Flink 1.x does (SecurityOptions.
// isInternalSSLEnabled); Flink 2.0 removed the key, so a configuration that
// sets only it runs without internal SSL. The Flink interop suite checks
// this against each version's own SecurityOptions.
func legacySSLSwitch(major int) bool { return major == 1 }

// readsLegacyConf reports whether Flink of the given major version reads a
// legacy flink-conf.yaml. Flink 2.0 reads config.yaml only.
func readsLegacyConf(major int) bool { return major == 1 }

// ParseFlinkVersion returns the major version of a Flink version written
// as Flink does (1.20, 2.2.1) or as the operator's spec.flinkVersion does
// (v1_20, v2_2).
func ParseFlinkVersion(v string) (int, error) {
	s := strings.TrimPrefix(strings.TrimSpace(v), "v")
	head, _, _ := strings.Cut(strings.ReplaceAll(s, "_", "."), ".")
	switch head {
	case "1":
		return 1, nil
	case "2":
		return 2, nil
	}
	return 0, fmt.Errorf("flink version %q: want a Flink 1.x or 2.x version such as 1.20 or 2.2 (or the operator's v2_2)", v)
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
		s := &subjects[i]
		if s.major == 0 || (s.legacy && opts.FlinkMajor != 0) {
			s.major = opts.FlinkMajor
		}
		s.initConf = s.initWritesConf()
		for _, r := range rules {
			if s.major != 0 || r.ownsUnknownVersion {
				findings = append(findings, r.check(s, opts)...)
				continue
			}
			findings = append(findings, everyVersion(s, r.check, opts)...)
		}
	}
	return findings, nil
}

// everyVersion runs a rule on a subject whose Flink version lint does not
// know under the semantics of each major version Flink has, and reports
// the union: a finding both versions give once, as it is, and one only a
// version gives once, saying so. Holding the file to only one version
// would miss what the other one breaks, since the versions read
// security.ssl.enabled differently (legacySSLSwitch): with internal SSL on
// only through it, Flink 1.x runs TLS with the shared stores, and fails on
// what Flink 2, which runs none, never reads.
func everyVersion(s *subject, check rule, opts LintOptions) []Finding {
	v1, v2 := *s, *s
	v1.major, v2.major = 1, 2
	on1, on2 := check(&v1, opts), check(&v2, opts)
	var out []Finding
	for _, f := range on1 {
		// The same rule at the same severity on both is one finding, even
		// where the versions fail it for different reasons.
		i := slices.IndexFunc(on2, func(g Finding) bool { return g.Rule == f.Rule && g.Severity == f.Severity })
		if i < 0 {
			out = append(out, s.onlyOn(f, 1))
			continue
		}
		g := on2[i]
		on2 = slices.Delete(on2, i, i+1)
		if g.Message != f.Message {
			f.Message = fmt.Sprintf("on Flink 1.x, %s; on Flink 2.x, %s", f.Message, g.Message)
		}
		if g.Fix != f.Fix {
			f.Fix = fmt.Sprintf("on Flink 1.x, %s; on Flink 2.x, %s", f.Fix, g.Fix)
		}
		out = append(out, f)
	}
	for _, f := range on2 {
		out = append(out, s.onlyOn(f, 2))
	}
	return out
}

// onlyOn marks a finding that holds on one major version of Flink only,
// and says how to lint for the version that runs.
func (s *subject) onlyOn(f Finding, major int) Finding {
	narrow := "--flink-version"
	if s.deployment != nil {
		narrow = "spec.flinkVersion"
	}
	f.Message += fmt.Sprintf(" (on Flink %d.x only; the Flink version is unknown, so lint checks 1.x and 2.x: %s names the one that runs)", major, narrow)
	return f
}

// subject is one thing being linted: a FlinkDeployment or a config file.
type subject struct {
	label      string            // names it in messages
	conf       map[string]string // flattened configuration, last value wins
	deployment *deploymentInfo   // nil for plain configuration files
	// major is the Flink major version the subject is for, 0 when unknown.
	major int
	// legacy marks a flink-conf.yaml read line by line.
	legacy bool
	// nulls are the keys of a config.yaml set to null, dups those written
	// twice in one mapping.
	nulls, dups []string
	// initConf marks a FlinkDeployment whose every Flink process runs a
	// flinkpki init container for internal TLS with --flink-conf-out
	// (initWritesConf): Flink reads that copy, in which internal SSL is on,
	// with a protocol and suites matched to the key, and without the keys
	// that would undo it. FP010 checks that Flink does read it.
	initConf bool
}

// get returns the first of keys that is set, which models Flink's fallback
// keys (e.g. security.ssl.keystore behind security.ssl.internal.keystore).
func (s *subject) get(keys ...string) (string, bool) {
	_, v, ok := s.lookup(keys...)
	return v, ok
}

// lookup is get that also says which key was set.
func (s *subject) lookup(keys ...string) (key, value string, ok bool) {
	for _, k := range keys {
		if v, ok := s.conf[k]; ok {
			return k, v, true
		}
	}
	return "", "", false
}

func (s *subject) isTrue(keys ...string) bool {
	v, _ := s.get(keys...)
	return isTrueValue(v)
}

func isTrueValue(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "true") }

// restSSL reports whether the subject turns REST SSL on for its Flink
// version: through security.ssl.rest.enabled, or on Flink 1.x through its
// fallback security.ssl.enabled. With the version unknown only the key
// every version reads counts; but a rule that does not read an unknown
// version itself sees each known one in turn (everyVersion).
func (s *subject) restSSL() bool { return s.sslSwitch("security.ssl.rest.enabled", false) }

// internalSSL reports whether the subject turns internal SSL on for its
// Flink version (see checkInternalSSL).
func (s *subject) internalSSL() bool { return s.sslSwitch("security.ssl.internal.enabled", false) }

// sslSwitch reports whether key (security.ssl.internal.enabled or
// security.ssl.rest.enabled) turns SSL on: key itself when it is set, else,
// on Flink 1.x, its fallback security.ssl.enabled, which Flink 2 does not
// read. unknownAs1 applies the fallback when the version is unknown too,
// for a rule that reads an unknown version itself (FP017) and must hold on
// every version.
func (s *subject) sslSwitch(key string, unknownAs1 bool) bool {
	if key == "security.ssl.internal.enabled" && s.initConf {
		return true // the init container's copy sets it
	}
	if v, set := s.get(key); set {
		return isTrueValue(v)
	}
	if legacySSLSwitch(s.major) || (unknownAs1 && s.major == 0) {
		return s.isTrue("security.ssl.enabled")
	}
	return false
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
	if base != ConfigYAML && blankOrComments(data) {
		return nil, nothingToLintError{filename}
	}
	docs, err := parseDocuments(data)
	if err != nil {
		if strings.Contains(string(data), "FlinkDeployment") {
			return nil, fmt.Errorf("%w: %s is not valid YAML: %v", ErrLintInput, filename, err)
		}
		// Flink 1.19+ reads config.yaml with a YAML parser and refuses to
		// start on an error, so a broken config.yaml is the finding, not a
		// legacy file to read line by line (whose rules would then lint
		// what Flink never loads). A file of another name may be a legacy
		// one, which Flink 1.x reads line by line whatever YAML makes of it.
		if base == ConfigYAML {
			return nil, fmt.Errorf("%w: %s is not valid YAML, and Flink refuses to load it: %v", ErrLintInput, filename, err)
		}
		if kvs := ParseLegacy(data); len(kvs) > 0 {
			return []subject{legacySubject(data, base)}, nil
		}
		return nil, fmt.Errorf("%w: %s is neither valid YAML nor flink-conf.yaml lines: %v", ErrLintInput, filename, err)
	}
	if base != ConfigYAML {
		// A "---" with nothing after it is a document of null: nothing.
		docs = slices.DeleteFunc(docs, func(d *yaml.Node) bool { return d.Kind == yaml.ScalarNode && d.ShortTag() == "!!null" })
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
	var flat flatConfig
	if len(docs) == 1 {
		if flat, err = flattenConfig(docs[0]); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrLintInput, filename, err)
		}
	}
	if base != ConfigYAML && len(flat.kvs) == 0 {
		// Nothing at all (an empty stdin, comments): linted, it would draw
		// the findings of Flink's defaults, for a file that is no Flink's.
		// A config.yaml is Flink's by its name, and Flink starts on an
		// empty one.
		return nil, nothingToLintError{filename}
	}
	if base != ConfigYAML && !slices.ContainsFunc(flat.kvs, func(kv KV) bool { return isFlinkKey(kv.Key) }) {
		// An Envoy or Prometheus file linted by mistake would otherwise
		// draw Flink findings that mean nothing for it.
		return nil, fmt.Errorf("%w: %s sets none of the keys Flink reads (jobmanager.*, taskmanager.*, security.*, rest.* ...): lint a Flink config.yaml, a flink-conf.yaml or a FlinkDeployment", ErrLintInput, filename)
	}
	return []subject{{label: base, conf: confMap(flat.kvs), nulls: flat.nulls, dups: flat.dups}}, nil
}

// blankOrComments reports whether every line of data is blank (tabs
// included, which YAML refuses as indentation) or a comment.
func blankOrComments(data []byte) bool {
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			return false
		}
	}
	return true
}

// flinkKeyRoots are the first segments of Flink's configuration keys (its
// ConfigOptions across 1.x and 2.x, the Kubernetes operator's included).
var flinkKeyRoots = []string{
	"akka", "blob", "classloader", "cluster", "containerized", "env", "execution", "fs", "heartbeat",
	"high-availability", "historyserver", "io", "jobmanager", "jobstore", "kubernetes", "metrics",
	"parallelism", "pekko", "pipeline", "process", "python", "queryable-state", "resourcemanager",
	"rest", "restart-strategy", "s3", "security", "slot", "slotmanager", "sql-gateway", "state",
	"table", "taskmanager", "web", "yarn", "zookeeper",
}

func isFlinkKey(k string) bool {
	root, _, _ := strings.Cut(k, ".")
	return slices.Contains(flinkKeyRoots, root)
}

func legacySubject(data []byte, base string) subject {
	return subject{label: base, conf: confMap(ParseLegacy(data)), major: 1, legacy: true}
}
