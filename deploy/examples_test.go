package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/flinkpki/flinkpki/flinkconf"
)

// example is one FlinkDeployment example with its decoded pod templates.
type example struct {
	path, name, mode, serviceAccount string
	conf                             map[string]any
	top, jobManager                  corev1.PodTemplateSpec
}

var exampleFiles = map[string]string{
	"standalone": "examples/standalone/flinkdeployment.yaml",
	"native":     "examples/native/flinkdeployment.yaml",
}

// podTemplateAt decodes the pod template at spec.<path...> strictly into a
// PodTemplateSpec, on top of the CRD schema check.
func podTemplateAt(fd flinkDeployment, path ...string) (corev1.PodTemplateSpec, error) {
	var cur any = map[string]any(fd)
	for _, p := range append([]string{"spec"}, path...) {
		m, ok := cur.(map[string]any)
		if !ok {
			return corev1.PodTemplateSpec{}, fmt.Errorf("spec.%s: not an object", strings.Join(path, "."))
		}
		cur = m[p]
	}
	if cur == nil {
		return corev1.PodTemplateSpec{}, fmt.Errorf("spec.%s is missing", strings.Join(path, "."))
	}
	j, err := json.Marshal(cur)
	if err != nil {
		return corev1.PodTemplateSpec{}, err
	}
	var pts corev1.PodTemplateSpec
	strictErrs, err := kjson.UnmarshalStrict(j, &pts, kjson.DisallowUnknownFields)
	return pts, errors.Join(append(strictErrs, err)...)
}

func loadExample(t testing.TB, mode string) example {
	t.Helper()
	path := exampleFiles[mode]
	fd := only[flinkDeployment](t, mustDecodeFile(t, path))
	spec := fd["spec"].(map[string]any)
	ex := example{path: path, mode: fmt.Sprint(spec["mode"]), serviceAccount: fmt.Sprint(spec["serviceAccount"])}
	ex.name = fd["metadata"].(map[string]any)["name"].(string)
	ex.conf, _ = spec["flinkConfiguration"].(map[string]any)
	var err error
	if ex.top, err = podTemplateAt(fd, "podTemplate"); err != nil {
		t.Fatalf("%s: podTemplate: %v", path, err)
	}
	if ex.jobManager, err = podTemplateAt(fd, "jobManager", "podTemplate"); err != nil {
		t.Fatalf("%s: jobManager.podTemplate: %v", path, err)
	}
	return ex
}

func container(t testing.TB, cs []corev1.Container, name string) *corev1.Container {
	t.Helper()
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	t.Fatalf("no container %q", name)
	return nil
}

func volume(t testing.TB, vs []corev1.Volume, name string) *corev1.Volume {
	t.Helper()
	for i := range vs {
		if vs[i].Name == name {
			return &vs[i]
		}
	}
	t.Fatalf("no volume %q", name)
	return nil
}

func TestExamplesUseTheirIntendedMode(t *testing.T) {
	for mode := range exampleFiles {
		t.Run(mode, func(t *testing.T) {
			ex := loadExample(t, mode)
			if ex.mode != mode {
				t.Fatalf("spec.mode = %q, want %q", ex.mode, mode)
			}
			if ex.serviceAccount == "" || ex.serviceAccount == "default" || ex.serviceAccount == "flink" {
				t.Fatalf("serviceAccount = %q, want one dedicated to this cluster", ex.serviceAccount)
			}
			// TaskManagers run job code: an account of their own, which the
			// kustomization creates, keeps their tokens from the JobManager's
			// roles (REST server material among them).
			tm := fmt.Sprint(ex.conf[flinkconf.TaskManagerServiceAccountKey])
			if tm == "" || tm == "<nil>" || tm == ex.serviceAccount {
				t.Fatalf("%s = %q, want a TaskManager account other than %q", flinkconf.TaskManagerServiceAccountKey, tm, ex.serviceAccount)
			}
			var accounts []string
			for _, o := range rendered(t, path.Dir(ex.path)) {
				if o.Kind == "ServiceAccount" {
					accounts = append(accounts, o.Name)
				}
			}
			if !slices.Contains(accounts, ex.serviceAccount) || !slices.Contains(accounts, tm) {
				t.Errorf("the kustomization creates service accounts %v, want %s and %s", accounts, ex.serviceAccount, tm)
			}
			auto := ex.top.Spec.AutomountServiceAccountToken
			if auto == nil || *auto {
				t.Error("TaskManagers (the top-level pod template) must not mount API credentials")
			}
			jmAuto := ex.jobManager.Spec.AutomountServiceAccountToken
			if jmAuto != nil && *jmAuto {
				t.Error("the JobManager must not mount API credentials into every container (the top-level template's false holds unless it says otherwise)")
			}
			// Only a native JobManager calls the API, and only from
			// flink-main-container: the network-facing REST proxy and the
			// init containers never hold its token.
			const apiPath = "/var/run/secrets/kubernetes.io/serviceaccount"
			var holders []string
			for _, t := range []corev1.PodTemplateSpec{ex.top, ex.jobManager} {
				for _, c := range append(append([]corev1.Container(nil), t.Spec.InitContainers...), t.Spec.Containers...) {
					for _, m := range c.VolumeMounts {
						if m.MountPath == apiPath {
							holders = append(holders, c.Name)
						}
					}
				}
			}
			want := []string(nil)
			if mode == "native" {
				want = []string{"flink-main-container"}
				v := volume(t, ex.jobManager.Spec.Volumes, "kube-api-access")
				if v.Projected == nil || len(v.Projected.Sources) != 3 || v.Projected.Sources[0].ServiceAccountToken == nil || v.Projected.Sources[0].ServiceAccountToken.Audience != "" {
					t.Errorf("kube-api-access is not the kubelet's projection of an API token, CA and namespace: %+v", v)
				}
			}
			if !slices.Equal(holders, want) {
				t.Errorf("containers mounting the API token at %s: %v, want %v", apiPath, holders, want)
			}
		})
	}
}

