package flinkconf

import (
	"cmp"
	"crypto/x509"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The rules here read Flink's SSL engine settings as Flink hands them to
// the JDK and to its RPC: cipher suites (FP005), protocol (FP006),
// provider (FP014), and the store settings the RPC's HOCON quotes (FP015).

// splitList splits a comma-separated option value, dropping blanks.
func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// suiteKeyTypes reports which certificate key types a suite list can serve.
// TLS 1.3 suites (TLS_AES_*, TLS_CHACHA20_*) work with any key and count
// for neither; static ECDH suites (TLS_ECDH_RSA_* too) need an EC key.
func suiteKeyTypes(suites []string) (ecdsa, rsa bool) {
	for _, s := range suites {
		switch suiteKeyType(s) {
		case "ECDSA":
			ecdsa = true
		case "RSA":
			rsa = true
		}
	}
	return ecdsa, rsa
}

// disabledSuitesNote is why the JDK keeps a known suite out of every
// handshake.
const disabledSuitesNote = "JDK 17 knows them but its jdk.tls.disabledAlgorithms (3DES_EDE_CBC, anon, NULL, ECDH, RC4, DES ...) keeps them out of every handshake, and " + scsv + " only signals"

func checkCipherSuites(s *subject, opts LintOptions) []Finding {
	ecdsaExample, _ := Algorithms(x509.ECDSA)
	v, set := s.get("security.ssl.algorithms")
	listed := splitList(v)
	if !set && !s.restSSL() && (s.initConf || !s.internalSSL()) {
		// No TLS reads Flink's default suites: there is none, or the init
		// containers' copy writes suites matched to the key.
		return nil
	}
	if !set || len(listed) == 0 {
		// Flink's default (SecurityOptions.SSL_ALGORITHMS) is
		// TLS_RSA_WITH_AES_128_CBC_SHA up to 2.2.0 (the sources of 1.20.3,
		// 2.1.1 and 2.2.0), the two TLS_ECDHE_RSA GCM suites from 2.2.1
		// (the sources of 2.2.1 and 2.3.0, and 2.2.1's class file): a patch
		// release changed it, not 2.3.
		return one(RuleCipherSuites, SeverityError,
			fmt.Sprintf("%s does not set security.ssl.algorithms, so Flink's default applies: it accepts RSA keys only (up to Flink 2.2.0 it is TLS_RSA_WITH_AES_128_CBC_SHA, which current JDKs disable; from 2.2.1 the TLS_ECDHE_RSA GCM suites)", s.label),
			"set security.ssl.algorithms to forward-secret suites for the cluster's key type, e.g. "+ecdsaExample+"; "+fixConfig)
	}
	if f := suiteNameFindings(s, v, ecdsaExample); f != nil {
		return f
	}
	var suites, dead []string // the suites a handshake can use, and the others
	for _, suite := range listed {
		if usableSuite(suite) {
			suites = append(suites, suite)
		} else {
			dead = append(dead, suite)
		}
	}
	if len(suites) == 0 {
		return one(RuleCipherSuites, SeverityError,
			fmt.Sprintf("%s lists no cipher suite the JDK enables (%s): %s, so every handshake fails (\"No appropriate protocol\" or \"No negotiable cipher suite\")", s.label, v, disabledSuitesNote),
			"set security.ssl.algorithms to forward-secret suites for the cluster's key type, e.g. "+ecdsaExample+"; "+fixConfig)
	}
	var rsaKex []string
	for _, suite := range suites {
		if strings.HasPrefix(suite, "TLS_RSA_") || strings.HasPrefix(suite, "SSL_RSA_") {
			rsaKex = append(rsaKex, suite)
		}
	}
	if len(rsaKex) > 0 {
		return one(RuleCipherSuites, SeverityError,
			fmt.Sprintf("%s lists RSA key-exchange suites without forward secrecy, which JDK 17.0.18+, 21.0.10+ and 24 disable: %s", s.label, strings.Join(rsaKex, ", ")),
			"use TLS_ECDHE_* GCM suites matched to the key type; "+fixConfig)
	}
	if f := suitesForProtocolAndKey(s, opts, suites, v); f != nil {
		return f
	}
	if len(dead) > 0 {
		return one(RuleCipherSuites, SeverityWarning,
			fmt.Sprintf("%s lists cipher suites that never run: %s (%s)", s.label, strings.Join(dead, ", "), disabledSuitesNote),
			"remove them from security.ssl.algorithms")
	}
	return nil
}

// suiteNameFindings finds suites of security.ssl.algorithms (v) the JDK
// does not know by the name Flink hands it: written with spaces or in
// another case, or not JDK suites at all. The JDK refuses the whole list
// for one such name, so nothing else about the suites matters until then.
func suiteNameFindings(s *subject, v, ecdsaExample string) []Finding {
	var miswritten, unknown []string
	for _, e := range flinkListEntries(v) {
		_, known := jdkSuites[e]
		_, knownAsWritten := jdkSuites[strings.ToUpper(strings.TrimSpace(e))]
		switch {
		case known:
		case e == "" || knownAsWritten:
			miswritten = append(miswritten, strconv.Quote(e))
		default:
			unknown = append(unknown, strconv.Quote(e))
		}
	}
	if len(miswritten) > 0 {
		return one(RuleCipherSuites, SeverityError,
			fmt.Sprintf("%s writes security.ssl.algorithms with %s: Flink passes each comma-separated suite to the JDK as written, and the JDK knows suites only by their exact names, without spaces, so every TLS connection of Flink's data plane, blob server and REST fails%s",
				s.label, strings.Join(miswritten, ", "), yamlListNote(v)),
			"write the suites exactly, comma-separated without spaces, e.g. "+ecdsaExample)
	}
	if len(unknown) > 0 {
		return one(RuleCipherSuites, SeverityError,
			fmt.Sprintf("%s lists cipher suites JDK 17 does not know: %s; the JDK refuses the whole list when Flink sets up a TLS engine (IllegalArgumentException \"Unsupported CipherSuite\"), so every TLS connection of Flink's data plane, blob server and REST fails%s",
				s.label, strings.Join(unknown, ", "), yamlListNote(v)),
			"write JDK suite names exactly as the JDK's Standard Algorithm Names spell them, e.g. "+ecdsaExample)
	}
	return nil
}

// suitesForProtocolAndKey holds the suites a handshake can use to
// security.ssl.protocol and to the cluster's key type.
func suitesForProtocolAndKey(s *subject, opts LintOptions, suites []string, v string) []Finding {
	// The JDK negotiates TLS 1.3 only with TLS 1.3 suites, and TLS 1.2 only
	// with the others; Flink sets both options on every engine.
	allows12, allows13 := s.protocols()
	var suites12, suites13 []string
	for _, suite := range suites {
		if isTLS13Suite(suite) {
			suites13 = append(suites13, suite)
		} else {
			suites12 = append(suites12, suite)
		}
	}
	p, _ := s.get("security.ssl.protocol")
	switch {
	case allows13 && !allows12 && len(suites13) == 0:
		return one(RuleCipherSuites, SeverityError,
			fmt.Sprintf("%s allows only TLSv1.3 (security.ssl.protocol: %s), but security.ssl.algorithms lists no TLS 1.3 suite, so every handshake fails: TLS 1.3 runs only on %s", s.label, p, strings.Join(tls13Suites, ", ")),
			"add "+TLS13Algorithms+" to security.ssl.algorithms, or set security.ssl.protocol: "+Protocol)
	case allows12 && !allows13 && len(suites12) == 0:
		return one(RuleCipherSuites, SeverityError,
			fmt.Sprintf("%s allows only TLSv1.2 (security.ssl.protocol: %s), but security.ssl.algorithms lists only TLS 1.3 suites, so every handshake fails", s.label, cmp.Or(p, Protocol)),
			"set security.ssl.protocol: TLSv1.3, or list TLS 1.2 suites for the cluster's key type; "+fixConfig)
	case allows13 && len(suites13) > 0:
		// Both sides run one configuration, so they negotiate TLS 1.3,
		// whose suites work with any key type.
		return nil
	}
	hasECDSA, hasRSA := suiteKeyTypes(suites12)
	if alg := opts.KeyAlgorithm; alg == x509.ECDSA || alg == x509.RSA {
		if (alg == x509.ECDSA && !hasECDSA) || (alg == x509.RSA && !hasRSA) {
			want, _ := Algorithms(alg)
			return one(RuleCipherSuites, SeverityError,
				fmt.Sprintf("%s lists no cipher suite the JDK enables for the cluster's %s key (%s): handshakes fail with \"no cipher suites in common\"", s.label, keyAlgorithmName(alg), v),
				"set security.ssl.algorithms: "+want)
		}
		return nil
	}
	if hasECDSA && hasRSA {
		return one(RuleCipherSuites, SeverityWarning,
			fmt.Sprintf("%s mixes ECDSA and RSA cipher suites; only those matching the cluster's key type can ever be used", s.label),
			"list only the suites for the cluster's key type; "+fixConfig)
	}
	return nil
}

// yamlListNote explains a value that is a YAML list's text: Flink reads a
// sequence given for a string option as its flow form, brackets and all
// (see yamlscalar.go).
func yamlListNote(v string) string {
	if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
		return " (a YAML list reaches Flink as its text, brackets and all: write the value as one plain string)"
	}
	return ""
}

