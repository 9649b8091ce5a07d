package flinkconf

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// Where Flink's SSLUtils finds each store: the scope's own key, then the
// shared one (getAndCheckOption, Flink 1.20.3, 2.2.1 and 2.3.0; probed with
// each version's SSLUtils).
var (
	internalKeystoreKeys   = []string{"security.ssl.internal.keystore", "security.ssl.keystore"}
	internalTruststoreKeys = []string{"security.ssl.internal.truststore", "security.ssl.truststore"}
	restKeystoreKeys       = []string{"security.ssl.rest.keystore", "security.ssl.keystore"}
	restTruststoreKeys     = []string{"security.ssl.rest.truststore", "security.ssl.truststore"}
)

// restAuthAsked reports whether the subject turns REST SSL on with client
// authentication asked for.
func (s *subject) restAuthAsked() bool {
	return s.restSSL() && s.isTrue("security.ssl.rest.authentication-enabled")
}

// restState says what the subject does with REST SSL, for FP002's messages.
func (s *subject) restState() string {
	switch {
	case !s.restSSL():
		return "REST SSL off"
	case !s.isTrue("security.ssl.rest.enabled"):
		return "REST SSL on only through security.ssl.enabled, which Flink 1.x reads as its fallback, without client authentication"
	}
	return "REST SSL on without client authentication"
}

// restAuthGap says why the REST client authentication the subject asks for
// does not keep strangers and job code out, or returns "" when it does.
//   - Without a REST truststore (security.ssl.rest.truststore, or its
//     fallback security.ssl.truststore) SSLUtils.getTrustManagerFactory
//     returns Optional.empty(), and createRestNettySSLContext applies the
//     trust manager, clientAuth(REQUIRE), the protocol and the suites only
//     inside Optional.map: REST accepts any client, with the JDK's defaults.
//   - With the internal stores, every internal leaf (each carries the
//     clientAuth EKU, and job code in a TaskManager can read its keystore)
//     authenticates to REST, and the internal CA serves REST too, against
//     flinkpki's separate REST CA.
func (s *subject) restAuthGap() (gap, fix string) {
	truststore, set := s.get(restTruststoreKeys...)
	if !set || strings.TrimSpace(truststore) == "" {
		return "security.ssl.rest.authentication-enabled is true, but neither security.ssl.rest.truststore nor its fallback security.ssl.truststore is set: Flink then builds the REST endpoint without a trust manager and silently drops client authentication, security.ssl.protocol and security.ssl.algorithms with it, so REST accepts any client",
			"set security.ssl.rest.truststore (and its password) to the truststore of flinkpki's rest-server material, which trusts only the cluster's REST CA"
	}
	internalKeystores, internalTruststores := s.internalStorePaths()
	var shared []string
	if p, ok := s.get(restKeystoreKeys...); ok && slices.Contains(internalKeystores, cleanPath(p)) {
		shared = append(shared, "its keystore is the internal one, so REST serves the internal leaf and REST clients must trust the internal CA")
	}
	if slices.Contains(internalTruststores, cleanPath(truststore)) {
		shared = append(shared, "its truststore is the internal one, so every internal leaf, each TaskManager's included, where job code can read it, authenticates to REST")
	}
	if len(shared) == 0 {
		return "", ""
	}
	return "REST client authentication uses the internal stores: " + strings.Join(shared, "; and "),
		"give REST its own stores from the cluster's separate REST CA (flinkpki bake --role rest-server, and --role rest-client for its clients) in security.ssl.rest.keystore and security.ssl.rest.truststore"
}

// internalStorePaths returns the paths of the internal keystore and
// truststore: those the configuration names, and in a FlinkDeployment
// those its flinkpki init containers write (--out).
func (s *subject) internalStorePaths() (keystores, truststores []string) {
	if p, ok := s.get(internalKeystoreKeys...); ok && strings.TrimSpace(p) != "" {
		keystores = append(keystores, cleanPath(p))
	}
	if p, ok := s.get(internalTruststoreKeys...); ok && strings.TrimSpace(p) != "" {
		truststores = append(truststores, cleanPath(p))
	}
	if s.deployment == nil {
		return keystores, truststores
	}
	for _, pod := range s.deployment.processPods() {
		for _, c := range pod.spec.InitContainers {
			call, kind := flinkpkiInit(c)
			if out := call.flags["--out"]; kind == internalInit && out != "" {
				for _, ext := range []string{".p12", ".jks"} {
					keystores = append(keystores, path.Join(out, "keystore"+ext))
					truststores = append(truststores, path.Join(out, "truststore"+ext))
				}
			}
		}
	}
	return keystores, truststores
}

func cleanPath(p string) string { return path.Clean(strings.TrimSpace(p)) }

