package flinkconf

import (
	"crypto/x509"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func kvMap(kvs []KV) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestFlinkConfiguration(t *testing.T) {
	ecdsaSuites, _ := Algorithms(x509.ECDSA)
	rsaSuites, _ := Algorithms(x509.RSA)
	tests := []struct {
		name   string
		params ConfigParams
		want   map[string]string
		absent []string
	}{
		{
			name:   "the defaults point at PKCS#12 stores in /flink-tls",
			params: ConfigParams{KeyAlgorithm: x509.ECDSA},
			want: map[string]string{
				"security.ssl.internal.enabled":         "true",
				"security.ssl.internal.keystore":        "/flink-tls/keystore.p12",
				"security.ssl.internal.keystore-type":   "PKCS12",
				"security.ssl.internal.truststore":      "/flink-tls/truststore.p12",
				"security.ssl.internal.truststore-type": "PKCS12",
				"security.ssl.protocol":                 "TLSv1.2",
				"security.ssl.algorithms":               ecdsaSuites,
				MergeArraysByNameKey:                    "true",
				StartupProbeKey:                         "false",
			},
			absent: []string{"rest.bind-address"},
		},
		{
			name:   "JKS stores with an RSA key get .jks paths and RSA suites",
			params: ConfigParams{TLSDir: "/tls", Format: "jks", KeyAlgorithm: x509.RSA},
			want: map[string]string{
				"security.ssl.internal.keystore":      "/tls/keystore.jks",
				"security.ssl.internal.keystore-type": "JKS",
				"security.ssl.algorithms":             rsaSuites,
			},
		},
		{
			name:   "Flink before 1.20 gets no store-type keys",
			params: ConfigParams{KeyAlgorithm: x509.ECDSA, LegacyStoreTypes: true},
			want:   map[string]string{"security.ssl.internal.keystore": "/flink-tls/keystore.p12"},
			absent: []string{"security.ssl.internal.keystore-type", "security.ssl.internal.truststore-type"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kvs, err := FlinkConfiguration(tt.params)
			if err != nil {
				t.Fatalf("FlinkConfiguration: %v", err)
			}
			got := kvMap(kvs)
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			for _, k := range tt.absent {
				if _, ok := got[k]; ok {
					t.Errorf("%s is present, want it absent", k)
				}
			}
			for k := range got {
				if strings.Contains(k, "password") {
					t.Errorf("%s is in flinkConfiguration; passwords must stay pod-local", k)
				}
			}
		})
	}
}

func TestFlinkConfigurationRefusesBadParams(t *testing.T) {
	tests := []struct {
		name   string
		params ConfigParams
	}{
		{"a relative TLS directory is refused", ConfigParams{TLSDir: "tls", KeyAlgorithm: x509.ECDSA}},
		{"an unknown store format is refused", ConfigParams{Format: "pem", KeyAlgorithm: x509.ECDSA}},
		{"an unknown key algorithm is refused", ConfigParams{KeyAlgorithm: x509.Ed25519}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := FlinkConfiguration(tt.params); err == nil {
				t.Fatal("FlinkConfiguration accepted the parameters, want an error")
			}
		})
	}
}

func TestRenderYAMLRoundTripsAsStrings(t *testing.T) {
	kvs, err := FlinkConfiguration(ConfigParams{KeyAlgorithm: x509.ECDSA})
	if err != nil {
		t.Fatal(err)
	}
	out, err := RenderYAML(kvs)
	if err != nil {
		t.Fatalf("RenderYAML: %v", err)
	}
	// The operator's flinkConfiguration is a map of strings: every value must
	// decode as a string, "true" included.
	var got map[string]string
	if err := yaml.Unmarshal(out, &got); err != nil {
		t.Fatalf("output does not decode as map[string]string: %v\n%s", err, out)
	}
	if len(got) != len(kvs) {
		t.Errorf("decoded %d keys, want %d", len(got), len(kvs))
	}
	for _, kv := range kvs {
		if got[kv.Key] != kv.Value {
			t.Errorf("%s = %q, want %q", kv.Key, got[kv.Key], kv.Value)
		}
	}
	if !strings.Contains(string(out), `security.ssl.internal.enabled: "true"`) {
		t.Errorf("\"true\" is not quoted:\n%s", out)
	}
}

// TestFlinkConfigurationPassesLint ties the generator to the linter: the
// block `flink config` prints, pasted into a standalone deployment whose
// flinkpki init container reaches Flink in every pod and keeps REST on
// loopback in the JobManager's, raises no finding.
func TestFlinkConfigurationPassesLint(t *testing.T) {
	for _, alg := range []x509.PublicKeyAlgorithm{x509.RSA, x509.ECDSA} {
		for _, tls13 := range []bool{false, true} {
			kvs, err := FlinkConfiguration(ConfigParams{KeyAlgorithm: alg, TLS13: tls13})
			if err != nil {
				t.Fatal(err)
			}
			block, err := RenderYAML(kvs)
			if err != nil {
				t.Fatal(err)
			}
			if want := "security.ssl.protocol: " + map[bool]string{false: Protocol, true: ProtocolTLS13}[tls13]; !strings.Contains(string(block), want) {
				t.Errorf("%v, TLS 1.3 %v: the block lacks %q:\n%s", alg, tls13, want, block)
			}
			manifest := deployment(indent(string(block), "    "), "")
			if tls13 {
				// The init containers write the protocol into the pods.
				manifest = strings.ReplaceAll(manifest, ", --flink-conf-out, /flink-conf", ", --flink-conf-out, /flink-conf, --tls-protocol, TLSv1.3")
			}
			findings, err := LintWith([]byte(manifest), "gen.yaml", LintOptions{KeyAlgorithm: alg})
			if err != nil {
				t.Fatalf("Lint: %v", err)
			}
			if len(findings) != 0 {
				t.Errorf("%v, TLS 1.3 %v: findings for the generated configuration: %v", alg, tls13, findings)
			}
		}
	}
}

func indent(s, prefix string) string {
	lines := strings.SplitAfter(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "") + "\n"
}