// weakProtocols are the protocol names below TLSv1.2.
var weakProtocols = map[string]bool{
	"SSLV2": true, "SSLV2HELLO": true, "SSLV3": true, "TLSV1": true, "TLSV1.0": true, "TLSV1.1": true,
}

// flinkListEntries splits security.ssl.protocol or security.ssl.algorithms
// as Flink's SSLUtils does for its Netty and socket paths: Java's
// String.split(","), which trims no spaces and drops trailing empty
// entries.
func flinkListEntries(v string) []string {
	entries := strings.Split(v, ",")
	for len(entries) > 1 && entries[len(entries)-1] == "" {
		entries = entries[:len(entries)-1]
	}
	return entries
}

// checkProtocol reads security.ssl.protocol as Flink hands it on (javap of
// SSLUtils and of the RPC's PekkoUtils, Flink 1.20.3 to 2.3.0; proven on
// real JobManagers by the Flink interop suite):
//   - SSLUtils splits it at commas and passes each entry, untrimmed, to
//     SSLEngine.setEnabledProtocols, which knows only the exact names
//     ("TLSv1.2", not "tlsv1.2" or " TLSv1.2");
//   - with internal SSL on, PekkoUtils writes the value unquoted into the
//     RPC's HOCON configuration ("protocol = TLSv1.2,TLSv1.3" does not
//     parse, so the process does not start), and Pekko takes what parses
//     as one protocol name.
//
// A name the JDK refuses breaks the connections it is set on, so these are
// errors, as a protocol below TLSv1.2 is.
func checkProtocol(s *subject, _ LintOptions) []Finding {
	v, set := s.get("security.ssl.protocol")
	if !set {
		return nil // Flink's default is TLSv1.2
	}
	fix := "set security.ssl.protocol: " + Protocol
	if len(splitList(v)) == 0 {
		return one(RuleProtocol, SeverityError,
			fmt.Sprintf("%s sets security.ssl.protocol to an empty value", s.label), fix)
	}
	entries := flinkListEntries(v)
	var weak, miswritten, unknown []string
	for _, p := range entries {
		switch u := strings.ToUpper(strings.TrimSpace(p)); {
		case weakProtocols[u]:
			weak = append(weak, strings.TrimSpace(p))
		case p == "TLSv1.2" || p == "TLSv1.3":
		case u == "TLSV1.2" || u == "TLSV1.3":
			miswritten = append(miswritten, strconv.Quote(p))
		default:
			unknown = append(unknown, strconv.Quote(p))
		}
	}
	var out []Finding
	add := func(message, fix string) {
		out = append(out, Finding{Rule: RuleProtocol, Severity: SeverityError, Message: message, Fix: fix})
	}
	if len(weak) > 0 {
		add(fmt.Sprintf("%s allows TLS protocols below TLSv1.2 (%s)", s.label, strings.Join(weak, ", ")), fix)
	}
	if len(miswritten) > 0 {
		add(fmt.Sprintf("%s writes security.ssl.protocol as %s: Flink passes each comma-separated name to the JDK as written, and the JDK knows only TLSv1.2 and TLSv1.3, in that case and without spaces, so every TLS connection fails",
			s.label, strings.Join(miswritten, ", ")),
			"write the names exactly, without spaces after the commas: "+fix)
	}
	if len(unknown) > 0 {
		add(fmt.Sprintf("%s sets security.ssl.protocol to names the JDK does not enable (%s), so every TLS connection fails%s", s.label, strings.Join(unknown, ", "), yamlListNote(v)), fix)
	}
	if len(entries) > 1 && s.internalSSL() {
		add(fmt.Sprintf("%s sets security.ssl.protocol to a list (%q) with internal SSL on: Flink writes the value unquoted into its RPC's (Pekko's) configuration, which cannot parse a list, so every Flink process fails at start (\"Could not create actor system\")",
			s.label, v),
			"name one protocol, the same for every process of the cluster: "+fix+" (or TLSv1.3)")
	}
	return out
}

