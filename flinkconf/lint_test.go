package flinkconf

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

func lintFile(t testing.TB, path string) []Finding {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	findings, err := Lint(data, filepath.Base(path))
	if err != nil {
		t.Fatalf("Lint(%s): %v", path, err)
	}
	return findings
}

// ruleSet returns "RULE severity" for each finding, sorted.
func ruleSet(findings []Finding) []string {
	out := make([]string, 0, len(findings))
	for _, f := range findings {
		out = append(out, f.Rule+" "+f.Severity)
	}
	sort.Strings(out)
	return out
}

func TestLintFlagsTheOperatorTLSExamplePasswords(t *testing.T) {
	for _, name := range []string{"basic-secure.yaml", "basic-secure-deployment-only.yaml"} {
		t.Run("the operator's "+name+" fails with inline passwords", func(t *testing.T) {
			findings := lintFile(t, filepath.Join("testdata", "operator", name))
			if !slices.Contains(ruleSet(findings), RuleInlinePassword+" error") {
				t.Errorf("findings %v lack %s error", ruleSet(findings), RuleInlinePassword)
			}
			if !HasErrors(findings) {
				t.Error("HasErrors = false, want true")
			}
			for _, f := range findings {
				if strings.Contains(f.String(), "password1234") {
					t.Errorf("a finding prints the password: %s", f)
				}
			}
		})
	}
}

// The operator's TLS example is for Flink 2.2 and turns SSL on with
// security.ssl.enabled alone, which Flink 2 no longer reads (the interop
// suite checks that against Flink 2.2's own SecurityOptions): its internal
// links run in clear text.
func TestLintFindsTheOperatorTLSExampleWithoutInternalSSLOnFlink2(t *testing.T) {
	for _, name := range []string{"basic-secure.yaml", "basic-secure-deployment-only.yaml"} {
		findings := lintFile(t, filepath.Join("testdata", "operator", name))
		var got *Finding
		for i := range findings {
			if findings[i].Rule == RuleInternalSSL {
				got = &findings[i]
			}
		}
		switch {
		case name == "basic-secure-deployment-only.yaml":
			// It sets security.ssl.internal.* keys, enabled included.
			if got != nil {
				t.Errorf("%s: %s", name, got)
			}
		case got == nil || got.Severity != SeverityError:
			t.Errorf("%s: want an %s error, got %v", name, RuleInternalSSL, got)
		case !strings.Contains(got.Message, "Flink 2, which no longer reads security.ssl.enabled"):
			t.Errorf("%s: the finding does not say why: %s", name, got)
		}
	}
}

func TestLintInsecureDeploymentBreaksEveryRule(t *testing.T) {
	findings := lintFile(t, filepath.Join("testdata", "lint", "insecure-deployment.yaml"))
	want := []string{
		RuleInternalSSL + " error",
		RuleRESTUnauthenticated + " error",
		RuleNativeMode + " warning",
		RuleInlinePassword + " error",
		RuleCipherSuites + " error",
		RuleProtocol + " error",
		RuleServiceAccount + " warning",
		RuleHostNetwork + " error",
	}
	sort.Strings(want)
	if got := ruleSet(findings); !slices.Equal(got, want) {
		t.Errorf("findings = %v, want %v", got, want)
	}
	for _, f := range findings {
		if !strings.Contains(f.Message, `FlinkDeployment "wide-open"`) {
			t.Errorf("finding does not name the deployment: %s", f)
		}
	}
}

// TestLintMergesPodTemplatesAsTheOperatorDoes: variants of the nginx
// example that the operator's template merge (FlinkUtils.mergeInto) turns
// into broken pods, which lint must see in the merged pods:
//   - the JobManager template lists the init container's args again, as
//     long as the top-level ones, with --flink-conf-set rest.bind-address
//     in place of --timeout: the operator merges a list of strings by
//     position and keeps the top-level item wherever both have one, so the
//     JobManager runs without it and REST binds to every interface;
//   - the init container sits in the JobManager template alone, while the
//     top-level one points FLINK_CONF_DIR at an emptyDir: TaskManagers find
//     no configuration and no stores there;
//   - the token volume is mounted in a Kubernetes-native sidecar (an init
//     container that restarts Always), which runs for the pod's life;
//
// and one the merge must not break: stores on "emptyDir: {}" (an empty
// object, kept as the operator's model keeps it).
func TestLintMergesPodTemplatesAsTheOperatorDoes(t *testing.T) {
	for _, tt := range []struct {
		file string
		want []string
	}{
		{"jobmanager-args-same-length.yaml", []string{RuleRESTUnauthenticated + " error"}},
		{"init-in-jobmanager-template-only.yaml", []string{RuleInitWiring + " error"}},
		{"token-in-native-sidecar.yaml", []string{RuleTokenExposed + " warning"}},
		// The secure deployment with its stores on "emptyDir: {}": an
		// empty object is a volume's source, which the merge keeps.
		{"emptydir-stores-with-process-templates.yaml", nil},
	} {
		t.Run(tt.file, func(t *testing.T) {
			findings := lintFile(t, filepath.Join("testdata", "lint", tt.file))
			if got := ruleSet(findings); !slices.Equal(got, tt.want) {
				t.Errorf("findings = %v, want %v\n%v", got, tt.want, findings)
			}
		})
	}
}

func TestLintSecureDeploymentPasses(t *testing.T) {
	findings := lintFile(t, filepath.Join("testdata", "lint", "secure-deployment.yaml"))
	if len(findings) != 0 {
		t.Errorf("findings for the secure deployment: %v", findings)
	}
}

// secureFlat is the flinkConfiguration of the secure deployment as flat keys.
const secureFlat = `    security.ssl.internal.enabled: "true"
    security.ssl.protocol: TLSv1.2
    security.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    rest.bind-address: 127.0.0.1
`

// wiredArgs are the fixtures' flinkpki init arguments, as a YAML flow
// sequence with extra items (", --flink-conf-set, KEY=VALUE") appended.
func wiredArgs(extra string) string {
	return "[init, --out, /flink-tls, --flink-conf-src, /opt/flink/conf, --flink-conf-out, /flink-conf" + extra + "]"
}

// wiredTemplate is a top-level pod template whose flinkpki init container
// reaches Flink in every pod: stores and the configuration copy on
// emptyDirs that flink-main-container mounts at the same paths, and
// FLINK_CONF_DIR on the copy. extraArgs go to the init container (see
// wiredArgs), extraContainers are further entries of containers.
func wiredTemplate(extraArgs, extraContainers string) string {
	return "  podTemplate:\n    spec:\n      securityContext: {runAsUser: 9999, runAsGroup: 9999}\n      initContainers:\n        - name: flinkpki-init\n          image: flinkpki/flinkpki:v1\n" +
		"          args: " + wiredArgs(extraArgs) + "\n" +
		"          volumeMounts:\n            - {name: tls, mountPath: /flink-tls}\n            - {name: conf, mountPath: /flink-conf}\n            - {name: flink-config-volume, mountPath: /opt/flink/conf}\n" +
		"      containers:\n        - name: flink-main-container\n          env: [{name: FLINK_CONF_DIR, value: /flink-conf}]\n" +
		"          volumeMounts:\n            - {name: tls, mountPath: /flink-tls, readOnly: true}\n            - {name: conf, mountPath: /flink-conf}\n" +
		extraContainers +
		"      volumes:\n        - {name: tls, emptyDir: {medium: Memory}}\n        - {name: conf, emptyDir: {}}\n"
}

// withMainMount is wiredTemplate with further volumes (flow mappings,
// joined by "\n        - "), which flink-main-container mounts with
// mounts (joined by "\n            - ").
func withMainMount(mounts, volumes string) string {
	return strings.NewReplacer(
		"{name: tls, mountPath: /flink-tls, readOnly: true}\n", "{name: tls, mountPath: /flink-tls, readOnly: true}\n            - "+mounts+"\n",
		"        - {name: conf, emptyDir: {}}\n", "        - {name: conf, emptyDir: {}}\n        - "+volumes+"\n",
	).Replace(wiredTemplate("", ""))
}

// byName is the flinkConfiguration key that makes the operator merge the
// templates' arrays of named objects by name, not by position.
const byName = "    " + MergeArraysByNameKey + ": \"true\"\n"

// loopbackJobManager is a JobManager pod template whose flinkpki init
// container (merged by name into the top-level one) also keeps REST on
// loopback in the pod-local configuration.
var loopbackJobManager = "  jobManager:\n    podTemplate:\n      spec:\n        initContainers:\n          - name: flinkpki-init\n            args: " +
	wiredArgs(", --flink-conf-set, rest.bind-address=127.0.0.1") + "\n"

// probeOff turns the operator's JobManager startup probe off, as REST on
// loopback needs (FP021).
const probeOff = "    " + StartupProbeKey + ": \"false\"\n"

// deployment is a FlinkDeployment with the given configuration and extra
// spec fields; without a jobManager field of its own it gets
// loopbackJobManager, without a top-level pod template wiredTemplate, and
// the startup probe is off unless the configuration says otherwise.
func deployment(flinkConfiguration, extraSpec string) string {
	if !strings.Contains(extraSpec, "  jobManager:") {
		extraSpec = loopbackJobManager + extraSpec
	}
	if !strings.Contains(flinkConfiguration, "startup.probe") {
		flinkConfiguration = probeOff + flinkConfiguration
	}
	if !strings.HasPrefix(extraSpec, "  podTemplate:") && !strings.Contains(extraSpec, "\n  podTemplate:") {
		extraSpec += wiredTemplate("", "")
	}
	return "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nmetadata:\n  name: t\nspec:\n  mode: standalone\n  serviceAccount: flink-t\n" +
		extraSpec + "  flinkConfiguration:\n" + flinkConfiguration
}

