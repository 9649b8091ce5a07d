package flinkconf

import (
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Flink's standard YAML loader (1.19 and later, config.yaml) reads values
// with snakeyaml-engine's core schema and hands an option the Java string
// of what it read. So a plain 0123 reaches Flink as "123", 0x1F as "31",
// 1e3 as "1000.0" and TRUE as "true", and a sequence, read by a string
// option such as security.ssl.protocol, as its YAML flow form:
// [TLSv1.3] is the text "[TLSv1.3]", which no JDK knows as a protocol, and
// [a, b] is "[a, b]", which Flink's comma split turns into "[a" and " b]".
// Checked with GlobalConfiguration.loadConfiguration of Flink 1.20.3,
// 2.2.1 and 2.3.0 (the cases of TestFlattenReadsValuesAsFlinkDoes); the
// Flink interop suite checks a sequence on each version again.
var (
	coreNull  = regexp.MustCompile(`^(?:null|Null|NULL|~)?$`)
	coreBool  = regexp.MustCompile(`^(?:true|True|TRUE|false|False|FALSE)$`)
	coreInt10 = regexp.MustCompile(`^[-+]?[0-9]+$`)
	coreInt8  = regexp.MustCompile(`^0o[0-7]+$`)
	coreInt16 = regexp.MustCompile(`^0x[0-9a-fA-F]+$`)
	coreFloat = regexp.MustCompile(`^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$`)
	coreInf   = regexp.MustCompile(`^[-+]?(?:\.inf|\.Inf|\.INF)$`)
	coreNaN   = regexp.MustCompile(`^(?:\.nan|\.NaN|\.NAN)$`)
)

// coreValue returns the Java string of what snakeyaml-engine's core schema
// makes of a plain scalar, and false when it is a string (or null).
func coreValue(s string) (string, bool) {
	switch {
	case coreBool.MatchString(s):
		return strings.ToLower(s), true
	case coreInt10.MatchString(s), coreInt8.MatchString(s), coreInt16.MatchString(s):
		digits, base := strings.TrimPrefix(s, "+"), 10
		if strings.HasPrefix(s, "0o") {
			digits, base = s[2:], 8
		} else if strings.HasPrefix(s, "0x") {
			digits, base = s[2:], 16
		}
		if n, ok := new(big.Int).SetString(digits, base); ok {
			return n.String(), true
		}
	case coreInf.MatchString(s): // a double, which Flink writes back as YAML does
		if strings.HasPrefix(s, "-") {
			return "-.inf", true
		}
		return ".inf", true
	case coreNaN.MatchString(s):
		return ".nan", true
	case coreFloat.MatchString(s):
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return javaDouble(f), true
		}
	}
	return "", false
}

// javaDouble formats a finite f as Java's Double.toString does.
func javaDouble(f float64) string {
	switch {
	case f == 0 && math.Signbit(f):
		return "-0.0"
	case f == 0:
		return "0.0"
	}
	if a := math.Abs(f); a >= 1e-3 && a < 1e7 {
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	mant, exp, _ := strings.Cut(strconv.FormatFloat(f, 'e', -1, 64), "e")
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	e, _ := strconv.Atoi(exp)
	return mant + "E" + strconv.Itoa(e)
}

// isPlain reports whether a scalar was written without quotes and without
// an explicit tag, so that the schema decides what it is.
func isPlain(n *yaml.Node) bool {
	return n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle|yaml.TaggedStyle) == 0
}

// scalarKind is what the core schema makes of a scalar.
type scalarKind int

const (
	scalarString scalarKind = iota
	scalarNull              // Flink refuses a null value
	scalarOther             // a number or a bool
)

// readScalar is what Flink reads from a scalar: its Java string ("" for a
// null) and its kind.
func readScalar(n *yaml.Node) (string, scalarKind) {
	if n.Style&yaml.TaggedStyle != 0 && n.ShortTag() == "!!null" {
		return "", scalarNull
	}
	if !isPlain(n) {
		return n.Value, scalarString
	}
	if coreNull.MatchString(n.Value) {
		return "", scalarNull
	}
	if v, ok := coreValue(n.Value); ok {
		return v, scalarOther
	}
	return n.Value, scalarString
}

// flowScalar writes a string as snakeyaml-engine dumps it in flow style:
// plain when that reads back as the same string, else single-quoted.
func flowScalar(b *strings.Builder, s string) {
	if flowPlain(s) {
		b.WriteString(s)
		return
	}
	b.WriteByte('\'')
	b.WriteString(strings.ReplaceAll(s, "'", "''"))
	b.WriteByte('\'')
}

func flowPlain(s string) bool {
	if s == "" || strings.TrimSpace(s) != s || coreNull.MatchString(s) {
		return false
	}
	if _, other := coreValue(s); other {
		return false
	}
	switch s[0] {
	case '#', ',', '[', ']', '{', '}', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`':
		return false
	case '-', '?', ':':
		if len(s) == 1 || s[1] == ' ' {
			return false
		}
	}
	return !strings.ContainsAny(s, ",[]{}:?\n\r\t") && !strings.Contains(s, " #")
}