// checkSSLProvider reads security.ssl.provider as Flink's SSLUtils does
// (javap, Flink 1.20.3 to 2.3.0; the Flink interop suite starts a
// JobManager with each): "JDK" and "OPENSSL" in any case, anything else
// refused ("Unknown SSL provider"); OPENSSL only when netty-tcnative is on
// the classpath, which Flink's distribution leaves out of lib/ ("openSSL
// not available"). Either failure stops every process with SSL on.
func checkSSLProvider(s *subject, _ LintOptions) []Finding {
	v, set := s.get("security.ssl.provider")
	if !set || (!s.internalSSL() && !s.restSSL()) {
		return nil
	}
	const fix = "remove security.ssl.provider: the default, JDK, serves the stores flinkpki writes"
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "JDK":
		return nil
	case "OPENSSL":
		return one(RuleSSLProvider, SeverityWarning,
			fmt.Sprintf("%s sets security.ssl.provider: %s, which needs netty-tcnative (flink-shaded-netty-tcnative-dynamic) in Flink's lib/; the Flink distribution leaves it out, and without it every process with SSL on fails at start (\"openSSL not available\")", s.label, v),
			fix+"; or add the tcnative jar to the image")
	default:
		return one(RuleSSLProvider, SeverityError,
			fmt.Sprintf("%s sets security.ssl.provider: %q, which Flink does not know (only JDK and OPENSSL), so every process with SSL on fails at start (\"Unknown SSL provider\")", s.label, v),
			fix)
	}
}