func TestExampleFlinkConfigurationEnablesInternalTLSWithoutPasswords(t *testing.T) {
	want := map[string]string{
		"kubernetes.operator.pod-template.merge-arrays-by-name": "true",
		"security.ssl.internal.enabled":                         "true",
		"security.ssl.internal.keystore":                        "/flink-tls/keystore.p12",
		"security.ssl.internal.keystore-type":                   "PKCS12",
		"security.ssl.internal.truststore":                      "/flink-tls/truststore.p12",
		"security.ssl.internal.truststore-type":                 "PKCS12",
		"security.ssl.protocol":                                 "TLSv1.2",
		"security.ssl.algorithms":                               "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
		// REST listens on loopback (see the init args), where the operator's
		// startup probe cannot reach it.
		"kubernetes.operator.jm-deployment.startup.probe.enabled": "false",
	}
	for mode := range exampleFiles {
		t.Run(mode, func(t *testing.T) {
			ex := loadExample(t, mode)
			// The operator removes rest.bind-address from the ConfigMap it
			// writes: set here it would only look like protection.
			if v, ok := ex.conf["rest.bind-address"]; ok {
				t.Errorf("flinkConfiguration sets rest.bind-address: %v, which the operator drops; the init container sets it", v)
			}
			for k, v := range want {
				if got, ok := ex.conf[k].(string); !ok || got != v {
					t.Errorf("flinkConfiguration[%q] = %v, want the string %q", k, ex.conf[k], v)
				}
			}
			for k := range ex.conf {
				if strings.Contains(strings.ToLower(k), "password") {
					t.Errorf("flinkConfiguration carries %q: passwords belong to the pod, not the manifest", k)
				}
			}
		})
	}
}

