package flinkconf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxFlattenNodes bounds how many nodes Flatten visits, so that a document
// whose aliases expand exponentially ("billion laughs") is refused quickly
// instead of exhausting memory.
const maxFlattenNodes = 200_000

// maxFlattenBytes bounds the total size of the flattened keys and values,
// which aliases could otherwise multiply far beyond the input's size.
const maxFlattenBytes = 16 << 20

// maxFlattenDepth bounds nesting. Flink configuration is a few levels deep;
// anything deeper is refused rather than building ever longer keys.
const maxFlattenDepth = 64

var (
	// errTooLarge is returned when a document expands past maxFlattenNodes.
	errTooLarge = errors.New("the YAML document expands to too many entries (aliases nested too deeply): write the configuration out plainly")
	// errTooDeep is returned past maxFlattenDepth levels of nesting.
	errTooDeep = fmt.Errorf("the YAML document nests more than %d levels deep: write the configuration out plainly", maxFlattenDepth)
	// errAliasCycle is returned when an alias refers to a node containing it.
	errAliasCycle = errors.New("a YAML alias refers to a node that contains it: write the configuration out plainly")
)

// parseSingleDocument parses data as exactly one YAML document and returns
// its root, which is nil for an empty document. Flink's standard YAML loader
// reads one document, so a second one would be silently ignored by Flink and
// is refused here.
func parseSingleDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(yamlInput(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("it holds more than one YAML document; Flink reads only one")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

// yamlDirective is a %YAML directive line of a YAML 1.x version.
var yamlDirective = regexp.MustCompile(`(?m)^%YAML[ \t]+1\.[0-9]+[ \t]*(#.*)?\r?$`)

// yamlInput is data as the YAML parser here reads what Flink's does:
// snakeyaml-engine (YAML 1.2) takes any %YAML 1.x directive, this parser
// only 1.1's, so the directive is read as 1.1's (the schema this parser
// applies is the same either way).
func yamlInput(data []byte) []byte {
	if !bytes.Contains(data, []byte("%YAML")) {
		return data
	}
	return yamlDirective.ReplaceAll(data, []byte("%YAML 1.1"))
}

// resolveAlias follows alias nodes to the node they name. Cycles end at the
// first repeated alias, which keeps cyclic documents from looping forever.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 64; i++ {
		n = n.Alias
	}
	return n
}

// scalarKey returns a mapping key's text, and false for keys that are not
// scalars (Flink only understands string keys).
func scalarKey(n *yaml.Node) (string, bool) {
	n = resolveAlias(n)
	if n == nil || n.Kind != yaml.ScalarNode {
		return "", false
	}
	return n.Value, true
}

// scalarID is a mapping key as the core schema reads it: two keys with the
// same ID are one key to Flink's loader.
type scalarID struct {
	text string
	kind scalarKind
}

// isMergeKey reports whether a mapping key is YAML's "<<" merge key.
func isMergeKey(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Value == "<<" && (n.Tag == "!!merge" || n.Tag == "" || n.Tag == "tag:yaml.org,2002:merge")
}

// Flatten turns a YAML mapping into Flink's flat keys the way Flink's
// standard YAML loader (1.19+) does: nested mappings are joined with ".".
// Entries come back in document order and may repeat a flat key (a.b: and
// a: {b:}); the last one wins in Flink. Aliases are followed, with a bound
// on the total work. "<<" is a key like any other: Flink's loader
// (snakeyaml-engine, YAML 1.2) knows no merge keys.
func Flatten(root *yaml.Node) ([]KV, error) {
	flat, err := flattenConfig(root)
	return flat.kvs, err
}

// flatConfig is a flattened config.yaml and what in it makes Flink refuse
// to load the whole file, each list in document order:
//   - nulls: keys set to null (key: with nothing after it, ~ or null):
//     "Error parsing YAML configuration", "Value must not be null" (Flink
//     1.20.3, 2.2.1 and 2.3.0); a null inside a list is only the text "null"
//     to it;
//   - dups: keys written twice in one mapping (two security: blocks, or a
//     key repeated), as the core schema reads them (true and True are one
//     key): "found duplicate key" (Flink 1.20.3 and 2.2.1).
type flatConfig struct {
	kvs   []KV
	nulls []string
	dups  []string
}

