package flinkconf

import (
	"fmt"
	"strings"
)

// ParseLegacy reads a legacy flink-conf.yaml line by line, exactly as Flink
// before 1.19 does: everything after '#' is a comment, a line is split at
// the first ": ", key and value are trimmed, and lines without both are
// skipped. Such files are often not valid YAML, so a YAML parser must not be
// used. Entries come back in file order; the last one for a key wins.
func ParseLegacy(data []byte) []KV {
	var out []KV
	for _, line := range strings.Split(string(data), "\n") {
		if kv, ok := parseLegacyLine(line); ok {
			out = append(out, kv)
		}
	}
	return out
}

func parseLegacyLine(line string) (KV, bool) {
	conf, _, _ := strings.Cut(line, "#")
	conf = strings.TrimSpace(conf)
	key, value, ok := strings.Cut(conf, ": ")
	if !ok {
		return KV{}, false
	}
	key, value = strings.TrimSpace(key), strings.TrimSpace(value)
	if key == "" || value == "" {
		return KV{}, false
	}
	return KV{Key: key, Value: value}, true
}

// MergeLegacy merges kvs into a legacy flink-conf.yaml: every line that sets
// one of the keys is dropped, all other lines (comments included) are kept
// verbatim, and the keys are appended as "key: value" lines.
func MergeLegacy(data []byte, kvs []KV) ([]byte, error) {
	return mergeLegacy(data, kvs, nil)
}

// mergeLegacy is MergeLegacy that also drops the lines setting a key of
// drop, without setting it.
func mergeLegacy(data []byte, kvs []KV, drop []string) ([]byte, error) {
	if err := validateKVs(kvs); err != nil {
		return nil, err
	}
	targets := make(map[string]bool, len(kvs)+len(drop))
	for _, k := range drop {
		targets[k] = true
	}
	for _, kv := range kvs {
		v := kv.Value
		// The legacy parser cuts at '#' and trims, so such values would be
		// read back differently from what was written.
		if strings.Contains(v, "#") || strings.TrimSpace(v) != v || v == "" {
			return nil, fmt.Errorf("the value of %s cannot be written to flink-conf.yaml (empty, has '#' or surrounding spaces): use config.yaml", kv.Key)
		}
		targets[kv.Key] = true
	}
	var b strings.Builder
	text := string(data)
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	for _, line := range strings.SplitAfter(text, "\n") {
		if kv, ok := parseLegacyLine(line); ok && targets[kv.Key] {
			continue
		}
		b.WriteString(line)
	}
	b.Write(RenderFlat(kvs))
	return []byte(b.String()), nil
}