func TestExampleInitContainerEnrollsAndRewritesTheConfiguration(t *testing.T) {
	for mode := range exampleFiles {
		t.Run(mode, func(t *testing.T) {
			ex := loadExample(t, mode)
			spec := ex.top.Spec
			initC := container(t, spec.InitContainers, "flinkpki-init")
			wantArgs := []string{"init", "--cluster", ex.name, "--role", "$(FLINKPKI_ROLE)", "--holder", "$(POD_NAME)",
				"--out", "/flink-tls", "--token-file", "/var/run/secrets/flinkpki/token",
				"--flink-conf-src", "/flink-conf-src", "--flink-conf-out", "/flink-conf",
				"--flink-conf-set", "rest.bind-address=127.0.0.1", "--timeout", "5m"}
			if !slices.Equal(initC.Args, wantArgs) {
				t.Errorf("init args = %q, want %q", initC.Args, wantArgs)
			}
			env := map[string]corev1.EnvVar{}
			for _, e := range initC.Env {
				env[e.Name] = e
			}
			if env["FLINKPKI_SERVER"].Value != "flinkpki.flinkpki.svc:7443" || env["FLINKPKI_CA_FILE"].Value != "/etc/flinkpki-ca/server-ca.crt" {
				t.Errorf("init env = %+v, want the flinkpki Service and the server CA file", initC.Env)
			}
			if r := env["FLINKPKI_ROLE"].ValueFrom; r == nil || r.FieldRef == nil || r.FieldRef.FieldPath != "metadata.labels['component']" {
				t.Errorf("FLINKPKI_ROLE must come from the operator's component label, got %+v", env["FLINKPKI_ROLE"])
			}
			checkRestricted(t, &spec, initC, true)

			token := volume(t, spec.Volumes, "flinkpki-token")
			if token.Projected == nil || len(token.Projected.Sources) != 1 || token.Projected.Sources[0].ServiceAccountToken == nil {
				t.Fatalf("flinkpki-token must be a projected service-account token, got %+v", token.VolumeSource)
			}
			sat := token.Projected.Sources[0].ServiceAccountToken
			if sat.Audience != "flinkpki" || sat.ExpirationSeconds == nil || *sat.ExpirationSeconds != 600 || sat.Path != "token" {
				t.Errorf("token projection = %+v, want audience flinkpki, 600 s, path token", sat)
			}
			if cm := volume(t, spec.Volumes, "flinkpki-conf-src").ConfigMap; cm == nil || cm.Name != "flink-config-"+ex.name {
				t.Errorf("flinkpki-conf-src must be the operator's ConfigMap flink-config-%s, got %+v", ex.name, cm)
			}
			if cm := volume(t, spec.Volumes, "flinkpki-server-ca").ConfigMap; cm == nil || cm.Name != "flinkpki-server-ca" {
				t.Errorf("flinkpki-server-ca must be the ConfigMap flinkpki-server-ca, got %+v", cm)
			}
			if ed := volume(t, spec.Volumes, "flink-tls").EmptyDir; ed == nil || ed.Medium != corev1.StorageMediumMemory {
				t.Errorf("flink-tls must be an in-memory emptyDir, got %+v", ed)
			}
			if ed := volume(t, spec.Volumes, "flink-conf").EmptyDir; ed == nil {
				t.Error("flink-conf must be an emptyDir")
			}
			if spec.HostNetwork || ex.jobManager.Spec.HostNetwork {
				t.Error("hostNetwork is set")
			}
		})
	}
}

func TestExampleMainContainerReadsTheRewrittenConfigurationOnly(t *testing.T) {
	for mode := range exampleFiles {
		t.Run(mode, func(t *testing.T) {
			ex := loadExample(t, mode)
			main := container(t, ex.top.Spec.Containers, "flink-main-container")
			if !slices.ContainsFunc(main.Env, func(e corev1.EnvVar) bool { return e.Name == "FLINK_CONF_DIR" && e.Value == "/flink-conf" }) {
				t.Errorf("main container env %+v lacks FLINK_CONF_DIR=/flink-conf", main.Env)
			}
			mounts := map[string]string{}
			for _, m := range main.VolumeMounts {
				mounts[m.Name] = m.MountPath
			}
			if mounts["flink-conf"] != "/flink-conf" || mounts["flink-tls"] != "/flink-tls" {
				t.Errorf("main container mounts = %v, want flink-conf and flink-tls", mounts)
			}
			if _, ok := mounts["flinkpki-token"]; ok {
				t.Error("the main container mounts the enrollment token: job code could enroll with it")
			}
		})
	}
}

func TestExampleRESTSidecarGetsMaterialFromTheRESTCA(t *testing.T) {
	for mode := range exampleFiles {
		t.Run(mode, func(t *testing.T) {
			ex := loadExample(t, mode)
			spec := ex.jobManager.Spec
			restInit := container(t, spec.InitContainers, "flinkpki-rest-init")
			args := strings.Join(restInit.Args, " ")
			for _, want := range []string{"init --cluster " + ex.name + " --role rest-server", "--out /rest-tls", "--dns " + ex.name + "-rest-tls"} {
				if !strings.Contains(args, want) {
					t.Errorf("rest init args %q lack %q", args, want)
				}
			}
			if strings.Contains(args, "--flink-conf") {
				t.Error("the REST init container must not rewrite Flink's configuration")
			}
			checkRestricted(t, &ex.top.Spec, restInit, true)
			proxy := container(t, spec.Containers, "rest-proxy")
			checkRestricted(t, &ex.top.Spec, proxy, true)
			if ed := volume(t, spec.Volumes, "rest-tls").EmptyDir; ed == nil || ed.Medium != corev1.StorageMediumMemory {
				t.Errorf("rest-tls must be an in-memory emptyDir, got %+v", ed)
			}
		})
	}
}

// secretLooking matches keys and values that carry credentials: passwords,
// PEM private keys, and Envoy's inline key material (file references such as
// private_key.filename are fine).
var secretLooking = regexp.MustCompile(`(?i)(password|passwd|-----BEGIN [A-Z ]*PRIVATE KEY-----|inline_(string|bytes))`)

// findSecrets walks a decoded manifest and returns the paths of keys or
// string values that look like credentials.
func findSecrets(path string, v any) []string {
	var found []string
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			if secretLooking.MatchString(k) {
				found = append(found, path+"."+k)
			}
			found = append(found, findSecrets(path+"."+k, child)...)
		}
	case []any:
		for i, child := range v {
			found = append(found, findSecrets(fmt.Sprintf("%s[%d]", path, i), child)...)
		}
	case string:
		if secretLooking.MatchString(v) {
			found = append(found, path)
		}
	}
	return found
}