// refusal says why Flink refuses to load the file, or "" when it loads.
func (c flatConfig) refusal() string {
	var why []string
	if len(c.nulls) > 0 {
		why = append(why, fmt.Sprintf("sets %s to null (\"Value must not be null\"): give each a value (\"\" for an empty one) or delete it", keyList(c.nulls)))
	}
	if len(c.dups) > 0 {
		why = append(why, fmt.Sprintf("writes %s twice in one mapping (\"found duplicate key\"): keep one of each", keyList(c.dups)))
	}
	return strings.Join(why, "; and it ")
}

// flattenConfig is Flatten with what makes Flink refuse the file.
func flattenConfig(root *yaml.Node) (flatConfig, error) {
	f := flattener{active: map[*yaml.Node]bool{}}
	root = resolveAlias(root)
	if root == nil {
		return flatConfig{}, nil
	}
	if root.Kind != yaml.MappingNode {
		return flatConfig{}, fmt.Errorf("the top level is a YAML %s, not a mapping of keys", kindName(root.Kind))
	}
	if err := f.mapping(root, ""); err != nil {
		return flatConfig{}, err
	}
	return flatConfig{kvs: f.out, nulls: f.nulls, dups: f.dups}, nil
}

// flattenOperator flattens a FlinkDeployment's spec.flinkConfiguration as
// the Kubernetes operator does (ConfigObjectNode.asFlatMap in its current
// source): nested mappings joined with ".", each scalar as its text (a
// null as "null"), a sequence as its items' text joined with ";" (a nested
// mapping or sequence is "" there), an empty sequence not at all. Earlier
// versions of that class set KEY[0], KEY[1] and so on instead, which leaves
// KEY itself unset. The operator reads the object the API server stored, so
// the YAML reading of plain scalars is kubectl's, not Flink's: their text
// is kept as written.
func flattenOperator(root *yaml.Node) ([]KV, error) {
	f := flattener{active: map[*yaml.Node]bool{}, operator: true}
	if err := f.mapping(root, ""); err != nil {
		return nil, err
	}
	return f.out, nil
}

type flattener struct {
	operator bool // read as the Kubernetes operator does (flattenOperator)
	out      []KV
	nulls    []string // keys whose value is null
	dups     []string // keys written twice in one mapping (config.yaml only)
	visited  int
	bytes    int
	depth    int
	// active holds the collections being walked, to detect alias cycles.
	active map[*yaml.Node]bool
}

// enter accounts for one more node on the current path; the returned
// function leaves it again.
func (f *flattener) enter(n *yaml.Node) (func(), error) {
	f.visited++
	switch {
	case f.visited > maxFlattenNodes:
		return nil, errTooLarge
	case f.depth >= maxFlattenDepth:
		return nil, errTooDeep
	case f.active[n]:
		return nil, errAliasCycle
	}
	f.depth++
	f.active[n] = true
	return func() { f.depth--; delete(f.active, n) }, nil
}

// mapping flattens the keys of m under prefix. Reading as Flink does
// (not the operator), it notes the keys m holds twice (dups), which make
// Flink refuse the whole file.
func (f *flattener) mapping(m *yaml.Node, prefix string) error {
	leave, err := f.enter(m)
	if err != nil {
		return err
	}
	defer leave()
	var seen map[scalarID]bool // the keys of this mapping, for dups
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], resolveAlias(m.Content[i+1])
		if v == nil {
			continue
		}
		// kubectl's YAML (1.1) merges "<<", and the operator reads what it
		// stored; Flink's own loader (YAML 1.2) does not.
		if f.operator && isMergeKey(k) {
			if err := f.merge(v, prefix); err != nil {
				return err
			}
			continue
		}
		key, ok := scalarKey(k)
		if !ok {
			continue
		}
		full := joinKey(prefix, key)
		if !f.operator {
			s, kind := readScalar(resolveAlias(k))
			id := scalarID{s, kind}
			if seen[id] {
				f.dups = append(f.dups, full)
			} else if seen == nil {
				seen = map[scalarID]bool{id: true}
			} else {
				seen[id] = true
			}
		}
		if err := f.entry(full, v); err != nil {
			return err
		}
	}
	return nil
}