// nestedSSLOff is a flinkConfiguration that turns internal SSL off in
// nested keys.
const nestedSSLOff = `    security.ssl:
      internal:
        enabled: false
      protocol: TLSv1.2
      algorithms: TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    rest:
      bind-address: localhost
`

// secureConf is secureFlat as a config.yaml, with the internal stores.
var secureConf = strings.ReplaceAll(strings.TrimPrefix(secureFlat, "    "), "\n    ", "\n") + internalStores

// openRESTConf is secureConf without its rest.bind-address, for rows that
// set their own: a key written twice is a duplicate Flink refuses (FP018).
var openRESTConf = strings.Replace(secureConf, "rest.bind-address: 127.0.0.1\n", "", 1)

// internalStores, sharedStores and restStores name the stores Flink needs
// with SSL on (FP017): the internal ones, the shared keys that both
// internal SSL and REST SSL fall back to, and REST's own.
const (
	internalStores = "security.ssl.internal.keystore: /flink-tls/keystore.p12\nsecurity.ssl.internal.truststore: /flink-tls/truststore.p12\n"
	sharedStores   = "security.ssl.keystore: /flink-tls/keystore.p12\nsecurity.ssl.truststore: /flink-tls/truststore.p12\n"
	restStores     = "security.ssl.rest.keystore: /rest-tls/keystore.p12\nsecurity.ssl.rest.truststore: /rest-tls/truststore.p12\n"
)

// noFlinkpki is a top-level pod template without the flinkpki init
// container, for deployment's extraSpec.
const noFlinkpki = "  podTemplate:\n    spec:\n      securityContext: {runAsNonRoot: true}\n"

// noFlinkpkiAnywhere leaves the JobManager template out too (and with it
// REST on loopback: FP002).
const noFlinkpkiAnywhere = noFlinkpki + "  jobManager:\n    replicas: 1\n"

// legacySwitchConf turns SSL on only with the key Flink 2 removed.
const legacySwitchConf = "security.ssl.enabled: true\n" + sharedStores + "security.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\nrest.bind-address: 127.0.0.1\n"

// suitesConf is a config.yaml with internal SSL, REST on loopback and the
// given protocol and suites.
func suitesConf(protocol, algorithms string) string {
	return "security.ssl.internal.enabled: true\nsecurity.ssl.internal.keystore: /flink-tls/keystore.p12\nsecurity.ssl.internal.truststore: /flink-tls/truststore.p12\n" +
		"security.ssl.protocol: " + protocol + "\nsecurity.ssl.algorithms: " + algorithms + "\nrest.bind-address: 127.0.0.1\n"
}

