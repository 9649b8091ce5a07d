package flinkconf

import (
	"strings"
	"testing"
)

// FuzzMerge feeds arbitrary config.yaml and flink-conf.yaml content to the
// mergers. They must never panic, and whenever they succeed the output must
// parse and hold each key exactly once with our value. Seeds are committed
// under testdata/fuzz/FuzzMerge.
func FuzzMerge(f *testing.F) {
	f.Add([]byte(nestedConfig))
	kvs := testKeys(f, "/flink-tls")
	f.Fuzz(func(t *testing.T, data []byte) {
		if out, err := MergeConfigYAML(data, kvs); err == nil {
			assertMerged(t, flattenYAML(t, out), kvs)
		}
		out, err := MergeLegacy(data, kvs)
		if err != nil {
			t.Fatalf("MergeLegacy failed on valid keys: %v", err)
		}
		got := map[string][]string{}
		for _, kv := range ParseLegacy(out) {
			got[kv.Key] = append(got[kv.Key], kv.Value)
		}
		assertMerged(t, got, kvs)
	})
}

// FuzzLint feeds arbitrary content to Lint, as a config.yaml or as a legacy
// flink-conf.yaml. It must never panic, and every finding must carry a
// known rule and severity. Seeds are committed under testdata/fuzz/FuzzLint.
func FuzzLint(f *testing.F) {
	f.Add([]byte(deployment(secureFlat, "")), false)
	known := map[string]bool{}
	for _, id := range Rules() {
		known[id] = true
	}
	f.Fuzz(func(t *testing.T, data []byte, legacy bool) {
		name := ConfigYAML
		if legacy {
			name = LegacyYAML
		}
		findings, err := Lint(data, name)
		if err != nil {
			return
		}
		for _, fd := range findings {
			if !known[fd.Rule] || (fd.Severity != SeverityError && fd.Severity != SeverityWarning) || fd.Fix == "" {
				t.Errorf("malformed finding %#v", fd)
			}
			if !strings.HasPrefix(fd.String(), fd.Rule+" "+fd.Severity+": ") {
				t.Errorf("String() = %q does not start with the rule and severity", fd.String())
			}
		}
	})
}
