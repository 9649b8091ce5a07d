package flinkconf

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestFlattenReadsValuesAsFlinkDoes holds Flatten to what Flink's
// GlobalConfiguration.loadConfiguration hands each key of this config.yaml
// (Configuration.toMap), identical in Flink 1.20.3, 2.2.1 and 2.3.0: plain
// scalars by YAML's core schema, printed as Java prints them, and
// sequences in YAML flow form, quoted as snakeyaml-engine quotes.
func TestFlattenReadsValuesAsFlinkDoes(t *testing.T) {
	const conf = `c01: [TLSv1.3]
c02: ["TLSv1.3"]
c03: []
c04: [a b, "c:d", 'e,f', 1, true, null]
c05: [[x, y], z]
c06: [a: b]
c07:
  - TLSv1.2
  - TLSv1.3
c08: ["true", "1", "x y ", " a", "it's", "'q", "a#b", "a #b", "-x", "x-", "a,b", "", "~", "1.5", "0x1F", "yes"]
c09: [true, 1, 1.50, 0x1F, yes, ~, Null]
c10: 0x1F
c11: 0123
c12: 1.50
c13: 1e3
c14: yes
c15: TRUE
c16: "0x1F"
c17: 0o17
c18: +12
c19: .5
c20: 1e-5
c21: 12345678.5
c22: -.inf
c23: {x: [1, 2]}
c24: [{k: v, n: 1}]
c25: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]
c26: 'it''s'
c27: [!!str 5, "[x]", "- y", "-", "?x", ":x", "a: b", "x?"]
`
	// Flink's output, as printed (tab-separated key and value).
	const flink = `c01	[TLSv1.3]
c02	[TLSv1.3]
c03	[]
c04	[a b, 'c:d', 'e,f', 1, true, null]
c05	[[x, y], z]
c06	[{a: b}]
c07	[TLSv1.2, TLSv1.3]
c08	['true', '1', 'x y ', ' a', it's, '''q', a#b, 'a #b', -x, x-, 'a,b', '', '~', '1.5', '0x1F', yes]
c09	[true, 1, 1.5, 31, yes, null, null]
c10	31
c11	123
c12	1.5
c13	1000.0
c14	yes
c15	true
c16	0x1F
c17	15
c18	12
c19	0.5
c20	1.0E-5
c21	1.23456785E7
c22	-.inf
c23.x	[1, 2]
c24	[{k: v, n: 1}]
c25	[TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]
c26	it's
c27	['5', '[x]', '- y', '-', '?x', ':x', 'a: b', 'x?']`
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(conf), &root); err != nil {
		t.Fatal(err)
	}
	kvs, err := Flatten(root.Content[0])
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range kvs {
		got[kv.Key] = kv.Value
	}
	lines := strings.Split(flink, "\n")
	if len(got) != len(lines) {
		t.Errorf("Flatten returned %d keys, Flink %d", len(got), len(lines))
	}
	for _, line := range lines {
		key, want, _ := strings.Cut(line, "\t")
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s: Flatten reads %q, Flink %q", key, v, want)
		}
	}
}

// TestJavaDouble: Double.toString's two forms and their boundaries.
func TestJavaDouble(t *testing.T) {
	for f, want := range map[float64]string{
		0: "0.0", 1: "1.0", -2.5: "-2.5", 0.001: "0.001", 0.0001: "1.0E-4", 9999999: "9999999.0",
		1e7: "1.0E7", 1.5e300: "1.5E300", 123456789012: "1.23456789012E11",
	} {
		if got := javaDouble(f); got != want {
			t.Errorf("javaDouble(%v) = %s, want %s", f, got, want)
		}
	}
}

// TestFlattenOperatorReadsAsTheOperatorDoes: a FlinkDeployment's
// flinkConfiguration is flattened as ConfigObjectNode.asFlatMap does
// (the operator's current source): lists joined with ";", an empty list left
// out, a null as "null", plain scalars as written.
func TestFlattenOperatorReadsAsTheOperatorDoes(t *testing.T) {
	const conf = `a: [TLSv1.2, TLSv1.3]
b: []
c: [x, {k: v}, [1], null]
d: null
e:
  f: 0123
g: [TLSv1.3]
`
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(conf), &root); err != nil {
		t.Fatal(err)
	}
	kvs, err := flattenOperator(root.Content[0])
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range kvs {
		got = append(got, kv.Key+"="+kv.Value)
	}
	want := []string{"a=TLSv1.2;TLSv1.3", "c=x;;;null", "d=null", "e.f=0123", "g=TLSv1.3"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("flattenOperator = %v, want %v", got, want)
	}
}