// rpcQuotedKeys are the internal SSL settings PekkoUtils writes into the
// RPC's HOCON configuration between double quotes, without escaping
// (javap, Flink 1.20.3 to 2.3.0), each followed by the key Flink falls
// back to, if any.
var rpcQuotedKeys = [][]string{
	{"security.ssl.internal.keystore", "security.ssl.keystore"},
	{"security.ssl.internal.keystore-password", "security.ssl.keystore-password"},
	{"security.ssl.internal.key-password", "security.ssl.key-password"},
	{"security.ssl.internal.keystore-type"},
	{"security.ssl.internal.truststore", "security.ssl.truststore"},
	{"security.ssl.internal.truststore-password", "security.ssl.truststore-password"},
	{"security.ssl.internal.truststore-type"},
}

// checkRPCQuoting finds internal store paths, passwords and types that
// hold a double quote, a backslash or a control character: inside the
// RPC's quoted HOCON string the first ends it, the second starts an
// escape, and the parser refuses the third ("JSON does not allow unescaped
// tab in quoted strings", Flink 2.2.1), so the process fails at start
// ("Could not create actor system"; the Flink interop suite starts a
// JobManager with such a password) or reads another password than the one
// set. flinkpki's own passwords are letters and digits.
func checkRPCQuoting(s *subject, _ LintOptions) []Finding {
	if !s.internalSSL() {
		return nil
	}
	var bad []string
	for _, keys := range rpcQuotedKeys {
		if key, v, set := s.lookup(keys...); set && strings.ContainsFunc(v, breaksHOCONString) {
			bad = append(bad, key)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return one(RuleRPCQuoting, SeverityError,
		fmt.Sprintf("%s has a double quote, a backslash or a control character in %s: Flink writes these values between double quotes, unescaped, into its RPC's (Pekko's) configuration, so every Flink process fails at start (\"Could not create actor system\") or reads another value", s.label, strings.Join(bad, ", ")),
		"use store paths and passwords without \", \\ or control characters (a tab, say): the passwords flinkpki init writes are letters and digits")
}

// breaksHOCONString reports whether r cannot stand unescaped in a quoted
// HOCON string: a double quote, a backslash, or a control character below
// U+0020 (Java's Character.isISOControl there; DEL and later ones pass).
func breaksHOCONString(r rune) bool {
	return r == '"' || r == '\\' || r < 0x20
}

// tls13Suites are the JDK's TLS 1.3 cipher suites, in its order of
// preference.
var tls13Suites = []string{"TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"}

// isTLS13Suite reports whether a suite is one of TLS 1.3's, which name no
// key exchange and work with any key.
func isTLS13Suite(suite string) bool {
	return slices.Contains(tls13Suites, suite)
}

// protocols reports whether security.ssl.protocol (Flink's default:
// TLSv1.2) lets TLS 1.2 and TLS 1.3 run. A value lint does not know counts
// as allowing both (FP006 warns about it).
func (s *subject) protocols() (tls12, tls13 bool) {
	v, set := s.get("security.ssl.protocol")
	if !set {
		return true, false
	}
	for _, p := range splitList(v) {
		switch u := strings.ToUpper(p); {
		case u == "TLSV1.2":
			tls12 = true
		case u == "TLSV1.3":
			tls13 = true
		case !weakProtocols[u]:
			return true, true
		}
	}
	return tls12, tls13
}