// checkSSLStores finds SSL turned on without a store Flink needs for it.
// Flink's SSLUtils reads each store when it builds the engines, at start,
// and throws "The config option security.ssl.internal.keystore or
// security.ssl.keystore is missing." (probed on Flink 1.20.3, 2.2.1 and
// 2.3.0):
//   - internal SSL needs a keystore and a truststore, or no process starts;
//   - REST SSL needs a keystore, or the JobManager's REST endpoint does not
//     start. On Flink 1.x security.ssl.enabled turns REST SSL on too
//     (SecurityOptions.isRestSSLEnabled falls back to it), so a leftover
//     security.ssl.enabled: true needs REST stores there; Flink 2 ignores
//     the key. flinkpki init keeps the key when it merges: it cannot know
//     the Flink version, and on Flink 1.x with shared stores the key serves
//     REST SSL.
//
// Passwords are not asked for: FP004 keeps them out of shared
// configuration, and flinkpki init merges them with the paths. In a
// FlinkDeployment the internal stores are FP010's concern when an init
// container or a configuration of the pod's own makes them.
func checkSSLStores(s *subject, _ LintOptions) []Finding {
	if s.legacy && !readsLegacyConf(s.major) {
		return nil // FP001: Flink 2 reads none of it
	}
	var out []Finding
	if s.sslSwitch("security.ssl.internal.enabled", true) && !s.internalStoresFromPods() {
		var missing [][]string
		for _, keys := range [][]string{internalKeystoreKeys, internalTruststoreKeys} {
			if _, set := s.get(keys...); !set {
				missing = append(missing, keys)
			}
		}
		if len(missing) > 0 {
			var names []string
			for _, keys := range missing {
				names = append(names, keys[0]+" (or "+keys[1]+")")
			}
			out = append(out, Finding{Rule: RuleSSLStores, Severity: SeverityError,
				Message: fmt.Sprintf("%s turns internal SSL on (%s) but sets no %s: every Flink process fails at start (\"The config option %s or %s is missing.\")",
					s.label, s.internalSwitch(), strings.Join(names, " and no "), missing[0][0], missing[0][1]),
				Fix: "point them at the stores flinkpki writes (" + fixConfig + "); for a configuration that flinkpki init merges into, lint the merged copy (--flink-conf-out) instead"})
		}
	}
	if _, set := s.get(restKeystoreKeys...); !set && s.sslSwitch("security.ssl.rest.enabled", true) && !s.restKeystoreFromPods() {
		out = append(out, s.restStoreFinding())
	}
	return append(out, s.storeTypeFindings()...)
}

// jdkKeyStoreTypes are the KeyStore types JDK 17's own providers offer
// (KeyStore.getInstance is case-insensitive), and BCFKS, which Bouncy
// Castle's FIPS provider adds.
var jdkKeyStoreTypes = []string{"JKS", "PKCS12", "JCEKS", "DKS", "PKCS11", "CASEEXACTJKS", "BCFKS"}

