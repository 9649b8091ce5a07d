package flinkconf

import (
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrUnmergeable is returned when a configuration file cannot be merged
// safely: it is not valid, or it spells the keys being set in a way that
// would leave a second, conflicting value behind.
var ErrUnmergeable = errors.New("flink configuration cannot be merged")

// validateKVs refuses keys and values that cannot be written unambiguously
// into both config.yaml and a line-based flink-conf.yaml.
func validateKVs(kvs []KV) error {
	seen := make(map[string]bool, len(kvs))
	for _, kv := range kvs {
		k := kv.Key
		if k == "" || strings.TrimSpace(k) != k || strings.ContainsAny(k, ":#\n\r\t ") {
			return fmt.Errorf("configuration key %q is not a plain Flink key: use dotted names such as security.ssl.protocol", k)
		}
		for _, seg := range strings.Split(k, ".") {
			if seg == "" {
				return fmt.Errorf("configuration key %q has an empty segment: remove the extra dot", k)
			}
		}
		if seen[k] {
			return fmt.Errorf("configuration key %q is given twice: pass each key once", k)
		}
		seen[k] = true
		if strings.ContainsAny(kv.Value, "\n\r") {
			return fmt.Errorf("the value of %s spans lines, which Flink configuration cannot hold: use a single-line value", k)
		}
	}
	return nil
}

// MergeConfigYAML merges kvs into a Flink (1.19+) config.yaml, keeping every
// other key and the comments beside keys (a comment block at the very top or
// bottom of the file may be dropped; what Flink reads is kept). Existing occurrences of the keys, flat or
// nested, are removed first so that Flink sees exactly one value. The keys
// are added nested when the document has a top-level "security" mapping,
// else as flat dotted keys. The result is checked by parsing it again.
func MergeConfigYAML(data []byte, kvs []KV) ([]byte, error) {
	return mergeConfigYAML(data, kvs, nil)
}

// mergeConfigYAML is MergeConfigYAML that also removes the keys of drop,
// wherever they are, without setting them.
func mergeConfigYAML(data []byte, kvs []KV, drop []string) ([]byte, error) {
	if err := validateKVs(kvs); err != nil {
		return nil, err
	}
	root, err := parseSingleDocument(data)
	if err != nil {
		return nil, fmt.Errorf("%w: config.yaml is not valid YAML: %v", ErrUnmergeable, err)
	}
	if root == nil {
		root = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: the top level of config.yaml is a YAML %s, not a mapping of keys", ErrUnmergeable, kindName(root.Kind))
	}
	targets := make(map[string]bool, len(kvs)+len(drop))
	for _, kv := range kvs {
		targets[kv.Key] = true
	}
	for _, k := range drop {
		targets[k] = true
	}
	security := childMapping(root, "security")
	if err := removeKeys(root, "", targets, security); err != nil {
		return nil, err
	}
	for _, kv := range kvs {
		if security != nil && strings.HasPrefix(kv.Key, "security.") {
			insertNested(security, strings.Split(strings.TrimPrefix(kv.Key, "security."), "."), kv.Value)
			continue
		}
		root.Content = append(root.Content, stringNode(kv.Key), stringNode(kv.Value))
	}
	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}
	out, err := encodeYAML(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnmergeable, err)
	}
	if err := checkMerged(out, kvs, drop); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnmergeable, err)
	}
	return out, nil
}

// childMapping returns the mapping value of key in m, or nil when the key is
// absent or not a plain (non-alias) mapping.
func childMapping(m *yaml.Node, key string) *yaml.Node {
	var found *yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k, ok := scalarKey(m.Content[i]); ok && k == key {
			found = nil
			if v := m.Content[i+1]; v.Kind == yaml.MappingNode {
				found = v
			}
		}
	}
	return found
}

// removeKeys deletes every pair of m whose flattened key is a target, and
// prunes mappings that this leaves empty (except keep, the mapping the new
// keys go into). An alias on the way to a target is refused: editing
// through it would change other parts of the document, and leaving it
// would keep a second value. "<<" is a key like any other, as Flink's YAML
// 1.2 loader reads it (see Flatten): what lies beneath it is no target.
func removeKeys(m *yaml.Node, prefix string, targets map[string]bool, keep *yaml.Node) error {
	kept := m.Content[:0:0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		key, ok := scalarKey(k)
		if !ok {
			kept = append(kept, k, v)
			continue
		}
		full := joinKey(prefix, key)
		if targets[full] {
			continue
		}
		if !leadsToTarget(full, targets) {
			kept = append(kept, k, v)
			continue
		}
		if v.Kind == yaml.AliasNode || k.Kind == yaml.AliasNode {
			return fmt.Errorf("%w: config.yaml uses a YAML alias for %s; write those keys out plainly", ErrUnmergeable, full)
		}
		if v.Kind == yaml.MappingNode {
			before := len(v.Content)
			if err := removeKeys(v, full, targets, keep); err != nil {
				return err
			}
			if before > 0 && len(v.Content) == 0 && v != keep {
				continue
			}
		}
		kept = append(kept, k, v)
	}
	m.Content = kept
	return nil
}

// leadsToTarget reports whether some target key lies below prefix.
func leadsToTarget(prefix string, targets map[string]bool) bool {
	if prefix == "" {
		return len(targets) > 0
	}
	for t := range targets {
		if strings.HasPrefix(t, prefix+".") {
			return true
		}
	}
	return false
}

// insertNested sets path (relative to m) to value, descending into existing
// mappings and creating the missing ones, so that our keys sit with the
// document's own nested security settings.
func insertNested(m *yaml.Node, path []string, value string) {
	for len(path) > 1 {
		if child := childMapping(m, path[0]); child != nil {
			m, path = child, path[1:]
			continue
		}
		if hasKey(m, path[0]) {
			// A scalar already sits at this name; a second "name:" key would
			// be a duplicate, so the rest is written as one dotted key.
			m.Content = append(m.Content, stringNode(strings.Join(path, ".")), stringNode(value))
			return
		}
		child := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		m.Content = append(m.Content, stringNode(path[0]), child)
		m, path = child, path[1:]
	}
	m.Content = append(m.Content, stringNode(path[0]), stringNode(value))
}

func hasKey(m *yaml.Node, key string) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k, ok := scalarKey(m.Content[i]); ok && k == key {
			return true
		}
	}
	return false
}

// checkMerged parses the merged document again and verifies that each key
// appears exactly once with the value we set, and the keys of drop not at all.
func checkMerged(out []byte, kvs []KV, drop []string) error {
	root, err := parseSingleDocument(out)
	if err != nil {
		return fmt.Errorf("the merged config.yaml does not parse again: %v", err)
	}
	flat, err := flattenConfig(root)
	if err != nil {
		return fmt.Errorf("the merged config.yaml does not flatten: %v", err)
	}
	if why := flat.refusal(); why != "" {
		return fmt.Errorf("Flink refuses to load this config.yaml: it %s", why)
	}
	count := make(map[string]int, len(kvs))
	got := make(map[string]string, len(kvs))
	for _, kv := range flat.kvs {
		count[kv.Key]++
		got[kv.Key] = kv.Value
	}
	for _, kv := range kvs {
		if count[kv.Key] != 1 || got[kv.Key] != kv.Value {
			return fmt.Errorf("the merged config.yaml holds %d values for %s instead of exactly ours", count[kv.Key], kv.Key)
		}
	}
	for _, k := range drop {
		if count[k] != 0 {
			return fmt.Errorf("the merged config.yaml still holds %s, which it must not", k)
		}
	}
	return nil
}