// entry flattens the value v of the key full: a mapping into its keys
// under full, anything else into one KV. The bytes of keys and values
// count against maxFlattenBytes, so that a small document whose aliases
// repeat a long key or value cannot make a large flattening.
func (f *flattener) entry(full string, v *yaml.Node) error {
	if f.bytes += len(full); f.bytes > maxFlattenBytes {
		return errTooLarge
	}
	if v.Kind == yaml.MappingNode {
		return f.mapping(v, full)
	}
	if f.operator && v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
		return nil
	}
	s, null, err := f.leaf(v)
	if err != nil {
		return err
	}
	if null {
		f.nulls = append(f.nulls, full)
	}
	if f.bytes += len(s); f.bytes > maxFlattenBytes {
		return errTooLarge
	}
	f.out = append(f.out, KV{Key: full, Value: s})
	return nil
}

// merge applies a "<<" value: one mapping or a sequence of mappings.
func (f *flattener) merge(v *yaml.Node, prefix string) error {
	switch v.Kind {
	case yaml.MappingNode:
		return f.mapping(v, prefix)
	case yaml.SequenceNode:
		for _, item := range v.Content {
			if item = resolveAlias(item); item != nil && item.Kind == yaml.MappingNode {
				if err := f.mapping(item, prefix); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// leaf renders a value as Flink hands it to a string option (see
// yamlscalar.go), and says whether it is a null: a scalar as the core
// schema reads it, a sequence in YAML flow form. A null reads as "" here;
// Flink refuses to load such a file.
func (f *flattener) leaf(v *yaml.Node) (string, bool, error) {
	if v.Kind == yaml.ScalarNode {
		s, kind := readScalar(v)
		if f.operator { // Jackson's asText of what kubectl read, not Flink's schema
			s = v.Value
			if kind == scalarNull {
				s = "null"
			}
		}
		return s, kind == scalarNull, nil
	}
	if v.Kind != yaml.SequenceNode {
		return "", false, nil
	}
	if f.operator {
		s, err := f.operatorList(v)
		return s, false, err
	}
	var b strings.Builder
	err := f.flow(&b, v)
	return b.String(), false, err
}

// operatorList is a sequence as flattenOperator reads it: its items' text
// (Jackson's asText) joined with ";".
func (f *flattener) operatorList(v *yaml.Node) (string, error) {
	leave, err := f.enter(v)
	if err != nil {
		return "", err
	}
	defer leave()
	parts := make([]string, 0, len(v.Content))
	for _, item := range v.Content {
		if item = resolveAlias(item); item == nil {
			continue
		}
		text := "" // asText of an object or an array
		if item.Kind == yaml.ScalarNode {
			text, _, _ = f.leaf(item)
		}
		parts = append(parts, text)
	}
	return strings.Join(parts, ";"), nil
}

// flow writes v as snakeyaml-engine dumps it in flow style, as Flink turns
// a sequence into a string: [a, 'b,c', 1, true, null], {k: v}.
func (f *flattener) flow(b *strings.Builder, v *yaml.Node) error {
	if v = resolveAlias(v); v == nil {
		b.WriteString("null")
		return nil
	}
	leave, err := f.enter(v)
	if err != nil {
		return err
	}
	defer leave()
	switch v.Kind {
	case yaml.ScalarNode:
		switch s, kind := readScalar(v); kind {
		case scalarNull:
			b.WriteString("null")
		case scalarOther:
			b.WriteString(s) // a number or a bool, as Java prints it
		default:
			flowScalar(b, s)
		}
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, item := range v.Content {
			if i > 0 {
				b.WriteString(", ")
			}
			if err := f.flow(b, item); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case yaml.MappingNode:
		b.WriteByte('{')
		for i := 0; i+1 < len(v.Content); i += 2 {
			if i > 0 {
				b.WriteString(", ")
			}
			if err := f.flow(b, v.Content[i]); err != nil {
				return err
			}
			b.WriteString(": ")
			if err := f.flow(b, v.Content[i+1]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	}
	if b.Len() > maxFlattenBytes {
		return errTooLarge
	}
	return nil
}

func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "sequence"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.MappingNode:
		return "mapping"
	case yaml.DocumentNode:
		return "document"
	}
	return "node"
}

// stringNode returns a scalar that always reads back as the string s: the
// encoder quotes it when the plain form would resolve to a bool, number or
// null (a numeric password must not turn into an integer).
func stringNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

// encodeYAML renders a node with two-space indentation, as Flink's own
// config.yaml is written.
func encodeYAML(n *yaml.Node) (out []byte, err error) {
	defer func() {
		// The encoder panics on some node shapes it cannot represent; turn
		// that into an error so a strange input never crashes an init
		// container.
		if r := recover(); r != nil {
			err = fmt.Errorf("the YAML encoder failed: %v", r)
		}
	}()
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
