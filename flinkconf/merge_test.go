package flinkconf

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// testKeys returns the keys the init container merges, as InternalSSL
// builds them, with a password that YAML would read as a number.
func testKeys(t testing.TB, dir string) []KV {
	t.Helper()
	kvs, err := InternalSSL{
		Keystore:           dir + "/keystore.p12",
		KeystorePassword:   "0123456789",
		KeyPassword:        "0123456789",
		KeystoreType:       "PKCS12",
		Truststore:         dir + "/truststore.p12",
		TruststorePassword: "Tr0stPassw0rdWithLettersAndDigits",
		TruststoreType:     "PKCS12",
		KeyAlgorithm:       x509.ECDSA,
	}.Keys()
	if err != nil {
		t.Fatalf("InternalSSL.Keys: %v", err)
	}
	return kvs
}

// flattenYAML parses a config.yaml and returns every flattened value of each
// key, so tests can see duplicates.
func flattenYAML(t testing.TB, data []byte) map[string][]string {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("output is not valid YAML: %v\n%s", err, data)
	}
	var root *yaml.Node
	if len(doc.Content) > 0 {
		root = doc.Content[0]
	}
	kvs, err := Flatten(root)
	if err != nil {
		t.Fatalf("Flatten: %v", err)
	}
	out := map[string][]string{}
	for _, kv := range kvs {
		out[kv.Key] = append(out[kv.Key], kv.Value)
	}
	return out
}

// assertMerged checks that every key appears exactly once with our value.
func assertMerged(t testing.TB, got map[string][]string, kvs []KV) {
	t.Helper()
	for _, kv := range kvs {
		if vs := got[kv.Key]; len(vs) != 1 || vs[0] != kv.Value {
			t.Errorf("%s = %q, want exactly [%q]", kv.Key, vs, kv.Value)
		}
	}
}