func TestNoManifestShipsCredentials(t *testing.T) {
	planted := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  config.yaml: \"security.ssl.internal.keystore-password: hunter2\"\n"
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(planted), &doc); err != nil {
		t.Fatal(err)
	}
	if len(findSecrets("", doc)) == 0 {
		t.Fatal("the credential detector missed a planted keystore password")
	}
	if !secretLooking.MatchString("-----BEGIN EC PRIVATE KEY-----") {
		t.Fatal("the credential detector missed a PEM private key")
	}
	for _, dir := range kustomizationDirs(t) {
		if strings.HasSuffix(dir, "tokenreview") {
			continue // a Component cannot be rendered alone; its objects are plain files below
		}
		for _, o := range rendered(t, dir) {
			switch o.Kind {
			case "Secret":
				t.Errorf("%s renders the Secret %q: Secrets are created by the operator of flinkpki, never shipped", dir, o.Name)
			case "ConfigMap", "FlinkDeployment":
				j, err := json.Marshal(o.Value)
				if err != nil {
					t.Fatal(err)
				}
				var generic map[string]any
				if err := json.Unmarshal(j, &generic); err != nil {
					t.Fatal(err)
				}
				if found := findSecrets(o.Kind+"/"+o.Name, generic); len(found) > 0 {
					t.Errorf("%s: credential-looking entries: %v", dir, found)
				}
			}
		}
	}
	for _, f := range []string{"examples/nginx/nginx.conf", "examples/envoy/envoy.yaml", "kubernetes/jwks.json"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if secretLooking.Match(data) {
			t.Errorf("%s contains credential-looking text", f)
		}
	}
}

// TestANativeExampleHasANamespaceOfItsOwn: a native JobManager may create
// pods and write ConfigMaps in its namespace, so sharing it with another
// cluster would let its job code enroll as that cluster's service account
// or rewrite the server CA the other cluster's init containers trust.
func TestANativeExampleHasANamespaceOfItsOwn(t *testing.T) {
	native := readKustomization(t, "examples/native").Namespace
	standalone := readKustomization(t, "examples/standalone").Namespace
	if native == "" || native == standalone {
		t.Errorf("the native example's namespace is %q, the standalone one's %q: give a native cluster a namespace of its own", native, standalone)
	}
}

// flink lint is the check an operator of flinkpki runs on a manifest before
// applying it: the examples must pass it, and it must read their flinkpki
// wiring (FP010), so breaking that wiring in an example is found.
func TestExamplesPassFlinkLint(t *testing.T) {
	for mode, path := range exampleFiles {
		t.Run(mode, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			findings, err := flinkconf.Lint(data, path)
			if err != nil {
				t.Fatalf("flink lint %s: %v", path, err)
			}
			var rules []string
			for _, f := range findings {
				rules = append(rules, f.Rule+" "+f.Severity)
			}
			want := []string(nil)
			if mode == "native" {
				want = []string{flinkconf.RuleNativeMode + " warning"}
			}
			if !slices.Equal(rules, want) {
				t.Errorf("findings %v, want %v: %v", rules, want, findings)
			}
			shared := strings.Replace(string(data), "    "+flinkconf.TaskManagerServiceAccountKey+":", "    # no account of their own:", 1)
			if findings, err := flinkconf.Lint([]byte(shared), path); err != nil || !slices.ContainsFunc(findings, func(f flinkconf.Finding) bool {
				return f.Rule == flinkconf.RuleTaskManagerAccount && f.Severity == flinkconf.SeverityWarning
			}) {
				t.Errorf("with TaskManagers on the JobManager's service account, flink lint reports %v, %v; want %s", findings, err, flinkconf.RuleTaskManagerAccount)
			}
			broken := strings.Replace(string(data), "value: /flink-conf\n", "value: /opt/flink/conf\n", 1)
			if broken == string(data) {
				t.Fatal("the example sets no FLINK_CONF_DIR value /flink-conf")
			}
			findings, err = flinkconf.Lint([]byte(broken), path)
			if err != nil || !slices.ContainsFunc(findings, func(f flinkconf.Finding) bool {
				return f.Rule == flinkconf.RuleInitWiring && strings.Contains(f.Message, "does not set FLINK_CONF_DIR to /flink-conf")
			}) {
				t.Errorf("with FLINK_CONF_DIR elsewhere, flink lint reports %v, %v; want %s", findings, err, flinkconf.RuleInitWiring)
			}
		})
	}
}