// FP005 tells a name the JDK does not know from one it knows but disables.
func TestLintNamesWhyASuiteFails(t *testing.T) {
	for _, tt := range []struct{ algorithms, want string }{
		{"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA385", `JDK 17 does not know: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA385"`},
		{"TLS_DH_anon_WITH_AES_128_GCM_SHA256", "lists no cipher suite the JDK enables (TLS_DH_anon_WITH_AES_128_GCM_SHA256)"},
		{"tls_ecdhe_ecdsa_with_aes_128_gcm_sha256", "the JDK knows suites only by their exact names"},
		{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,SSL_RSA_WITH_3DES_EDE_CBC_SHA", "lists cipher suites that never run: SSL_RSA_WITH_3DES_EDE_CBC_SHA"},
	} {
		findings, err := Lint([]byte(suitesConf("TLSv1.2", tt.algorithms)), "config.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(findings, func(f Finding) bool { return f.Rule == RuleCipherSuites && strings.Contains(f.Message, tt.want) }) {
			t.Errorf("%s: no FP005 finding says %q: %v", tt.algorithms, tt.want, findings)
		}
	}
}

// FP005 names the release that changed Flink's default suites: 2.2.1, a
// patch release (SecurityOptions in the sources of 2.2.0 and 2.2.1), not
// 2.3.
func TestLintNamesTheReleaseThatChangedFlinksDefaultSuites(t *testing.T) {
	findings, err := Lint([]byte(strings.Replace(secureConf, "security.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n", "", 1)), "config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const want = "up to Flink 2.2.0 it is TLS_RSA_WITH_AES_128_CBC_SHA, which current JDKs disable; from 2.2.1 the TLS_ECDHE_RSA GCM suites"
	if !slices.ContainsFunc(findings, func(f Finding) bool { return f.Rule == RuleCipherSuites && strings.Contains(f.Message, want) }) {
		t.Errorf("no FP005 finding says %q: %v", want, findings)
	}
}

// FP002 and FP017 say which Flink behaviour defeats the configuration.
func TestLintNamesWhyRESTOrStoresFail(t *testing.T) {
	for _, tt := range []struct {
		conf string
		opts LintOptions
		rule string
		want string
	}{
		{openRESTConf + "security.ssl.rest.enabled: true\nsecurity.ssl.rest.authentication-enabled: true\nsecurity.ssl.rest.keystore: /rest-tls/keystore.p12\nrest.bind-address: 0.0.0.0\n", LintOptions{},
			RuleRESTUnauthenticated, "neither security.ssl.rest.truststore nor its fallback security.ssl.truststore is set: Flink then builds the REST endpoint without a trust manager and silently drops client authentication"},
		{"security.ssl.internal.enabled: true\nsecurity.ssl.rest.enabled: true\nsecurity.ssl.rest.authentication-enabled: true\n" + sharedStores + "rest.bind-address: 0.0.0.0\n", LintOptions{},
			RuleRESTUnauthenticated, "its truststore is the internal one, so every internal leaf, each TaskManager's included, where job code can read it, authenticates to REST"},
		{strings.TrimSuffix(secureConf, internalStores), LintOptions{},
			RuleSSLStores, `(security.ssl.internal.enabled) but sets no security.ssl.internal.keystore (or security.ssl.keystore) and no security.ssl.internal.truststore (or security.ssl.truststore): every Flink process fails at start ("The config option security.ssl.internal.keystore or security.ssl.keystore is missing.")`},
		{secureConf + "security.ssl.enabled: true\n", LintOptions{FlinkMajor: 1},
			RuleSSLStores, "sets security.ssl.enabled: true, which this Flink 1.x configuration also reads as security.ssl.rest.enabled, but no security.ssl.rest.keystore"},
		{openRESTConf + "security.ssl.enabled: true\nrest.bind-address: 0.0.0.0\n", LintOptions{FlinkMajor: 1},
			RuleRESTUnauthenticated, "REST SSL on only through security.ssl.enabled, which Flink 1.x reads as its fallback, without client authentication"},
	} {
		findings, err := LintWith([]byte(tt.conf), "config.yaml", tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(findings, func(f Finding) bool { return f.Rule == tt.rule && strings.Contains(f.Message, tt.want) }) {
			t.Errorf("no %s finding says %q: %v", tt.rule, tt.want, findings)
		}
	}
}

// FP009 names each store a Secret gives Flink, the Secret, and how it gets
// there: kubernetes.secrets, or a volume of flink-main-container in the
// pods of the processes whose templates mount it.
func TestLintNamesWhereAStoreFromASecretComesFrom(t *testing.T) {
	taskManagerSecret := "  taskManager:\n    podTemplate:\n      spec:\n        containers:\n          - name: flink-main-container\n            volumeMounts: [{name: certs, mountPath: /opt/tls}]\n" +
		"        volumes: [{name: certs, secret: {secretName: flink-tls}}]\n"
	for _, tt := range []struct {
		name, conf, spec, want string
	}{
		{"a volume of one process's template reaches that process alone",
			secureFlat + byName + "    security.ssl.internal.keystore: /opt/tls/keystore.p12\n    security.ssl.internal.truststore: /opt/tls/truststore.p12\n", taskManagerSecret,
			`reads private keys and trusted certificates from a Kubernetes Secret (security.ssl.internal.keystore from Secret flink-tls (volume "certs" at /opt/tls in the TaskManager pods); security.ssl.internal.truststore from Secret flink-tls (volume "certs" at /opt/tls in the TaskManager pods))`},
		{"one of the top-level template reaches both",
			secureFlat + "    security.ssl.keystore: /opt/flink/tls-cert/keystore.jks\n",
			withMainMount("{name: certs, mountPath: /opt/flink/tls-cert}", "{name: certs, secret: {secretName: basic-secure-cert}}"),
			`security.ssl.keystore from Secret basic-secure-cert (volume "certs" at /opt/flink/tls-cert in the JobManager and TaskManager pods)`},
		{"kubernetes.secrets and a volume of the same Secret are named once",
			secureFlat + "    kubernetes.secrets: flink-tls:/opt/tls\n    security.ssl.internal.keystore: /opt/tls/keystore.p12\n",
			withMainMount("{name: certs, mountPath: /opt/tls}", "{name: certs, secret: {secretName: flink-tls}}"),
			`reads private keys from a Kubernetes Secret (security.ssl.internal.keystore from Secret flink-tls): the keys are stored by the API server`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			findings, err := Lint([]byte(deployment(tt.conf, tt.spec)), "d.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(findings, func(f Finding) bool { return f.Rule == RuleStoresFromSecrets && strings.Contains(f.Message, tt.want) }) {
				t.Errorf("no FP009 finding says %q: %v", tt.want, findings)
			}
		})
	}
}

func TestParseFlinkVersion(t *testing.T) {
	for in, want := range map[string]int{"1.20": 1, "1.20.3": 1, "2.2": 2, "2.3.0": 2, "v1_20": 1, "v2_2": 2, "2": 2, " v2_0 ": 2} {
		if got, err := ParseFlinkVersion(in); err != nil || got != want {
			t.Errorf("ParseFlinkVersion(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "3.0", "v0_9", "latest", "1x", ".1"} {
		if got, err := ParseFlinkVersion(in); err == nil {
			t.Errorf("ParseFlinkVersion(%q) = %d, want an error", in, got)
		}
	}
}

func TestLintRules(t *testing.T) {
	tests := []struct {
		name     string
		filename string
		input    string
		opts     LintOptions
		want     []string
	}{
		{"a secure deployment with flat keys has no findings", "d.yaml", deployment(secureFlat, ""), LintOptions{}, nil},
		{"init and Flink as different users cannot share the 0600 files", "d.yaml",
			deployment(secureFlat, strings.Replace(wiredTemplate("", ""), "runAsUser: 9999", "runAsUser: 1000", 1)+"  taskManager:\n    podTemplate:\n      spec:\n        containers:\n          - name: flink-main-container\n            securityContext: {runAsUser: 9999}\n"),
			LintOptions{}, []string{"FP010 error"}},
		{"no runAsUser anywhere runs flinkpki's image and Flink's as different users, unless a policy sets one", "d.yaml",
			deployment(secureFlat, strings.Replace(wiredTemplate("", ""), "      securityContext: {runAsUser: 9999, runAsGroup: 9999}\n", "", 1)), LintOptions{}, []string{"FP010 warning"}},
		{"init set to Flink's user beside Flink's image default is fine", "d.yaml",
			deployment(secureFlat, strings.Replace(strings.Replace(wiredTemplate("", ""), "      securityContext: {runAsUser: 9999, runAsGroup: 9999}\n", "", 1),
				"          image: flinkpki/flinkpki:v1\n", "          image: flinkpki/flinkpki:v1\n          securityContext: {runAsUser: 9999}\n", 1)), LintOptions{}, nil},
		{"Flink as root reads any file", "d.yaml",
			deployment(secureFlat, strings.Replace(wiredTemplate("", ""), "{name: FLINK_CONF_DIR, value: /flink-conf}]\n", "{name: FLINK_CONF_DIR, value: /flink-conf}]\n          securityContext: {runAsUser: 0}\n", 1)), LintOptions{}, nil},
		{"a secure deployment with nested keys has no findings", "d.yaml", deployment(`    security:
      ssl:
        internal: {enabled: true}
        protocol: TLSv1.2
        algorithms: TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    rest.bind-address: 127.0.0.1
`, ""), LintOptions{}, nil},
		{"nested keys that disable SSL are read", "d.yaml", deployment(nestedSSLOff, noFlinkpkiAnywhere), LintOptions{}, []string{"FP001 error", "FP002 error"}},
		{"disabling internal SSL against init's copy, which turns it on, is still an error", "d.yaml", deployment(nestedSSLOff, ""), LintOptions{}, []string{"FP001 error"}},
		{"with init's copy, flinkConfiguration needs no SSL keys at all", "d.yaml", deployment("    rest.bind-address: 127.0.0.1\n", ""), LintOptions{}, nil},
		{"an internal truststore that is the JDK's cacerts is an error", "config.yaml",
			strings.Replace(secureConf, "/flink-tls/truststore.p12", "/opt/java/openjdk/lib/security/cacerts", 1), LintOptions{}, []string{"FP020 error"}},
		{"one with the JDK cacerts' default password is warned about", "config.yaml",
			secureConf + "security.ssl.truststore-password: changeit\n", LintOptions{FlinkMajor: 2}, []string{"FP004 warning", "FP020 warning"}},
		{"an internal truststore or type in flinkConfiguration means nothing where init's copy names its own", "d.yaml",
			deployment(secureFlat+"    security.ssl.internal.truststore: /etc/ssl/certs/java/cacerts\n    security.ssl.internal.truststore-type: P12\n", ""), LintOptions{}, nil},
		{"a REST truststore that is the system's bundle is an error where REST authenticates clients", "config.yaml",
			openRESTConf + "rest.bind-address: 0.0.0.0\nsecurity.ssl.rest.enabled: true\nsecurity.ssl.rest.authentication-enabled: true\nsecurity.ssl.rest.keystore: /rest-tls/keystore.p12\nsecurity.ssl.rest.truststore: /etc/ssl/certs/java/cacerts\n",
			LintOptions{}, []string{"FP020 error"}},
		{"a store type the JDK does not know is warned about", "config.yaml",
			secureConf + "security.ssl.internal.truststore-type: P12\nsecurity.ssl.internal.keystore-type: pkcs12\n", LintOptions{}, []string{"FP017 warning"}},
		{"store types are read in any case, Bouncy Castle's too", "config.yaml",
			secureConf + "security.ssl.internal.truststore-type: pkcs12\nsecurity.ssl.internal.keystore-type: bcfks\n", LintOptions{}, nil},
		{"the system's PEM bundle as a truststore is an error", "config.yaml",
			strings.Replace(secureConf, "/flink-tls/truststore.p12", "/etc/ssl/certs/ca-certificates.crt", 1), LintOptions{}, []string{"FP020 error"}},
		{"a transport's TLS turned off is an error", "config.yaml",
			secureConf + "pekko.ssl.enabled: false\ntaskmanager:\n  data.ssl.enabled: 'false'\n", LintOptions{}, []string{"FP019 error"}},
		{"the old name of the RPC switch counts, unless the new one turns it on", "config.yaml",
			secureConf + "akka.ssl.enabled: false\nblob.service.ssl.enabled: true\n", LintOptions{}, []string{"FP019 error"}},
		{"the new name of the RPC switch wins over the old one", "config.yaml",
			secureConf + "akka.ssl.enabled: false\npekko.ssl.enabled: true\n", LintOptions{}, nil},
		{"a transport's TLS switch means nothing with internal SSL off", "config.yaml",
			strings.Replace(secureConf, "security.ssl.internal.enabled: \"true\"", "security.ssl.internal.enabled: \"false\"", 1) + "blob.service.ssl.enabled: false\n", LintOptions{}, []string{"FP001 error"}},
		{"a transport's TLS turned off in flinkConfiguration has no effect where init's copy leaves it out", "d.yaml",
			deployment(secureFlat+"    taskmanager.data.ssl.enabled: \"false\"\n", ""), LintOptions{}, []string{"FP019 warning"}},
		{"but is an error without the init container's copy", "d.yaml",
			deployment(secureFlat+"    taskmanager.data.ssl.enabled: \"false\"\n", noFlinkpkiAnywhere), LintOptions{}, []string{"FP002 error", "FP010 error", "FP019 error"}},
		{"explicit native mode is warned about", "d.yaml", deployment(secureFlat, "  mode: native\n"), LintOptions{}, []string{"FP003 warning"}},
		{"the default service account is warned about", "d.yaml", strings.Replace(deployment(secureFlat, ""), "flink-t", "default", 1), LintOptions{}, []string{"FP007 warning"}},
		{"the operator chart's shared service account is warned about", "d.yaml", strings.Replace(deployment(secureFlat, ""), "flink-t", "flink", 1), LintOptions{}, []string{"FP007 warning"}},
		{"an open REST port behind a sidecar is still open", "d.yaml",
			deployment(secureFlat, strings.Replace(loopbackJobManager, "127.0.0.1", "0.0.0.0", 1)+wiredTemplate("", "        - name: proxy\n          image: envoyproxy/envoy:v1.31\n")),
			LintOptions{}, []string{"FP002 error"}},
		{"REST on loopback with the operator's startup probe on restarts the JobManager for ever", "d.yaml",
			deployment(secureFlat+"    "+StartupProbeKey+": \"true\"\n", ""), LintOptions{}, []string{"FP021 error"}},
		{"REST on loopback with the startup probe left at its default, on", "d.yaml",
			strings.Replace(deployment(secureFlat, ""), probeOff, "", 1), LintOptions{}, []string{"FP021 error"}},
		{"REST on the pod network needs no startup probe off (FP002 says what it needs)", "d.yaml",
			strings.Replace(deployment(secureFlat, strings.Replace(loopbackJobManager, "127.0.0.1", "0.0.0.0", 1)), probeOff, "", 1), LintOptions{}, []string{"FP002 error"}},
		{"rest.bind-address in flinkConfiguration alone has no effect", "d.yaml",
			deployment(secureFlat, "  jobManager:\n    replicas: 1\n"), LintOptions{}, []string{"FP002 error"}},
		{"--flink-conf-set=KEY=VALUE in the top-level template keeps REST on loopback", "d.yaml",
			deployment(secureFlat, "  jobManager:\n    replicas: 1\n"+wiredTemplate(", --flink-conf-set=rest.bind-address=::1", "")),
			LintOptions{}, nil},
		{"--flink-conf-set in the TaskManager template does not reach the JobManager", "d.yaml",
			deployment(secureFlat, "  jobManager:\n    replicas: 1\n  taskManager:\n    podTemplate:\n      spec:\n        initContainers:\n          - name: flinkpki-init\n            args: "+wiredArgs(", --flink-conf-set, rest.bind-address=127.0.0.1")+"\n"),
			LintOptions{}, []string{"FP002 error"}},
		{"--flink-conf-set to every interface is open", "d.yaml",
			deployment(secureFlat, strings.Replace(loopbackJobManager, "127.0.0.1", "0.0.0.0", 1)), LintOptions{}, []string{"FP002 error"}},
		{"a store password in a pod template's FLINK_PROPERTIES is an error", "d.yaml",
			deployment(secureFlat+byName, "  taskManager:\n    podTemplate:\n      spec:\n        containers:\n          - name: flink-main-container\n            env:\n              - name: FLINK_PROPERTIES\n                value: \"taskmanager.numberOfTaskSlots: 2\\nsecurity.ssl.internal.keystore-password: s3cret\\n\"\n"),
			LintOptions{}, []string{"FP004 error"}},
		{"other FLINK_PROPERTIES are fine", "d.yaml",
			deployment(secureFlat+byName, "  taskManager:\n    podTemplate:\n      spec:\n        containers:\n          - name: flink-main-container\n            env:\n              - name: FLINK_PROPERTIES\n                value: \"taskmanager.numberOfTaskSlots: 2\\n\"\n"),
			LintOptions{}, nil},
		{"merged by position, as the operator does by default, the TaskManager's env replaces FLINK_CONF_DIR", "d.yaml",
			deployment(secureFlat, "  taskManager:\n    podTemplate:\n      spec:\n        containers:\n          - name: flink-main-container\n            env:\n              - name: FLINK_PROPERTIES\n                value: \"taskmanager.numberOfTaskSlots: 2\\n\"\n"),
			LintOptions{}, []string{"FP010 error"}},
		{"a keystore mounted from a Kubernetes Secret is an error", "d.yaml",
			deployment(secureFlat+"    kubernetes.secrets: flink-tls:/opt/tls/\n    security.ssl.internal.keystore: /opt/tls/keystore.p12\n", ""),
			LintOptions{}, []string{"FP009 error"}},
		{"a Secret mounted elsewhere is fine", "d.yaml",
			deployment(secureFlat+"    kubernetes.secrets: creds:/opt/creds\n    security.ssl.internal.keystore: /flink-tls/keystore.p12\n", ""),
			LintOptions{}, nil},
		{"a keystore on a Secret's volume that flink-main-container mounts is an error", "d.yaml",
			deployment(secureFlat+"    security.ssl.internal.keystore: /opt/flink/tls-cert/keystore.p12\n",
				withMainMount("{name: certs, mountPath: /opt/flink/tls-cert, readOnly: true}", "{name: certs, secret: {secretName: flink-tls}}")),
			LintOptions{}, []string{"FP009 error"}},
		{"so is a truststore from a projected volume's secret source", "d.yaml",
			deployment(secureFlat+"    security.ssl.internal.truststore: /opt/tls/truststore.p12\n",
				withMainMount("{name: certs, mountPath: /opt/tls}", "{name: certs, projected: {sources: [{configMap: {name: ca, items: [{key: ca.crt, path: ca.crt}]}}, {secret: {name: flink-tls}}]}}")),
			LintOptions{}, []string{"FP009 error"}},
		{"and one key of a Secret mounted at the store's path with subPath", "d.yaml",
			deployment(secureFlat+"    security.ssl.rest.keystore: /opt/tls/rest.p12\n",
				withMainMount("{name: certs, mountPath: /opt/tls/rest.p12, subPath: keystore.p12}", "{name: certs, secret: {secretName: rest-tls, items: [{key: ks, path: keystore.p12}]}}")),
			LintOptions{}, []string{"FP009 error"}},
		{"a file a projected volume takes from a ConfigMap is not a Secret's", "d.yaml",
			deployment(secureFlat+"    security.ssl.internal.truststore: /opt/tls/truststore.p12\n",
				withMainMount("{name: certs, mountPath: /opt/tls}", "{name: certs, projected: {sources: [{secret: {name: s, items: [{key: k, path: keystore.p12}]}}, {configMap: {name: ca, items: [{key: ts, path: truststore.p12}]}}]}}")),
			LintOptions{}, nil},
		{"nor one beside the items a subPath picks from a Secret", "d.yaml",
			deployment(secureFlat+"    security.ssl.internal.truststore: /opt/tls/truststore.p12\n",
				withMainMount("{name: certs, mountPath: /opt/tls, subPath: public}", "{name: certs, secret: {secretName: s, items: [{key: k, path: private/keystore.p12}]}}")),
			LintOptions{}, nil},
		{"the longest mountPath wins: an emptyDir below a Secret's mount holds the store", "d.yaml",
			deployment(secureFlat+"    security.ssl.internal.keystore: /etc/flink/own/keystore.p12\n",
				withMainMount("{name: certs, mountPath: /etc/flink}\n            - {name: own, mountPath: /etc/flink/own}", "{name: certs, secret: {secretName: s}}\n        - {name: own, emptyDir: {}}")),
			LintOptions{}, nil},
		{"a Secret mounted in another container than Flink's is not read by Flink", "d.yaml",
			deployment(secureFlat+"    security.ssl.internal.keystore: /opt/tls/keystore.p12\n",
				strings.Replace(wiredTemplate("", "        - name: logs\n          image: fluent/fluent-bit\n          volumeMounts: [{name: certs, mountPath: /opt/tls}]\n"),
					"      volumes:\n", "      volumes:\n        - {name: certs, secret: {secretName: s}}\n", 1)),
			LintOptions{}, nil},
		{"REST mutual TLS protects an open REST port", "d.yaml",
			deployment(strings.Replace(secureFlat, "rest.bind-address: 127.0.0.1", "security.ssl.rest.enabled: true\n    security.ssl.rest.authentication-enabled: true\n"+indent(restStores, "    "), 1), "  jobManager:\n    replicas: 1\n"),
			LintOptions{}, nil},
		{"hostNetwork in the task manager template is an error", "d.yaml",
			deployment(secureFlat, "  taskManager:\n    podTemplate:\n      spec:\n        hostNetwork: true\n"), LintOptions{}, []string{"FP008 error"}},
		{"ECDSA suites with a known RSA key are an error", "d.yaml", deployment(secureFlat, ""), LintOptions{KeyAlgorithm: x509.RSA}, []string{"FP005 error"}},
		{"ECDSA suites with a known ECDSA key pass", "d.yaml", deployment(secureFlat, ""), LintOptions{KeyAlgorithm: x509.ECDSA}, nil},
		{"mixed ECDSA and RSA suites are warned about", "d.yaml",
			deployment(strings.Replace(secureFlat, "SHA384\n", "SHA384,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n", 1), ""), LintOptions{}, []string{"FP005 warning"}},
		{"TLSv1.3 alone with TLS 1.2 suites fails every handshake", "config.yaml",
			strings.Replace(secureConf, "TLSv1.2", "TLSv1.3", 1), LintOptions{}, []string{"FP005 error"}},
		{"TLSv1.3 with its own suites passes whatever the key type", "config.yaml",
			strings.NewReplacer("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384", "TLSv1.2", "TLSv1.3").Replace(secureConf), LintOptions{KeyAlgorithm: x509.RSA}, nil},
		{"TLSv1.2 with TLS 1.3 suites alone fails every handshake", "config.yaml",
			strings.Replace(secureConf, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384", 1), LintOptions{}, []string{"FP005 error"}},
		{"a pinned peer fingerprint is an error", "config.yaml",
			secureConf + "security.ssl.internal.cert.fingerprint: 5B:AD:7F:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00\n", LintOptions{}, []string{"FP012 error"}},
		{"an empty fingerprint pins nothing", "config.yaml", secureConf + "security.ssl.rest.cert.fingerprint: \"\"\n", LintOptions{}, nil},
		{"a flat config.yaml with passwords only warns about them", "config.yaml",
			internalStores + "security.ssl.internal.enabled: true\nsecurity.ssl.internal.keystore-password: s3cret\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\nrest.bind-address: 127.0.0.1\n",
			LintOptions{}, []string{"FP004 warning"}},
		{"an empty config.yaml lacks SSL and a safe REST binding (suites matter only with SSL)", "config.yaml", "", LintOptions{}, []string{"FP001 error", "FP002 error"}},
		{"a space after a comma between suites is an error", "config.yaml",
			internalStores + "security.ssl.internal.enabled: true\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\nrest.bind-address: 127.0.0.1\n",
			LintOptions{}, []string{"FP005 error"}},
		{"a lower-case suite name is an error", "config.yaml",
			internalStores + "security.ssl.internal.enabled: true\nsecurity.ssl.algorithms: tls_ecdhe_ecdsa_with_aes_128_gcm_sha256\nrest.bind-address: 127.0.0.1\n",
			LintOptions{}, []string{"FP005 error"}},
		{"an empty entry between suites is an error, a trailing comma is not", "config.yaml",
			internalStores + "security.ssl.internal.enabled: true\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\nrest.bind-address: 127.0.0.1\n",
			LintOptions{}, []string{"FP005 error"}},
		{"a trailing comma after the suites is dropped, as by Java's split", "config.yaml",
			internalStores + "security.ssl.internal.enabled: true\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,\nrest.bind-address: 127.0.0.1\n",
			LintOptions{}, nil},
		{"the JDK SSL provider passes, in any case", "config.yaml", secureConf + "security.ssl.provider: jdk\n", LintOptions{}, nil},
		{"the OPENSSL provider warns: Flink ships without netty-tcnative", "config.yaml", secureConf + "security.ssl.provider: OPENSSL\n", LintOptions{}, []string{"FP014 warning"}},
		{"an unknown SSL provider is an error", "config.yaml", secureConf + "security.ssl.provider: BoringSSL\n", LintOptions{}, []string{"FP014 error"}},
		{"an SSL provider without SSL on is not read", "config.yaml",
			"security.ssl.internal.enabled: false\nsecurity.ssl.provider: BoringSSL\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\nrest.bind-address: 127.0.0.1\n",
			LintOptions{}, []string{"FP001 error"}},
		{"a backslash in an internal password breaks the RPC's configuration", "config.yaml",
			secureConf + "security.ssl.internal.keystore-password: 'a\\qb'\n", LintOptions{}, []string{"FP004 warning", "FP015 error"}},
		{"so does a tab, which the RPC's configuration parser refuses", "config.yaml",
			secureConf + "security.ssl.internal.keystore-password: \"a\\tb\"\n", LintOptions{}, []string{"FP004 warning", "FP015 error"}},
		{"so does a double quote in the legacy fallback of the truststore path", "flink-conf.yaml",
			"security.ssl.enabled: true\nsecurity.ssl.keystore: /tls/keystore.p12\nsecurity.ssl.truststore: /tls/\"x\".p12\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\nrest.bind-address: 127.0.0.1\n",
			LintOptions{FlinkMajor: 1}, []string{"FP001 warning", "FP015 error"}},
		{"the internal key wins over its fallback, as in Flink", "config.yaml",
			secureConf + "security.ssl.truststore: /tls/\"x\".p12\n", LintOptions{}, nil},
		{"a backslash with internal SSL off is not written anywhere", "config.yaml",
			"security.ssl.internal.enabled: false\nsecurity.ssl.internal.keystore: C:\\tls\\ks.p12\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\nrest.bind-address: 127.0.0.1\n",
			LintOptions{}, []string{"FP001 error"}},
		{"SSLv3 is an error", "config.yaml",
			internalStores + "security.ssl.internal.enabled: true\nsecurity.ssl.protocol: SSLv3\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\nrest.bind-address: ::1\n",
			LintOptions{}, []string{"FP006 error"}},
		{"SSLv3 in a list with internal SSL: weak, and a list the RPC cannot take", "config.yaml",
			internalStores + "security.ssl.internal.enabled: true\nsecurity.ssl.protocol: TLSv1.2,SSLv3\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\nrest.bind-address: ::1\n",
			LintOptions{}, []string{"FP006 error", "FP006 error"}},
		{"TLSv1.2 and TLSv1.3 listed with internal SSL on: the RPC does not start", "config.yaml",
			internalStores + "security.ssl.internal.enabled: true\nsecurity.ssl.protocol: TLSv1.2,TLSv1.3\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_AES_128_GCM_SHA256\nrest.bind-address: 127.0.0.1\n",
			LintOptions{}, []string{"FP006 error"}},
		{"the same list for REST alone passes FP006: Netty splits it", "config.yaml",
			restStores + "security.ssl.internal.enabled: false\nsecurity.ssl.rest.enabled: true\nsecurity.ssl.rest.authentication-enabled: true\nsecurity.ssl.protocol: TLSv1.2,TLSv1.3\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_AES_128_GCM_SHA256\n",
			LintOptions{}, []string{"FP001 error"}},
		{"a space after the comma is a name the JDK does not know", "config.yaml",
			restStores + "security.ssl.internal.enabled: false\nsecurity.ssl.rest.enabled: true\nsecurity.ssl.rest.authentication-enabled: true\nsecurity.ssl.protocol: TLSv1.2, TLSv1.3\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_AES_128_GCM_SHA256\n",
			LintOptions{}, []string{"FP001 error", "FP006 error"}},
		{"a lower-case protocol name is refused by the JDK", "config.yaml",
			internalStores + "security.ssl.internal.enabled: true\nsecurity.ssl.protocol: tlsv1.2\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\nrest.bind-address: 127.0.0.1\n",
			LintOptions{}, []string{"FP006 error"}},
		{"TLS is a context name, not a protocol the JDK enables", "config.yaml",
			internalStores + "security.ssl.internal.enabled: true\nsecurity.ssl.protocol: TLS\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\nrest.bind-address: 127.0.0.1\n",
			LintOptions{}, []string{"FP006 error"}},
		{"a trailing comma adds no entry (Java's split; HOCON reads it as a separator)", "config.yaml",
			internalStores + "security.ssl.internal.enabled: true\nsecurity.ssl.protocol: TLSv1.2,\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\nrest.bind-address: 127.0.0.1\n",
			LintOptions{}, nil},
		{"a YAML list of one protocol is the text [TLSv1.3] to Flink, which the JDK does not know", "config.yaml",
			internalStores + "security.ssl.internal.enabled: true\nsecurity.ssl.protocol: [TLSv1.3]\nsecurity.ssl.algorithms: TLS_AES_128_GCM_SHA256\nrest.bind-address: 127.0.0.1\n",
			LintOptions{}, []string{"FP006 error"}},
		{"a YAML list of suites is split inside its brackets", "config.yaml",
			internalStores + "security.ssl.internal.enabled: true\nsecurity.ssl.algorithms:\n  - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\nrest.bind-address: 127.0.0.1\n",
			LintOptions{}, []string{"FP005 error"}},
		{"a null value makes Flink refuse the whole config.yaml", "config.yaml",
			secureConf + "taskmanager.numberOfTaskSlots:\nenv:\n  java: {opts: ~}\nsecurity.ssl.rest.cert.fingerprint: \"\"\nx: [null]\n",
			LintOptions{}, []string{"FP016 error"}},
		{"a key written twice makes Flink refuse the whole config.yaml, whichever comes last", "config.yaml",
			"security.ssl.internal.enabled: false\n" + secureConf, LintOptions{}, []string{"FP018 error"}},
		{"so do two blocks of one key", "config.yaml",
			secureConf + "security:\n  kerberos.login.use-ticket-cache: false\nsecurity:\n  delegation.tokens.enabled: false\n", LintOptions{}, []string{"FP018 error"}},
		{"and two spellings of one key to the core schema (a bool)", "config.yaml",
			secureConf + "x:\n  true: a\n  True: b\n", LintOptions{}, []string{"FP018 error"}},
		{"a key of a flat name beside a nested one is no duplicate to Flink: the last wins", "config.yaml",
			"security.ssl.internal.enabled: false\nsecurity:\n  ssl.internal.enabled: true\n" + strings.Replace(secureConf, "security.ssl.internal.enabled: \"true\"\n", "", 1), LintOptions{}, nil},
		{"Flink's YAML 1.2 loader knows no merge key: <<'s keys stay beneath it, and SSL is off", "config.yaml",
			"on: &on {enabled: true}\nsecurity.ssl.internal:\n  <<: *on\n" + strings.Replace(secureConf, "security.ssl.internal.enabled: \"true\"\n", "", 1), LintOptions{}, []string{"FP001 error"}},
		{"a legacy flink-conf.yaml that is not YAML is read line by line", "flink-conf.yaml",
			"# legacy\nsecurity.ssl.enabled: true\n" + sharedStores + "env.java.opts: -Dx=a: b\nsecurity.ssl.algorithms: TLS_RSA_WITH_AES_128_CBC_SHA\n\tbad line\nrest.bind-address: 0.0.0.0\n",
			LintOptions{}, []string{"FP001 warning", "FP002 error", "FP005 error"}},
		{"a legacy flink-conf.yaml is not read by Flink 2", "flink-conf.yaml",
			internalStores + "security.ssl.internal.enabled: true\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\nrest.bind-address: 127.0.0.1\n",
			LintOptions{FlinkMajor: 2}, []string{"FP001 error"}},
		{"the same legacy flink-conf.yaml is fine on Flink 1", "flink-conf.yaml",
			internalStores + "security.ssl.internal.enabled: true\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\nrest.bind-address: 127.0.0.1\n",
			LintOptions{FlinkMajor: 1}, nil},
		{"web.address, rest.bind-address's fallback key, keeps REST on loopback", "config.yaml",
			strings.Replace(legacySwitchConf, "rest.bind-address", "web.address", 1), LintOptions{FlinkMajor: 1}, []string{"FP001 warning"}},
		{"so does the deprecated jobmanager.web.address", "flink-conf.yaml",
			internalStores + "security.ssl.internal.enabled: true\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\njobmanager.web.address: localhost\n", LintOptions{}, nil},
		{"rest.bind-address wins over its fallback", "config.yaml",
			"rest.bind-address: 0.0.0.0\n" + strings.Replace(legacySwitchConf, "rest.bind-address", "web.address", 1), LintOptions{FlinkMajor: 1}, []string{"FP001 warning", "FP002 error"}},
		{"security.ssl.enabled alone is an error when the version is unknown", "config.yaml",
			legacySwitchConf, LintOptions{}, []string{"FP001 error"}},
		{"security.ssl.enabled alone is a warning on Flink 1", "config.yaml",
			legacySwitchConf, LintOptions{FlinkMajor: 1}, []string{"FP001 warning"}},
		{"security.ssl.enabled alone is an error on Flink 2", "config.yaml",
			legacySwitchConf, LintOptions{FlinkMajor: 2}, []string{"FP001 error"}},
		{"security.ssl.enabled: false disables internal SSL on Flink 1", "config.yaml",
			strings.Replace(legacySwitchConf, "enabled: true", "enabled: false", 1), LintOptions{FlinkMajor: 1}, []string{"FP001 error"}},
		{"security.ssl.internal.enabled wins over security.ssl.enabled", "config.yaml",
			"security.ssl.internal.enabled: false\n" + legacySwitchConf, LintOptions{FlinkMajor: 1}, []string{"FP001 error"}},
		{"a deployment's one-item list is its item to the operator", "d.yaml",
			deployment(strings.Replace(secureFlat, "protocol: TLSv1.2", "protocol: [TLSv1.2]", 1), ""),
			LintOptions{}, nil},
		{"a deployment's list of suites is joined with semicolons, which the JDK does not split", "d.yaml",
			deployment(strings.Replace(secureFlat, "algorithms: TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "algorithms: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]", 1), ""),
			LintOptions{}, []string{"FP005 error"}},
		{"a v1_20 deployment with security.ssl.enabled alone needs no upgrade warning when init's copy turns internal SSL on, but REST SSL without a keystore stays", "d.yaml",
			deployment(strings.Replace(secureFlat, "internal.enabled", "enabled", 1), "  flinkVersion: v1_20\n"), LintOptions{}, []string{"FP017 error"}},
		{"a v2_2 deployment with security.ssl.enabled alone has no internal SSL", "d.yaml",
			deployment(strings.Replace(secureFlat, "internal.enabled", "enabled", 1), "  flinkVersion: v2_2\n"+noFlinkpki), LintOptions{}, []string{"FP001 error"}},
		{"the manifest's flinkVersion wins over the option", "d.yaml",
			deployment(strings.Replace(secureFlat, "internal.enabled", "enabled", 1), "  flinkVersion: v2_2\n"+noFlinkpki), LintOptions{FlinkMajor: 1}, []string{"FP001 error"}},
		{"REST mutual TLS through security.ssl.enabled protects REST on Flink 1", "d.yaml",
			deployment(strings.Replace(secureFlat, "rest.bind-address: 127.0.0.1", "security.ssl.enabled: true\n    security.ssl.rest.authentication-enabled: true\n"+indent(restStores, "    "), 1), "  flinkVersion: v1_20\n  jobManager:\n    replicas: 1\n"),
			LintOptions{}, nil},
		{"but not on Flink 2, which does not read security.ssl.enabled", "d.yaml",
			deployment(strings.Replace(secureFlat, "rest.bind-address: 127.0.0.1", "security.ssl.enabled: true\n    security.ssl.rest.authentication-enabled: true", 1), "  flinkVersion: v2_2\n  jobManager:\n    replicas: 1\n"),
			LintOptions{}, []string{"FP002 error"}},
		{"a misspelled TLS 1.2 suite is one the JDK refuses", "config.yaml",
			suitesConf("TLSv1.2", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA385,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"), LintOptions{}, []string{"FP005 error"}},
		{"so is a misspelled TLS 1.3 suite", "config.yaml",
			suitesConf("TLSv1.3", "TLS_AES_256_GCM_SHA386"), LintOptions{}, []string{"FP005 error"}},
		{"suites the JDK disables alone fail every handshake", "config.yaml",
			suitesConf("TLSv1.2", "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA,TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256,TLS_DH_anon_WITH_AES_128_GCM_SHA256"), LintOptions{}, []string{"FP005 error"}},
		{"the renegotiation SCSV alone negotiates nothing", "config.yaml",
			suitesConf("TLSv1.2", "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"), LintOptions{}, []string{"FP005 error"}},
		{"static ECDH with an RSA-signed certificate is no RSA suite", "config.yaml",
			suitesConf("TLSv1.2", "TLS_ECDH_RSA_WITH_AES_128_GCM_SHA256"), LintOptions{KeyAlgorithm: x509.RSA}, []string{"FP005 error"}},
		{"a disabled suite beside enabled ones is dead weight", "config.yaml",
			suitesConf("TLSv1.2", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA"), LintOptions{KeyAlgorithm: x509.ECDSA}, []string{"FP005 warning"}},
		{"an ECDSA key with only a disabled ECDSA suite beside RSA suites has none", "config.yaml",
			suitesConf("TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA"), LintOptions{KeyAlgorithm: x509.ECDSA}, []string{"FP005 error"}},
		{"REST client authentication without a REST truststore is silently off", "config.yaml",
			openRESTConf + "security.ssl.rest.enabled: true\nsecurity.ssl.rest.authentication-enabled: true\nsecurity.ssl.rest.keystore: /rest-tls/keystore.p12\nrest.bind-address: 0.0.0.0\n",
			LintOptions{}, []string{"FP002 error"}},
		{"the shared security.ssl.truststore is REST's truststore too", "config.yaml",
			openRESTConf + "security.ssl.rest.enabled: true\nsecurity.ssl.rest.authentication-enabled: true\nsecurity.ssl.rest.keystore: /rest-tls/keystore.p12\nsecurity.ssl.truststore: /rest-tls/truststore.p12\nrest.bind-address: 0.0.0.0\n",
			LintOptions{}, nil},
		{"REST client authentication with the internal stores admits every internal leaf", "config.yaml",
			openRESTConf + "security.ssl.rest.enabled: true\nsecurity.ssl.rest.authentication-enabled: true\nsecurity.ssl.rest.keystore: /flink-tls/keystore.p12\nsecurity.ssl.rest.truststore: /flink-tls//truststore.p12\nrest.bind-address: 0.0.0.0\n",
			LintOptions{}, []string{"FP002 error"}},
		{"so does REST client authentication with only the shared store keys", "config.yaml",
			"security.ssl.internal.enabled: true\nsecurity.ssl.rest.enabled: true\nsecurity.ssl.rest.authentication-enabled: true\n" + sharedStores + "security.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\nrest.bind-address: 0.0.0.0\n",
			LintOptions{}, []string{"FP002 error"}},
		{"REST stores in the init container's --out directory are the internal ones", "d.yaml",
			deployment(strings.Replace(secureFlat, "rest.bind-address: 127.0.0.1", "security.ssl.rest.enabled: true\n    security.ssl.rest.authentication-enabled: true\n    security.ssl.rest.keystore: /flink-tls/keystore.p12\n    security.ssl.rest.truststore: /rest-tls/truststore.p12", 1), "  jobManager:\n    replicas: 1\n"),
			LintOptions{}, []string{"FP002 error"}},
		{"internal SSL without stores stops every process", "config.yaml",
			strings.TrimSuffix(secureConf, internalStores), LintOptions{}, []string{"FP017 error"}},
		{"so does internal SSL with a truststore but no keystore", "config.yaml",
			strings.TrimSuffix(secureConf, internalStores) + "security.ssl.internal.truststore: /flink-tls/truststore.p12\n", LintOptions{}, []string{"FP017 error"}},
		{"the legacy switch on Flink 1 turns internal SSL on without stores", "flink-conf.yaml",
			"security.ssl.enabled: true\nsecurity.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\nrest.bind-address: 127.0.0.1\n",
			LintOptions{}, []string{"FP001 warning", "FP017 error", "FP017 error"}},
		{"a leftover security.ssl.enabled turns REST SSL on in Flink 1 without REST stores", "config.yaml",
			secureConf + "security.ssl.enabled: true\n", LintOptions{FlinkMajor: 1}, []string{"FP017 error"}},
		{"and is held to Flink 1 when the version is unknown", "config.yaml",
			secureConf + "security.ssl.enabled: true\n", LintOptions{}, []string{"FP017 error"}},
		{"Flink 2 ignores it", "config.yaml",
			secureConf + "security.ssl.enabled: true\n", LintOptions{FlinkMajor: 2}, nil},
		{"security.ssl.rest.enabled: false wins over it", "config.yaml",
			secureConf + "security.ssl.enabled: true\nsecurity.ssl.rest.enabled: false\n", LintOptions{FlinkMajor: 1}, nil},
		{"REST SSL without a keystore stops the REST endpoint", "config.yaml",
			secureConf + "security.ssl.rest.enabled: true\n", LintOptions{FlinkMajor: 2}, []string{"FP017 error"}},
		{"a REST keystore merged by the init container is one", "d.yaml",
			deployment(secureFlat+"    security.ssl.rest.enabled: \"true\"\n", "  jobManager:\n    podTemplate:\n      spec:\n        initContainers:\n          - name: flinkpki-init\n            args: "+
				wiredArgs(", --flink-conf-set, rest.bind-address=127.0.0.1, --flink-conf-set, security.ssl.rest.keystore=/rest-tls/keystore.p12")+"\n"),
			LintOptions{}, nil},
		{"a deployment's REST SSL without one is an error", "d.yaml",
			deployment(secureFlat+"    security.ssl.rest.enabled: \"true\"\n", ""), LintOptions{}, []string{"FP017 error"}},
		{"legacy lines under another name fall back to the legacy parser", "my.conf",
			internalStores + "security.ssl.internal.enabled: true\nenv.java.opts: -Dx=a: b\nsecurity.ssl.algorithms: TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\nrest.bind-address: 127.0.0.1\n",
			LintOptions{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			findings, err := LintWith([]byte(tt.input), tt.filename, tt.opts)
			if err != nil {
				t.Fatalf("Lint: %v", err)
			}
			want := slices.Clone(tt.want)
			sort.Strings(want)
			if got := ruleSet(findings); !slices.Equal(got, want) {
				t.Errorf("findings = %v, want %v\n%v", got, want, findings)
			}
		})
	}
}

func TestLintDetectsProxySidecars(t *testing.T) {
	tests := []struct {
		name     string
		template string
		want     string
	}{
		{"an nginx image in the top-level template is a proxy", "  podTemplate:\n    spec:\n      containers:\n        - name: web\n          image: nginx:1.27\n", "web"},
		{"an envoy-named container in the JobManager template is a proxy", "  jobManager:\n    podTemplate:\n      spec:\n        containers:\n          - name: envoy-rest\n            image: example/proxy\n", "envoy-rest"},
		{"a native sidecar init container is a proxy", "  podTemplate:\n    spec:\n      initContainers:\n        - name: tls\n          image: ghostunnel/ghostunnel\n          restartPolicy: Always\n", "tls"},
		{"an ordinary init container is not a proxy", "  podTemplate:\n    spec:\n      initContainers:\n        - name: tls\n          image: nginx\n", ""},
		{"a proxy only in the TaskManager template does not front REST", "  taskManager:\n    podTemplate:\n      spec:\n        containers:\n          - name: nginx\n", ""},
		{"a log forwarder is not a proxy", "  podTemplate:\n    spec:\n      containers:\n        - name: fluentbit\n          image: fluent/fluent-bit:1.9.6\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subjects, err := readSubjects([]byte(deployment(secureFlat, tt.template)), "d.yaml")
			if err != nil {
				t.Fatalf("readSubjects: %v", err)
			}
			if got := proxySidecar(subjects[0].deployment); got != tt.want {
				t.Errorf("proxySidecar = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLintReadsEveryDeploymentOfAManifest(t *testing.T) {
	manifest := "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: flink-t\n---\n" +
		deployment(secureFlat, "") + "---\n" +
		strings.NewReplacer("name: t\n", "name: second\n", "  podTemplate:\n    spec:\n", "  podTemplate:\n    spec:\n      hostNetwork: true\n").Replace(deployment(secureFlat, ""))
	findings, err := Lint([]byte(manifest), "all.yaml")
	if err != nil {
		t.Fatalf("Lint: %v", err)
	}
	if len(findings) != 1 || findings[0].Rule != RuleHostNetwork || !strings.Contains(findings[0].Message, `"second"`) {
		t.Errorf("findings = %v, want one %s naming \"second\"", findings, RuleHostNetwork)
	}
}

func TestLintRefusesUnreadableInput(t *testing.T) {
	tests := []struct {
		name  string
		input string
	}{
		{"a manifest without a FlinkDeployment is refused", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n"},
		{"a broken FlinkDeployment manifest is refused", "kind: FlinkDeployment\nspec: [\n"},
		{"a pod template of the wrong type is refused", deployment(secureFlat, "  podTemplate:\n    spec:\n      hostNetwork: [yes]\n")},
		{"a flinkConfiguration that is a list is refused", "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\nspec:\n  flinkConfiguration: [a, b]\n"},
		{"text that is neither YAML nor configuration lines is refused", "{{{ not yaml"},
		{"several plain YAML documents are refused", "a: 1\n---\nb: 2\n"},
		{"an alias bomb is refused instead of expanded", aliasBomb()},
		{"YAML of another program (Envoy) is refused, not linted as Flink's", "static_resources:\n  listeners: []\nadmin:\n  address: {socket_address: {address: 127.0.0.1}}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Lint([]byte(tt.input), "input.yaml")
			if !errors.Is(err, ErrLintInput) {
				t.Fatalf("Lint error = %v, want ErrLintInput", err)
			}
		})
	}
}

// TestLintRefusesInputWithNothingToLint: input without a key (an empty
// stdin, blanks, comments, an empty document or mapping) is no Flink
// configuration, and is refused in one sentence naming it, instead of
// drawing the findings of Flink's defaults. A config.yaml is Flink's by
// its name and is linted even empty (TestLintRules).
func TestLintRefusesInputWithNothingToLint(t *testing.T) {
	for _, name := range []string{"<stdin>", "notes.yaml"} {
		for _, input := range []string{"", "\n", "  \n\t\n", "# to do\n", "---\n", "--- # x\n---\n", "{}\n"} {
			_, err := Lint([]byte(input), name)
			if !errors.Is(err, ErrLintInput) || err.Error() != "no FlinkDeployment or Flink configuration keys in "+name {
				t.Errorf("Lint(%q, %s) error = %v, want ErrLintInput: no FlinkDeployment or Flink configuration keys in %s", input, name, err, name)
			}
		}
	}
}

// TestAConfigYAMLIsLintedWhateverItsKeys: a file named config.yaml is
// Flink's by its name, so one without a Flink key is still linted (and
// lacks internal SSL).
func TestAConfigYAMLIsLintedWhateverItsKeys(t *testing.T) {
	findings, err := Lint([]byte("static_resources: {}\n"), "config.yaml")
	if err != nil || len(findings) == 0 || findings[0].Rule != RuleInternalSSL {
		t.Fatalf("Lint(config.yaml without Flink keys) = %v, %v; want FP001 first", findings, err)
	}
}

// TestLintRefusesABrokenConfigYAML: Flink 1.19+ parses config.yaml as
// YAML and refuses to start on an error, so lint refuses it too, naming
// the parse error, instead of reading it line by line as a legacy
// flink-conf.yaml and linting keys Flink never loads. A file of another
// name may be a legacy one (flat lines that are not YAML), read as Flink
// 1.x reads it; and a config.yaml with the %YAML 1.2 directive, which
// Flink's YAML 1.2 parser takes, is read too.
func TestLintRefusesABrokenConfigYAML(t *testing.T) {
	broken := "security:\n  ssl:\n    internal:\n      enabled: [true\n"
	_, err := Lint([]byte(broken), "conf/config.yaml")
	if !errors.Is(err, ErrLintInput) || !strings.Contains(err.Error(), "Flink refuses to load it") || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("Lint(config.yaml) error = %v, want the YAML error with its line", err)
	}
	if _, err := Lint([]byte("%YAML 1.2\n---\nsecurity.ssl.internal.enabled: true\nrest.port: 8081\n"), "conf/config.yaml"); err != nil {
		t.Errorf("Lint of a YAML 1.2 config.yaml Flink loads: %v", err)
	}
	legacy := "security.ssl.internal.enabled: true\nenv.java.opts: -Dlabel: x\n"
	if _, err := Lint([]byte(legacy), "flink.conf"); err != nil {
		t.Errorf("flat configuration lines that are not YAML: %v, want them read as flink-conf.yaml lines", err)
	}
}

// TestLintHoldsAnUnknownVersionToEveryVersion: with the Flink version
// unknown, each rule runs as Flink 1.x and as Flink 2.x read the file, and
// lint reports the union. With internal SSL on only through
// security.ssl.enabled, Flink 1.x runs TLS on the shared stores (and the
// rules that read it must fire), Flink 2 none; a finding that holds on one
// version only says which, and one both give comes once, as it is. A known
// version is held to itself alone.
func TestLintHoldsAnUnknownVersionToEveryVersion(t *testing.T) {
	const onlyOn = "only; the Flink version is unknown, so lint checks 1.x and 2.x: --flink-version names the one that runs)"
	legacyOn := "security.ssl.enabled: true\n" + sharedStores + "rest.bind-address: 127.0.0.1\n"
	const ecdsaSuite = "security.ssl.algorithms: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n"
	tests := []struct {
		name string
		conf string
		opts LintOptions
		rule string
		on   string // "1.x" or "2.x" when the finding holds there only, "" on both, "none" for no finding
	}{
		{"a protocol list the RPC cannot parse fails on Flink 1.x, which runs internal SSL through security.ssl.enabled", legacyOn + ecdsaSuite + "security.ssl.protocol: TLSv1.2,TLSv1.3\n", LintOptions{}, RuleProtocol, "1.x"},
		{"so does a quote in a shared store password", legacyOn + ecdsaSuite + "security.ssl.keystore-password: 'pa\"ss'\n", LintOptions{}, RuleRPCQuoting, "1.x"},
		{"and Flink's default suites, which accept RSA keys only", legacyOn, LintOptions{}, RuleCipherSuites, "1.x"},
		{"and an SSL provider Flink does not know", legacyOn + ecdsaSuite + "security.ssl.provider: BoringSSL\n", LintOptions{}, RuleSSLProvider, "1.x"},
		{"REST mutual TLS through security.ssl.enabled protects REST on Flink 1.x only", secureConf + "security.ssl.enabled: true\nsecurity.ssl.rest.authentication-enabled: true\n" + restStores + "rest.bind-address: 0.0.0.0\n",
			LintOptions{}, RuleRESTUnauthenticated, "2.x"},
		{"a protocol list with security.ssl.internal.enabled fails on every version, once and unmarked", strings.Replace(secureConf, "protocol: TLSv1.2", "protocol: TLSv1.2,TLSv1.3", 1), LintOptions{}, RuleProtocol, ""},
		{"REST open on every version, for reasons worded apart, is one finding, unmarked", "security.ssl.enabled: true\n" + sharedStores, LintOptions{}, RuleRESTUnauthenticated, ""},
		{"Flink 2 given, the protocol list it never reads is no finding", legacyOn + ecdsaSuite + "security.ssl.protocol: TLSv1.2,TLSv1.3\n", LintOptions{FlinkMajor: 2}, RuleProtocol, "none"},
		{"Flink 1 given, it is one, unmarked", legacyOn + ecdsaSuite + "security.ssl.protocol: TLSv1.2,TLSv1.3\n", LintOptions{FlinkMajor: 1}, RuleProtocol, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			findings, err := LintWith([]byte(tt.conf), "config.yaml", tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []Finding
			for _, f := range findings {
				if f.Rule == tt.rule {
					got = append(got, f)
				}
			}
			switch {
			case tt.on == "none":
				if len(got) != 0 {
					t.Errorf("want no %s finding, got %v", tt.rule, got)
				}
			case len(got) != 1:
				t.Errorf("want one %s finding, got %v", tt.rule, findings)
			case tt.on == "" && strings.Contains(got[0].Message, onlyOn):
				t.Errorf("a finding of every version says it holds on one: %s", got[0])
			case tt.on != "" && !strings.HasSuffix(got[0].Message, "(on Flink "+tt.on+" "+onlyOn):
				t.Errorf("the finding does not say it holds on Flink %s only: %s", tt.on, got[0])
			}
		})
	}
}

func TestFindingString(t *testing.T) {
	f := Finding{Rule: "FP006", Severity: SeverityError, Message: "config.yaml allows TLSv1", Fix: "set security.ssl.protocol: TLSv1.2"}
	want := "FP006 error: config.yaml allows TLSv1 (fix: set security.ssl.protocol: TLSv1.2)"
	if got := f.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// FP010 follows the flinkpki init container's output to where Flink reads
// it, in the pods of each Flink process; FP011 finds templates the
// operator would merge by position.
func TestLintFollowsTheInitContainerToFlink(t *testing.T) {
	wired := deployment(secureFlat, "")
	broken := func(old, new string) string {
		t.Helper()
		if !strings.Contains(wired, old) {
			t.Fatalf("the fixture lacks %q", old)
		}
		return strings.ReplaceAll(wired, old, new)
	}
	restInit := "          - name: flinkpki-rest-init\n            image: flinkpki/flinkpki:v1\n            args: [init, --role, rest-server, --out, /rest-tls]\n"
	tests := []struct {
		name string
		in   string
		want []string
		says []string // in the FP010 or FP011 message
	}{
		{"the wired fixture passes", wired, nil, nil},
		{"FLINK_CONF_DIR elsewhere leaves Flink without the passwords",
			broken("{name: FLINK_CONF_DIR, value: /flink-conf}", "{name: FLINK_CONF_DIR, value: /opt/flink/conf}"),
			[]string{"FP010 error"}, []string{"JobManager and TaskManager pods", "does not set FLINK_CONF_DIR to /flink-conf"}},
		{"stores on a hostPath leave the pod",
			broken("{name: tls, emptyDir: {medium: Memory}}", "{name: tls, hostPath: {path: /var/flink-tls}}"),
			[]string{"FP010 error"}, []string{`volume "tls", which is not an emptyDir`}},
		{"the Flink container mounting the stores elsewhere does not find them",
			broken("{name: tls, mountPath: /flink-tls, readOnly: true}", "{name: tls, mountPath: /tls, readOnly: true}"),
			[]string{"FP010 error"}, []string{`flink-main-container does not mount volume "tls" at /flink-tls`}},
		{"stores written outside every volume stay in the init container",
			broken("            - {name: tls, mountPath: /flink-tls}\n", ""),
			[]string{"FP010 error"}, []string{"writes the keystore and truststore to /flink-tls, which is on none of its volumes"}},
		{"a volume the template does not define is refused",
			broken("        - {name: conf, emptyDir: {}}\n", ""),
			[]string{"FP010 error"}, []string{`mounts volume "conf", which the pod template does not define`}},
		{"without --flink-conf-out the passwords reach no configuration",
			broken(", --flink-conf-out, /flink-conf", ""),
			[]string{"FP010 error"}, []string{"has no --flink-conf-out"}},
		{"without --flink-conf-out passwords in flinkConfiguration do not open the stores init makes",
			strings.Replace(broken(", --flink-conf-out, /flink-conf", ""), "  flinkConfiguration:\n", "  flinkConfiguration:\n    security.ssl.internal.keystore-password: s3cret\n", 1),
			[]string{"FP004 error", "FP010 error"}, []string{"the ones in flinkConfiguration do not open them"}},
		{"without --out init refuses to start",
			broken("--out, /flink-tls, ", ""),
			[]string{"FP010 error"}, []string{"has no --out"}},
		{"the configuration copied from the operator's ConfigMap by its name passes",
			strings.Replace(broken("{name: flink-config-volume, mountPath: /opt/flink/conf}", "{name: src, mountPath: /opt/flink/conf}"),
				"      volumes:\n", "      volumes:\n        - {name: src, configMap: {name: flink-config-t}}\n", 1),
			nil, nil},
		{"a ConfigMap of another name keeps the pod from starting",
			strings.Replace(broken("{name: flink-config-volume, mountPath: /opt/flink/conf}", "{name: src, mountPath: /opt/flink/conf}"),
				"      volumes:\n", "      volumes:\n        - {name: src, configMap: {name: flink-config-other}}\n", 1),
			[]string{"FP010 error"}, []string{`ConfigMap "flink-config-other", but the operator writes it to flink-config-t`}},
		{"no init container and no password: Flink refuses to start",
			deployment(secureFlat, noFlinkpkiAnywhere), []string{"FP002 error", "FP010 error"},
			[]string{"JobManager and TaskManager pods", "no flinkpki init container makes their stores"}},
		{"no init container but a configuration directory of its own (baked into the image) is not followed",
			deployment(secureFlat, noFlinkpkiAnywhere+"  taskManager:\n    podTemplate:\n      spec:\n        containers:\n          - name: flink-main-container\n            env: [{name: FLINK_CONF_DIR, value: /opt/flink/baked-conf}]\n"),
			[]string{"FP002 error", "FP010 error"}, []string{"in its JobManager pods (from spec.podTemplate): no flinkpki init container"}},
		{"no init container but passwords inline is FP004's",
			deployment(secureFlat+"    security.ssl.internal.keystore-password: s3cret\n", noFlinkpkiAnywhere), []string{"FP002 error", "FP004 error", "FP017 error"}, nil},
		{"internal SSL off is FP001's alone",
			deployment(strings.Replace(secureFlat, `enabled: "true"`, `enabled: "false"`, 1), noFlinkpkiAnywhere), []string{"FP001 error", "FP002 error"}, nil},
		{"an init container in the JobManager template alone leaves TaskManagers without stores",
			deployment(secureFlat, noFlinkpki+"  jobManager:\n"+indent(wiredTemplate(", --flink-conf-set, rest.bind-address=127.0.0.1", ""), "  ")),
			[]string{"FP010 error"}, []string{"in its TaskManager pods (from spec.podTemplate): no flinkpki init container"}},
		{"$(VAR) in the init container's arguments reads its literal env, as the kubelet does",
			strings.NewReplacer("--out, /flink-tls,", "--out, $(TLS_DIR),", "          image: flinkpki/flinkpki:v1\n", "          image: flinkpki/flinkpki:v1\n          env: [{name: TLS_DIR, value: /flink-tls}]\n").Replace(wired), nil, nil},
		{"and follows it to the wrong place when that is where it points",
			strings.NewReplacer("--out, /flink-tls,", "--out, $(TLS_DIR),", "          image: flinkpki/flinkpki:v1\n", "          image: flinkpki/flinkpki:v1\n          env: [{name: TLS_DIR, value: /tmp/tls}]\n").Replace(wired),
			[]string{"FP010 error"}, []string{"to /tmp/tls, which is on none of its volumes"}},
		{"a path from a value lint cannot see is not followed",
			strings.NewReplacer("--out, /flink-tls,", "--out, $(TLS_DIR),", "          image: flinkpki/flinkpki:v1\n", "          image: flinkpki/flinkpki:v1\n          env: [{name: TLS_DIR, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]\n").Replace(wired), nil, nil},
		{"the token volume mounted in the Flink container is readable by job code",
			strings.NewReplacer(", --flink-conf-out, /flink-conf", ", --flink-conf-out, /flink-conf, --token-file, /var/run/secrets/flinkpki/token",
				"            - {name: flink-config-volume, mountPath: /opt/flink/conf}\n", "            - {name: flink-config-volume, mountPath: /opt/flink/conf}\n            - {name: flinkpki-token, mountPath: /var/run/secrets/flinkpki}\n",
				"            - {name: conf, mountPath: /flink-conf}\n      volumes:", "            - {name: conf, mountPath: /flink-conf}\n            - {name: flinkpki-token, mountPath: /var/run/secrets/flinkpki}\n      volumes:").Replace(wired),
			[]string{"FP013 warning"}, []string{`container "flink-main-container" of the JobManager and TaskManager pods mounts volume "flinkpki-token"`}},
		{"the token volume in the init container alone is fine",
			strings.NewReplacer(", --flink-conf-out, /flink-conf", ", --flink-conf-out, /flink-conf, --token-file, /var/run/secrets/flinkpki/token",
				"            - {name: flink-config-volume, mountPath: /opt/flink/conf}\n", "            - {name: flink-config-volume, mountPath: /opt/flink/conf}\n            - {name: flinkpki-token, mountPath: /var/run/secrets/flinkpki}\n").Replace(wired),
			nil, nil},
		{"flinkpki run through a shell is not followed",
			deployment(secureFlat, noFlinkpkiAnywhere+"  taskManager:\n    podTemplate:\n      spec:\n        initContainers:\n          - name: enroll\n            image: flinkpki/flinkpki:v1\n            command: [sh, -c, 'flinkpki init --out /flink-tls']\n"),
			[]string{"FP002 error", "FP010 error"}, []string{"in its JobManager pods (from spec.podTemplate): no flinkpki init container"}},
		{"security.ssl.protocol in flinkConfiguration does not reach Flink past the init container",
			strings.Replace(wired, "security.ssl.protocol: TLSv1.2", "security.ssl.protocol: TLSv1.3", 1),
			[]string{"FP005 error", "FP010 warning"}, []string{"sets security.ssl.protocol: TLSv1.3, which has no effect", "says TLSv1.2"}},
		{"the same protocol through --tls-protocol passes",
			strings.NewReplacer("security.ssl.protocol: TLSv1.2", "security.ssl.protocol: TLSv1.3", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384",
				", --flink-conf-out, /flink-conf", ", --flink-conf-out, /flink-conf, --tls-protocol=tlsv1.3").Replace(wired), nil, nil},
		{"TaskManagers and JobManager on different TLS protocols cannot reach each other",
			strings.Replace(wired, ", --flink-conf-set, rest.bind-address=127.0.0.1", ", --flink-conf-set, rest.bind-address=127.0.0.1, --tls-protocol, TLSv1.3", 1),
			[]string{"FP010 error"}, []string{"(--tls-protocol: TaskManager pods TLSv1.2, JobManager pods TLSv1.3)"}},
		{"an init container for REST material is not the internal one",
			deployment(secureFlat, strings.TrimSuffix(loopbackJobManager, "\n")+"\n"+restInit), nil, nil},
		{"a JobManager init container at the top-level one's position is merged into it",
			deployment(secureFlat, wiredTemplate(", --flink-conf-set, rest.bind-address=127.0.0.1", "")+"  jobManager:\n    podTemplate:\n      spec:\n        initContainers:\n"+restInit),
			[]string{"FP011 warning"}, []string{`spec.jobManager.podTemplate initContainers[0] "flinkpki-rest-init" into spec.podTemplate's "flinkpki-init"`}},
		{"unless arrays merge by name",
			deployment(secureFlat+"    kubernetes.operator.pod-template.merge-arrays-by-name: \"true\"\n", wiredTemplate(", --flink-conf-set, rest.bind-address=127.0.0.1", "")+"  jobManager:\n    podTemplate:\n      spec:\n        initContainers:\n"+restInit),
			nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			findings, err := Lint([]byte(tt.in), "d.yaml")
			if err != nil {
				t.Fatalf("Lint: %v", err)
			}
			want := slices.Clone(tt.want)
			sort.Strings(want)
			if got := ruleSet(findings); !slices.Equal(got, want) {
				t.Fatalf("findings = %v, want %v\n%v", got, want, findings)
			}
			for _, s := range tt.says {
				if !strings.Contains(findings[len(findings)-1].Message, s) {
					t.Errorf("the finding does not say %q: %s", s, findings[len(findings)-1])
				}
			}
		})
	}
}