func TestMergeConfigYAML(t *testing.T) {
	kvs := testKeys(t, "/flink-tls")
	tests := []struct {
		name string
		in   string
		// keep lists keys (flattened) that must survive with their value.
		keep map[string]string
		// contains lists text the output must hold (comments, nesting).
		contains []string
		// absent lists text the output must not hold.
		absent []string
	}{
		{
			name: "a nested document gets nested keys and keeps its comments",
			in: `# Flink configuration
jobmanager:
  rpc:
    address: flink-jm # the service
security:
  kerberos:
    login:
      use-ticket-cache: false
  ssl:
    rest:
      enabled: false
taskmanager.numberOfTaskSlots: 2
`,
			keep: map[string]string{
				"jobmanager.rpc.address":                   "flink-jm",
				"security.kerberos.login.use-ticket-cache": "false",
				"security.ssl.rest.enabled":                "false",
				"taskmanager.numberOfTaskSlots":            "2",
			},
			contains: []string{"# Flink configuration", "# the service", "\n    internal:\n      enabled: \"true\"\n"},
			absent:   []string{"security.ssl.internal.keystore:"},
		},
		{
			name:     "a flat document gets flat keys",
			in:       "jobmanager.rpc.address: flink-jm\nrest.port: 8081\n",
			keep:     map[string]string{"jobmanager.rpc.address": "flink-jm", "rest.port": "8081"},
			contains: []string{"security.ssl.internal.keystore: /flink-tls/keystore.p12\n"},
		},
		{
			name: "a mixed document loses every old spelling of our keys",
			in: `security.ssl.internal.keystore: /old/ks.jks
security.ssl:
  internal.truststore: /old/ts.jks
  protocol: TLSv1
  rest.enabled: true
security:
  ssl:
    algorithms: TLS_RSA_WITH_AES_128_CBC_SHA
    internal:
      keystore-password: old
`,
			keep:   map[string]string{"security.ssl.rest.enabled": "true"},
			absent: []string{"/old/", "TLSv1\n", "TLS_RSA_", ": old"},
		},
		{
			name:   "existing ssl keys are overridden without duplicates",
			in:     "security.ssl.internal.enabled: false\nsecurity.ssl.internal.keystore: /x\nsecurity.ssl.internal.keystore: /y\n",
			absent: []string{"false", "/x", "/y"},
		},
		{
			name:     "a numeric password stays a string",
			in:       "",
			contains: []string{`security.ssl.internal.keystore-password: "0123456789"`},
		},
		{
			name: "an emptied nested section is removed, other sections stay",
			in:   "security:\n  ssl:\n    protocol: TLSv1\n  other: x\nfoo:\n  security.ssl.protocol: y\n",
			keep: map[string]string{"security.other": "x", "foo.security.ssl.protocol": "y"},
		},
		{
			name:     "a comment-only document becomes a flat configuration",
			in:       "# nothing here yet\n",
			contains: []string{"security.ssl.protocol: TLSv1.2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := MergeConfigYAML([]byte(tt.in), kvs)
			if err != nil {
				t.Fatalf("MergeConfigYAML: %v", err)
			}
			got := flattenYAML(t, out)
			assertMerged(t, got, kvs)
			for k, v := range tt.keep {
				if vs := got[k]; len(vs) != 1 || vs[0] != v {
					t.Errorf("original key %s = %q, want [%q]\n%s", k, vs, v, out)
				}
			}
			for _, s := range tt.contains {
				if !strings.Contains(string(out), s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tt.absent {
				if strings.Contains(string(out), s) {
					t.Errorf("output still holds %q:\n%s", s, out)
				}
			}
		})
	}
}

func TestMergeConfigYAMLRefusesUnsafeDocuments(t *testing.T) {
	kvs := testKeys(t, "/flink-tls")
	tests := []struct {
		name string
		in   string
	}{
		{"a document that is not YAML is refused", "a: [1, 2\n"},
		{"a top-level list is refused", "- a\n- b\n"},
		{"two documents are refused", "a: 1\n---\nb: 2\n"},
		{"an alias on the way to our keys is refused", "base: &b\n  ssl:\n    protocol: TLSv1\nsecurity: *b\n"},
		{"an alias that contains itself is refused", "base: &b\n  x:\n    y: *b\n"},
		{"an alias bomb is refused instead of expanded", aliasBomb()},
		{"a null value, which makes Flink refuse the file, is refused", "taskmanager.numberOfTaskSlots:\nenv:\n  java: {opts: ~}\n"},
		{"a key written twice, which makes Flink refuse the file, is refused", "taskmanager.numberOfTaskSlots: 2\ntaskmanager.numberOfTaskSlots: 4\n"},
		{"so are two blocks of one key", "security:\n  kerberos.login.use-ticket-cache: false\nsecurity:\n  delegation.tokens.enabled: false\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := MergeConfigYAML([]byte(tt.in), kvs)
			if !errors.Is(err, ErrUnmergeable) {
				t.Fatalf("MergeConfigYAML error = %v, want ErrUnmergeable", err)
			}
		})
	}
}

// TestMergeConfigYAMLKeepsAMergeKeyAsFlinkReadsIt: Flink's YAML 1.2 loader
// reads "<<" as a key like any other, so a top-level one is kept as it is,
// and the file merged, not refused (init crash-looped on it).
func TestMergeConfigYAMLKeepsAMergeKeyAsFlinkReadsIt(t *testing.T) {
	kvs := testKeys(t, "/flink-tls")
	out, err := MergeConfigYAML([]byte("base: &b\n  x: 1\n<<: *b\n"), kvs)
	if err != nil {
		t.Fatalf("MergeConfigYAML: %v", err)
	}
	got := flattenYAML(t, out)
	assertMerged(t, got, kvs)
	if !strings.Contains(string(out), "<<: *b") {
		t.Errorf("the merge key is gone from the merged file:\n%s", out)
	}
}

// TestMergeConfigYAMLReplacesANullOfOurs: a null on a key the merge sets
// is gone after it, so the result loads in Flink.
func TestMergeConfigYAMLReplacesANullOfOurs(t *testing.T) {
	kvs := testKeys(t, "/flink-tls")
	out, err := MergeConfigYAML([]byte("security.ssl.internal.keystore:\nsecurity:\n  ssl:\n    protocol: null\n"), kvs)
	if err != nil {
		t.Fatalf("MergeConfigYAML: %v", err)
	}
	if strings.Contains(string(out), "null") || strings.Contains(string(out), "~") {
		t.Errorf("the merged config.yaml still holds a null:\n%s", out)
	}
}

// aliasBomb returns a small document whose aliases expand to 9^7 entries
// with long keys: gigabytes if flattened naively.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("l0: &l0 {" + strings.Repeat("k", 200) + ": v}\n")
	for level := 1; level <= 7; level++ {
		fmt.Fprintf(&b, "l%d: &l%d {", level, level)
		for i := 0; i < 9; i++ {
			fmt.Fprintf(&b, "%s%d: *l%d, ", strings.Repeat("x", 100), i, level-1)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

func TestMergeConfigYAMLRefusesBadKeys(t *testing.T) {
	tests := []struct {
		name string
		kvs  []KV
	}{
		{"an empty key is refused", []KV{{"", "x"}}},
		{"a key with a colon is refused", []KV{{"a:b", "x"}}},
		{"a key with an empty segment is refused", []KV{{"a..b", "x"}}},
		{"a key given twice is refused", []KV{{"a.b", "x"}, {"a.b", "y"}}},
		{"a multi-line value is refused", []KV{{"a.b", "x\ny"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := MergeConfigYAML(nil, tt.kvs); err == nil {
				t.Fatal("MergeConfigYAML accepted the keys, want an error")
			}
		})
	}
}

func TestMergeLegacy(t *testing.T) {
	kvs := testKeys(t, "/flink-tls")
	in := `# legacy configuration
jobmanager.rpc.address: flink-jm
security.ssl.internal.keystore: /old/keystore.jks
  security.ssl.protocol: TLSv1   # indented and commented
env.java.opts: -Dfoo=a: b
taskmanager.numberOfTaskSlots: 2`
	out, err := MergeLegacy([]byte(in), kvs)
	if err != nil {
		t.Fatalf("MergeLegacy: %v", err)
	}
	got := map[string][]string{}
	for _, kv := range ParseLegacy(out) {
		got[kv.Key] = append(got[kv.Key], kv.Value)
	}
	assertMerged(t, got, kvs)
	for k, v := range map[string]string{
		"jobmanager.rpc.address":        "flink-jm",
		"env.java.opts":                 "-Dfoo=a: b",
		"taskmanager.numberOfTaskSlots": "2",
	} {
		if vs := got[k]; len(vs) != 1 || vs[0] != v {
			t.Errorf("original key %s = %q, want [%q]", k, vs, v)
		}
	}
	if !strings.HasPrefix(string(out), "# legacy configuration\n") {
		t.Errorf("the leading comment was not kept:\n%s", out)
	}
	if _, err := MergeLegacy(nil, []KV{{"security.ssl.internal.keystore-password", "a#b"}}); err == nil {
		t.Error("MergeLegacy accepted a value with '#', which Flink would cut")
	}
}

func TestParseLegacyFollowsFlinkRules(t *testing.T) {
	in := "a: 1\n#b: 2\nc:3\n d :  4 # four\ne: \nf: x: y\n: g\nh: 'quoted'\n"
	want := []KV{{"a", "1"}, {"d", "4"}, {"f", "x: y"}, {"h", "'quoted'"}}
	got := ParseLegacy([]byte(in))
	if len(got) != len(want) {
		t.Fatalf("ParseLegacy = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %v, want %v", i, got[i], want[i])
		}
	}
}

// TestMergeReadsAYAML12Directive: Flink's parser (snakeyaml-engine, YAML
// 1.2) takes a config.yaml that starts with "%YAML 1.2"; init's merge does
// too, instead of refusing a configuration Flink loads.
func TestMergeReadsAYAML12Directive(t *testing.T) {
	out, err := MergeConfigYAML([]byte("%YAML 1.2\n---\ntaskmanager:\n  numberOfTaskSlots: 2\n"), testKeys(t, "/tls"))
	if err != nil {
		t.Fatalf("merge into a YAML 1.2 config.yaml: %v", err)
	}
	if !strings.Contains(string(out), "numberOfTaskSlots: 2") || !strings.Contains(string(out), "/tls/keystore.p12") {
		t.Errorf("the merged copy lost a key or lacks the stores:\n%s", out)
	}
}