// storeTypeFindings warns of a store type that JDK 17 does not know (P12,
// PKCS#12): Flink hands it to KeyStore.getInstance when it builds its TLS
// engines, which throws "... not found", and the process fails at start.
// A warning, since a security provider added to the JDK may offer more.
func (s *subject) storeTypeFindings() []Finding {
	var bad []string
	scopes := []string{"internal", "rest"}
	if s.initConf {
		scopes = scopes[1:] // the init containers' copy sets the internal ones
	}
	for _, scope := range scopes {
		for _, store := range []string{"keystore", "truststore"} {
			key := "security.ssl." + scope + "." + store + "-type"
			if v, set := s.get(key); set && !slices.Contains(jdkKeyStoreTypes, strings.ToUpper(strings.TrimSpace(v))) {
				bad = append(bad, fmt.Sprintf("%s: %s", key, v))
			}
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return one(RuleSSLStores, SeverityWarning,
		fmt.Sprintf("%s names store types JDK 17 does not know (%s): Flink asks the JDK for a KeyStore of that type when it sets up TLS, which fails (\"not found\") unless a security provider added to the JDK offers it", s.label, strings.Join(bad, ", ")),
		"use PKCS12 or JKS, as flinkpki writes them")
}

// internalSwitch names the key that turns internal SSL on.
func (s *subject) internalSwitch() string {
	if _, set := s.get("security.ssl.internal.enabled"); set {
		return "security.ssl.internal.enabled"
	}
	return "security.ssl.enabled, which Flink 1.x reads as its fallback"
}

func (s *subject) restStoreFinding() Finding {
	const missing = "The config option security.ssl.rest.keystore or security.ssl.keystore is missing."
	f := Finding{Rule: RuleSSLStores, Severity: SeverityError,
		Message: fmt.Sprintf("%s turns REST SSL on (security.ssl.rest.enabled) but sets no security.ssl.rest.keystore (or security.ssl.keystore): the JobManager's REST endpoint fails at start (%q)", s.label, missing),
		Fix:     "set security.ssl.rest.keystore (and its passwords) to flinkpki's rest-server material, or turn REST SSL off and keep REST on loopback behind a proxy"}
	if _, set := s.get("security.ssl.rest.enabled"); !set {
		version := "Flink 1.x"
		if s.major == 1 {
			version = "this Flink 1.x configuration"
		}
		f.Message = fmt.Sprintf("%s sets security.ssl.enabled: true, which %s also reads as security.ssl.rest.enabled, but no security.ssl.rest.keystore (or security.ssl.keystore): the JobManager's REST endpoint fails at start (%q; flinkpki init keeps security.ssl.enabled when it merges)",
			s.label, version, missing)
		f.Fix = "remove security.ssl.enabled (security.ssl.internal.enabled turns internal SSL on, and Flink 2 ignores the key), or set security.ssl.rest.enabled: false, or give REST its own stores (flinkpki's rest-server material)"
	}
	return f
}

// internalStoresFromPods reports whether, in a FlinkDeployment, something
// other than flinkConfiguration gives the processes their internal stores:
// a flinkpki init container (or a wrapper around one), or a configuration
// directory of the pod's own (FP010 follows these), or flinkConfiguration
// without passwords, which FP010 reports as stores nothing makes.
func (s *subject) internalStoresFromPods() bool {
	d := s.deployment
	if d == nil {
		return false
	}
	if _, inline := s.get("security.ssl.internal.keystore-password", "security.ssl.keystore-password"); !inline {
		return true
	}
	for _, pod := range d.processPods() {
		if bakedConf(&pod.spec) {
			return true
		}
		for _, c := range pod.spec.InitContainers {
			if _, kind := flinkpkiInit(c); kind != notInternalInit {
				return true
			}
		}
	}
	return false
}

// restKeystoreFromPods reports whether, in a FlinkDeployment, the
// JobManager's REST keystore may come from outside flinkConfiguration: an
// init container's --flink-conf-set, a wrapper lint cannot read, or a
// configuration directory of the pod's own.
func (s *subject) restKeystoreFromPods() bool {
	d := s.deployment
	if d == nil {
		return false
	}
	for _, key := range restKeystoreKeys {
		if _, set := d.jobManagerConfSet(key); set {
			return true
		}
	}
	for _, pod := range d.processPods() {
		if !slices.Contains(pod.roles, "JobManager") {
			continue
		}
		var inits []initKind
		for _, c := range pod.spec.InitContainers {
			_, kind := flinkpkiInit(c)
			inits = append(inits, kind)
		}
		if slices.Contains(inits, unreadable) || (!slices.Contains(inits, internalInit) && bakedConf(&pod.spec)) {
			return true
		}
	}
	return false
}

// checkPublicTruststore finds an internal truststore, or a REST truststore
// that authenticates clients, that is a public CA bundle: the JDK's cacerts
// (its default password is changeit) or the system's. Flink hands the
// truststore to a default PKIX trust manager and checks no host name on
// internal connections (SSLUtils), so any certificate a public CA issued
// for client authentication would join the cluster, or submit jobs over
// REST.
func checkPublicTruststore(s *subject, _ LintOptions) []Finding {
	var found, likely []string
	look := func(pathKeys []string, passwordKeys ...string) {
		if k, p, ok := s.lookup(pathKeys...); ok && isPublicBundle(p) {
			found = append(found, fmt.Sprintf("%s: %s", k, strings.TrimSpace(p)))
		} else if k, pw, ok := s.lookup(passwordKeys...); ok && strings.TrimSpace(pw) == "changeit" {
			// A private store may have that password too: likely, not sure.
			likely = append(likely, k+" is changeit, the JDK cacerts' default password")
		}
	}
	// The init containers' copy names its own internal truststore, with
	// its own password, whatever flinkConfiguration says.
	if s.sslSwitch("security.ssl.internal.enabled", true) && !s.initConf {
		look(internalTruststoreKeys, "security.ssl.internal.truststore-password", "security.ssl.truststore-password")
	}
	if s.restAuthAsked() {
		look(restTruststoreKeys, "security.ssl.rest.truststore-password", "security.ssl.truststore-password")
	}
	const why = "any certificate a public CA issued for client authentication would join the cluster or authenticate to REST, since Flink checks no host name on internal connections"
	const fix = "point the truststore at the one flinkpki writes (init --out, bake), which trusts the cluster's own CA only"
	var out []Finding
	if len(found) > 0 {
		out = append(out, Finding{Rule: RulePublicTruststore, Severity: SeverityError,
			Message: fmt.Sprintf("%s trusts a public CA bundle (%s): %s", s.label, strings.Join(found, "; "), why), Fix: fix})
	}
	if len(likely) > 0 {
		out = append(out, Finding{Rule: RulePublicTruststore, Severity: SeverityWarning,
			Message: fmt.Sprintf("%s may trust the JDK's public CA bundle (%s): if it does, %s", s.label, strings.Join(likely, "; "), why), Fix: fix})
	}
	return out
}

// isPublicBundle reports whether a truststore path names the JDK's or the
// operating system's CA bundle: a file named cacerts or jssecacerts (the
// JDK's lib/security/cacerts, Debian's /etc/ssl/certs/java/cacerts, Red
// Hat's /etc/pki/java/cacerts), or the PEM bundles under /etc/ssl and
// /etc/pki.
func isPublicBundle(p string) bool {
	p = cleanPath(p)
	switch path.Base(p) {
	case "cacerts", "jssecacerts":
		return true
	}
	return slices.Contains([]string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem", "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"}, p)
}
