package flinkconf

import (
	"crypto/x509"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// rule checks one recommendation. It returns at most one finding per
// subject, or per part of it (a kind of Flink process, the configuration
// and the pod templates).
type rule func(s *subject, opts LintOptions) []Finding

// rules run in id order, so output is stable. A rule runs once per
// subject, but on a subject whose Flink version is unknown once under each
// major version (everyVersion), unless ownsUnknownVersion: such a rule
// reads an unknown version itself, in messages that say what each version
// does with the file.
var rules = []struct {
	check              rule
	ownsUnknownVersion bool
}{
	{checkInternalSSL, true},
	{checkRESTAuth, false},
	{checkNativeMode, false},
	{checkInlinePasswords, false},
	{checkCipherSuites, false},
	{checkProtocol, false},
	{checkServiceAccount, false},
	{checkHostNetwork, false},
	{checkStoresFromSecrets, false},
	{checkInitWiring, false},
	{checkTemplateMerge, false},
	{checkFingerprintPinning, false},
	{checkTokenExposed, false},
	{checkSSLProvider, false},
	{checkRPCQuoting, false},
	{checkUnloadable, false},
	{checkSSLStores, true},
	{checkTransportSSL, false},
	{checkPublicTruststore, false},
	{checkStartupProbe, false},
	{checkTaskManagerAccount, false},
}

// checkUnloadable finds what makes Flink refuse to load a whole
// config.yaml (see flatConfig), so that no process starts: keys set to
// null, and keys written twice in one mapping. The operator writes a
// FlinkDeployment's configuration itself, so only files are read.
func checkUnloadable(s *subject, _ LintOptions) []Finding {
	var out []Finding
	if len(s.nulls) > 0 {
		out = append(out, one(RuleNullValue, SeverityError,
			fmt.Sprintf("%s sets %s to null (nothing after the colon, ~ or null): Flink refuses to load a config.yaml with a null value (\"Error parsing YAML configuration\", \"Value must not be null\"), so every process fails at start", s.label, keyList(s.nulls)),
			"give each a value (\"\" for an empty one) or delete it")...)
	}
	if len(s.dups) > 0 {
		out = append(out, one(RuleDuplicateKey, SeverityError,
			fmt.Sprintf("%s writes %s twice in one mapping: Flink refuses to load a config.yaml with a duplicate key (\"found duplicate key\"), so every process fails at start", s.label, keyList(s.dups)),
			"keep one of each (two blocks of one key, such as two security: blocks, are duplicates too: join them)")...)
	}
	return out
}

// keyList names up to three keys, and how many more there are.
func keyList(keys []string) string {
	if len(keys) <= 3 {
		return strings.Join(keys, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(keys[:3], ", "), len(keys)-3)
}

const fixConfig = "`flinkpki flink config --cluster NAME --role ROLE` prints the block"

func one(id, severity, message, fix string) []Finding {
	return []Finding{{Rule: id, Severity: severity, Message: message, Fix: fix}}
}

func checkInternalSSL(s *subject, _ LintOptions) []Finding {
	const fix = "set security.ssl.internal.enabled: true with stores from flinkpki; " + fixConfig
	if s.legacy && !readsLegacyConf(s.major) {
		return one(RuleInternalSSL, SeverityError,
			fmt.Sprintf("%s is a legacy flink-conf.yaml, which Flink 2 does not read (it reads config.yaml, in standard YAML): none of its settings apply, internal SSL included", s.label),
			"move the settings to config.yaml (Flink 1.19 and later ship bin/migrate-config-file.sh for that); "+fix)
	}
	v, set := s.get("security.ssl.internal.enabled")
	if s.initConf {
		if set && !isTrueValue(v) {
			// Harmless as it runs, but a configuration that says the
			// opposite of what runs misleads every reader: refused.
			return one(RuleInternalSSL, SeverityError,
				fmt.Sprintf("%s disables internal SSL (security.ssl.internal.enabled: %s), against its flinkpki init containers, whose copy of the configuration, which Flink reads, turns it on", s.label, v),
				"remove security.ssl.internal.enabled from flinkConfiguration (or set it to true), so that it says what runs")
		}
		return nil
	}
	legacy, legacySet := s.get("security.ssl.enabled")
	switch {
	case set && isTrueValue(v):
		return nil
	case set:
		return one(RuleInternalSSL, SeverityError,
			fmt.Sprintf("%s disables internal SSL (security.ssl.internal.enabled: %s): any pod that reaches the cluster can join it", s.label, v), fix)
	case legacySet && legacySSLSwitch(s.major) && isTrueValue(legacy):
		return one(RuleInternalSSL, SeverityWarning,
			fmt.Sprintf("%s turns internal SSL on only through security.ssl.enabled, which Flink 1.x reads as a fallback but Flink 2.0 removed: after an upgrade to Flink 2 internal SSL is silently off", s.label),
			"set security.ssl.internal.enabled: true, and security.ssl.rest.enabled: true where REST uses TLS")
	case legacySet && legacySSLSwitch(s.major):
		return one(RuleInternalSSL, SeverityError,
			fmt.Sprintf("%s disables internal SSL (security.ssl.enabled: %s, and security.ssl.internal.enabled is not set): any pod that reaches the cluster can join it", s.label, legacy), fix)
	case legacySet && isTrueValue(legacy) && s.major == 2:
		return one(RuleInternalSSL, SeverityError,
			fmt.Sprintf("%s is for Flink 2, which no longer reads security.ssl.enabled: internal SSL is off (security.ssl.internal.enabled is not set, and Flink's default is false), so any pod that reaches the cluster can join it", s.label), fix)
	case legacySet && isTrueValue(legacy):
		return one(RuleInternalSSL, SeverityError,
			fmt.Sprintf("%s turns internal SSL on only through security.ssl.enabled, which Flink 2 no longer reads: there internal SSL is off, so any pod that reaches the cluster can join it", s.label),
			"set security.ssl.internal.enabled: true; for a configuration that only Flink 1.x runs, lint with --flink-version 1.20, which makes this a warning")
	}
	return one(RuleInternalSSL, SeverityError,
		fmt.Sprintf("%s does not enable internal SSL (security.ssl.internal.enabled is not set, and Flink's default is false)", s.label), fix)
}

// checkTransportSSL finds TLS turned off for one of Flink's internal
// transports while internal SSL is on (TransportSSLKeys): Flink runs that
// transport in plaintext, RPC (job submission included), blob (the job's
// jars) or the records between TaskManagers, to anyone who reaches its
// port. In a FlinkDeployment whose init containers write the configuration
// Flink reads, their copy leaves such keys out.
func checkTransportSSL(s *subject, _ LintOptions) []Finding {
	if !s.sslSwitch("security.ssl.internal.enabled", true) {
		return nil // FP001
	}
	var off []string
	for _, t := range transportSwitches {
		if k, v, set := s.lookup(t.keys...); set && !isTrueValue(v) {
			off = append(off, fmt.Sprintf("%s (%s: %s)", t.what, k, v))
		}
	}
	if len(off) == 0 {
		return nil
	}
	if s.initConf {
		return one(RuleTransportSSL, SeverityWarning,
			fmt.Sprintf("%s turns TLS off for %s, which has no effect: the flinkpki init containers' copy of the configuration, which Flink reads, leaves those keys out", s.label, strings.Join(off, ", ")),
			"remove them from flinkConfiguration, so that it says what runs")
	}
	return one(RuleTransportSSL, SeverityError,
		fmt.Sprintf("%s keeps internal SSL on but turns TLS off for %s: Flink runs those connections in plaintext, open to any pod that reaches the port", s.label, strings.Join(off, ", ")),
		"remove the keys (each is on by default), or set them to true")
}

// proxyImages are names that mark a container as a reverse proxy able to
// terminate TLS and authenticate REST clients in front of Flink.
var proxyImages = []string{"nginx", "envoy", "haproxy", "ghostunnel", "stunnel", "oauth2-proxy", "traefik", "caddy"}

// proxySidecar returns the name of a proxy sidecar in the pod templates that
// reach the JobManager (the top-level and the JobManager one), or "".
// Kubernetes-native sidecars (init containers with restartPolicy Always)
// count too.
func proxySidecar(d *deploymentInfo) string {
	if d == nil {
		return ""
	}
	for _, t := range d.templates {
		if t.field == "spec.taskManager.podTemplate" {
			continue
		}
		candidates := t.spec.Spec.Containers
		for _, c := range t.spec.Spec.InitContainers {
			if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
				candidates = append(candidates, c)
			}
		}
		for _, c := range candidates {
			id := strings.ToLower(c.Name + " " + c.Image)
			for _, p := range proxyImages {
				if strings.Contains(id, p) {
					return c.Name
				}
			}
		}
	}
	return ""
}

func isLoopback(addr string) bool {
	addr = strings.TrimSpace(addr)
	if strings.EqualFold(addr, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(addr, "[]"))
	return ip != nil && ip.IsLoopback()
}

// restBindFix is how a FlinkDeployment keeps REST on loopback: the
// operator removes rest.bind-address from the configuration it writes, so
// the flinkpki init container merges it into the pod-local copy, and the
// operator's startup probe, which reaches REST over the pod IP, must be off.
const restBindFix = `add "--flink-conf-set", "rest.bind-address=127.0.0.1" to the flinkpki init container of the JobManager (it merges the key into the pod-local copy of the configuration), set kubernetes.operator.jm-deployment.startup.probe.enabled: "false", and front REST with an nginx or envoy sidecar that requires client certificates`

// restBindKeys are rest.bind-address with the keys Flink falls back to
// (RestOptions.BIND_ADDRESS: web.address, then the deprecated
// jobmanager.web.address; the same in Flink 1.20 and 2.x).
var restBindKeys = []string{"rest.bind-address", "web.address", "jobmanager.web.address"}

func checkRESTAuth(s *subject, _ LintOptions) []Finding {
	// In a FlinkDeployment only rest.bind-address is known to be removed
	// by the operator; the fallbacks are read in configuration files.
	keys := restBindKeys
	if s.deployment != nil {
		keys = keys[:1]
	}
	bindKey, bind, set := s.lookup(keys...)
	inConf := set && s.deployment != nil
	if s.deployment != nil {
		// The operator removes rest.bind-address from the configuration it
		// writes for the pods: only an init container's copy can carry it.
		bindKey = restBindKeys[0]
		bind, set = s.deployment.jobManagerConfSet(bindKey)
	}
	if set && isLoopback(bind) {
		return nil
	}
	if s.restAuthAsked() {
		gap, fix := s.restAuthGap()
		if gap == "" {
			return nil
		}
		return one(RuleRESTUnauthenticated, SeverityError,
			fmt.Sprintf("%s: the REST endpoint, which accepts job submissions, is not protected by its client authentication: %s", s.label, gap), fix)
	}
	if inConf && !set {
		return one(RuleRESTUnauthenticated, SeverityError,
			fmt.Sprintf("%s: rest.bind-address in spec.flinkConfiguration has no effect: the operator removes it from the configuration it writes, so the REST endpoint, which accepts job submissions, binds to every interface without authentication", s.label),
			restBindFix)
	}
	where := bindKey + ": " + bind
	if !set {
		where = "rest.bind-address is not set, so it binds to every interface"
	}
	fix := "set rest.bind-address: 127.0.0.1 and front it with an nginx or envoy sidecar that requires client certificates, or enable security.ssl.rest.enabled and security.ssl.rest.authentication-enabled"
	if s.deployment != nil {
		fix = restBindFix + ", or enable security.ssl.rest.enabled and security.ssl.rest.authentication-enabled"
	}
	if proxy := proxySidecar(s.deployment); proxy != "" {
		return one(RuleRESTUnauthenticated, SeverityError,
			fmt.Sprintf("%s: the REST endpoint is reachable without authentication past the %q sidecar (%s, %s): anyone reaching the pod IP bypasses the proxy", s.label, proxy, where, s.restState()),
			restBindFix)
	}
	return one(RuleRESTUnauthenticated, SeverityError,
		fmt.Sprintf("%s: the REST endpoint, which accepts job submissions, is reachable without authentication (%s, %s, no proxy sidecar)", s.label, where, s.restState()),
		fix)
}

// checkStartupProbe finds a FlinkDeployment whose init container keeps
// REST on loopback while the operator's startup probe stays on: the probe
// never reaches REST, and the kubelet restarts the JobManager for ever.
func checkStartupProbe(s *subject, _ LintOptions) []Finding {
	if s.deployment == nil {
		return nil
	}
	bind, set := s.deployment.jobManagerConfSet(restBindKeys[0])
	if !set || !isLoopback(bind) {
		return nil
	}
	if _, v, set := s.lookup(StartupProbeKey); set && strings.EqualFold(strings.TrimSpace(v), "false") {
		return nil
	}
	return one(RuleStartupProbe, SeverityError,
		fmt.Sprintf("%s keeps REST on loopback (the init container's rest.bind-address=%s) while the operator's JobManager startup probe is on: the probe calls REST on the pod IP, never passes, and the kubelet restarts the JobManager over and over", s.label, bind),
		fmt.Sprintf(`set %s: "false" in spec.flinkConfiguration, or let the operator reach REST on the pod network behind a NetworkPolicy (deploy/examples/operator-rest)`, StartupProbeKey))
}

func checkNativeMode(s *subject, _ LintOptions) []Finding {
	if s.deployment == nil {
		return nil
	}
	mode := s.deployment.mode
	if mode != "" && mode != "native" {
		return nil
	}
	return one(RuleNativeMode, SeverityWarning,
		fmt.Sprintf("%s runs in native mode: the JobManager holds rights to create pods and ConfigMaps, which deployed job code can use", s.label),
		"set spec.mode: standalone for clusters that run code you do not fully trust")
}

// envPassword matches a store password set in an environment variable's
// value, as FLINK_PROPERTIES carries configuration lines into the image's
// entrypoint.
var envPassword = regexp.MustCompile(`(?m)^\s*(security\.ssl\.[A-Za-z0-9._-]*-password)\s*[:=]\s*\S`)

func checkInlinePasswords(s *subject, opts LintOptions) []Finding {
	var keys []string
	for k, v := range s.conf {
		if strings.HasPrefix(k, "security.ssl.") && strings.HasSuffix(k, "-password") && v != "" {
			keys = append(keys, k)
		}
	}
	const fix = "remove the passwords and let the flinkpki init container merge pod-local ones (init --flink-conf-src/--flink-conf-out)"
	var out []Finding
	if s.deployment != nil {
		var inEnv []string
		for _, t := range s.deployment.templates {
			for _, c := range append(append([]corev1.Container(nil), t.spec.Spec.InitContainers...), t.spec.Spec.Containers...) {
				for _, e := range c.Env {
					for _, m := range envPassword.FindAllStringSubmatch(e.Value, -1) {
						inEnv = append(inEnv, fmt.Sprintf("%s in env %s of container %q in %s", m[1], e.Name, c.Name, t.field))
					}
				}
			}
		}
		if len(inEnv) > 0 {
			out = append(out, Finding{Rule: RuleInlinePassword, Severity: SeverityError,
				Message: fmt.Sprintf("%s writes store passwords into a pod template, which is stored in plain text: %s", s.label, strings.Join(inEnv, "; ")),
				Fix:     fix})
		}
	}
	if len(keys) == 0 {
		return out
	}
	sort.Strings(keys)
	if s.deployment != nil {
		return append(out, one(RuleInlinePassword, SeverityError,
			fmt.Sprintf("%s writes store passwords into flinkConfiguration, which is stored in plain text and audit-logged: %s", s.label, strings.Join(keys, ", ")),
			fix)...)
	}
	if opts.PodLocalCopy {
		return out
	}
	return one(RuleInlinePassword, SeverityWarning,
		fmt.Sprintf("%s holds store passwords (%s); that is right only for the pod-local copy the flinkpki init container writes", s.label, strings.Join(keys, ", ")),
		"keep passwords out of shared or committed configuration; "+fix)
}

// checkServiceAccount warns about the namespace's default service account:
// its token is shared with every pod that does not choose another, so any
// RBAC given to Flink is given to them too.
// operatorChartServiceAccount is the service account the Flink Kubernetes
// operator's Helm chart creates, and its examples use, for every Flink
// deployment of a namespace.
const operatorChartServiceAccount = "flink"

func checkServiceAccount(s *subject, _ LintOptions) []Finding {
	if s.deployment == nil {
		return nil
	}
	sa := s.deployment.serviceAccount
	var msg string
	switch sa {
	case "":
		msg = fmt.Sprintf("%s does not set spec.serviceAccount, so its pods use the namespace's default service account", s.label)
	case "default":
		msg = fmt.Sprintf("%s uses the namespace's default service account, shared with every other pod there", s.label)
	case operatorChartServiceAccount:
		msg = fmt.Sprintf("%s uses the %q service account that the operator's Helm chart creates for every Flink deployment of the namespace; flinkpki binds one service account to one cluster", s.label, sa)
	default:
		return nil
	}
	return one(RuleServiceAccount, SeverityWarning, msg,
		"create a dedicated service account for this cluster (with no RBAC in standalone mode) and set spec.serviceAccount")
}

func checkHostNetwork(s *subject, _ LintOptions) []Finding {
	if s.deployment == nil {
		return nil
	}
	var fields []string
	for _, t := range s.deployment.templates {
		if t.spec.Spec.HostNetwork {
			fields = append(fields, t.field)
		}
	}
	if len(fields) == 0 {
		return nil
	}
	return one(RuleHostNetwork, SeverityError,
		fmt.Sprintf("%s sets hostNetwork: true in %s: Flink's ports open on the node and job code sees the node's network", s.label, strings.Join(fields, ", ")),
		"remove hostNetwork from the pod templates")
}

// keyAlgorithmName names a key algorithm the way people write it.
func keyAlgorithmName(a x509.PublicKeyAlgorithm) string {
	switch a {
	case x509.ECDSA:
		return "ECDSA"
	case x509.RSA:
		return "RSA"
	}
	return a.String()
}

// checkFingerprintPinning finds security.ssl.{internal,rest}.cert.fingerprint.
// Set, Flink trusts exactly the listed SHA-1 fingerprints of peer leaves and
// ignores the truststore. flinkpki gives every pod start a new leaf, so the
// next restarted pod is shut out, and a CA rotation no longer decides trust.
func checkFingerprintPinning(s *subject, _ LintOptions) []Finding {
	var pinned []string
	for _, key := range []string{internalFingerprintKey, restFingerprintKey} {
		if v, set := s.get(key); set && strings.TrimSpace(v) != "" {
			pinned = append(pinned, key)
		}
	}
	if len(pinned) == 0 {
		return nil
	}
	return one(RuleFingerprintPinning, SeverityError,
		fmt.Sprintf("%s pins peer certificates by fingerprint (%s): Flink then ignores the truststore, and every pod flinkpki enrolls gets a new leaf, so the next restarted process is shut out and CA rotation no longer decides trust", s.label, strings.Join(pinned, ", ")),
		"remove the fingerprint keys: the cluster's own CA, in every truststore flinkpki writes, already admits this cluster's processes only")
}
