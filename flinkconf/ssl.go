// Package flinkconf generates, merges and lints Flink configuration for
// internal and REST TLS.
//
// Everything here follows the facts in PRODUCT.md: Flink's default cipher
// suites accept RSA keys only and current JDKs disable TLS_RSA_*, so the
// protocol and the cipher suites are always written, matched to the key type.
package flinkconf

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
)

// Protocol is the TLS protocol Flink is told to use. TLSv1.2 is what every
// Flink version (1.x and 2.x) and every JDK 11+ supports on all internal
// paths (Netty, the blob server and Pekko/Akka).
const Protocol = "TLSv1.2"

// ProtocolTLS13 is the protocol of a cluster that runs TLS 1.3 only (init
// and bake --tls-protocol TLSv1.3). A TLS 1.2 process and a TLS 1.3 process
// cannot reach each other, so a cluster runs one or the other, and
// switching means restarting every process of it.
const ProtocolTLS13 = "TLSv1.3"

// TLS13Algorithms are the cipher suites written with ProtocolTLS13. TLS 1.3
// suites name no key exchange and no key type: they serve ECDSA and RSA
// keys alike.
const TLS13Algorithms = "TLS_AES_256_GCM_SHA384,TLS_AES_128_GCM_SHA256"

// ParseProtocol reads a --tls-protocol value, in any case, as Protocol or
// ProtocolTLS13; ok is false for anything else.
func ParseProtocol(v string) (protocol string, ok bool) {
	for _, p := range []string{Protocol, ProtocolTLS13} {
		if strings.EqualFold(v, p) {
			return p, true
		}
	}
	return "", false
}

// ProtocolAlgorithms returns security.ssl.protocol and
// security.ssl.algorithms for a key algorithm: TLS 1.2 with suites matched
// to the key (Algorithms), or TLS 1.3 with its own suites.
func ProtocolAlgorithms(alg x509.PublicKeyAlgorithm, tls13 bool) (protocol, algorithms string, err error) {
	algs, err := Algorithms(alg)
	if err != nil {
		return "", "", err
	}
	if tls13 {
		return ProtocolTLS13, TLS13Algorithms, nil
	}
	return Protocol, algs, nil
}

// Algorithms returns the value for security.ssl.algorithms that matches a
// key algorithm: forward-secret AEAD suites only, never TLS_RSA_*.
func Algorithms(alg x509.PublicKeyAlgorithm) (string, error) {
	switch alg {
	case x509.ECDSA:
		return "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", nil
	case x509.RSA:
		return "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", nil
	default:
		return "", fmt.Errorf("no Flink cipher suites for key algorithm %v: use an ECDSA or RSA key", alg)
	}
}

// transportSwitches each turn TLS off for one of Flink's internal
// transports while security.ssl.internal.enabled stays true: the RPC
// (pekko.ssl.enabled, and its old name akka.ssl.enabled, read only when the
// new one is not set; PekkoUtils.addSslRemoteConfig), the blob server
// (BlobServer, BlobClient) and the data plane between TaskManagers
// (NettyConfig). Each defaults to true; Flink 1.20.3 and 2.3.0 read them so.
var transportSwitches = []struct {
	what string   // what runs in plaintext when it is off
	keys []string // the key, then its old name
}{
	{"the RPC, job submission included", []string{"pekko.ssl.enabled", "akka.ssl.enabled"}},
	{"the blob server, which serves the job's jars", []string{"blob.service.ssl.enabled"}},
	{"the data plane between TaskManagers", []string{"taskmanager.data.ssl.enabled"}},
}

// TransportSSLKeys are the keys of transportSwitches, old names included.
var TransportSSLKeys = func() []string {
	var out []string
	for _, t := range transportSwitches {
		out = append(out, t.keys...)
	}
	return out
}()

// The keys that pin peer leaves by fingerprint: set, Flink trusts exactly
// those leaves and ignores the truststore.
const (
	internalFingerprintKey = "security.ssl.internal.cert.fingerprint"
	restFingerprintKey     = "security.ssl.rest.cert.fingerprint"
)

// unset returns the keys a copy that sets kvs removes from its source
// without setting them, because they would undo the TLS that kvs sets up:
//   - with internal SSL, the TransportSSLKeys (each is on when absent), and
//     security.ssl.internal.cert.fingerprint: set, Flink trusts the listed
//     peer leaves instead of the truststore the copy names, so the next
//     pod's new leaf is refused (SSLUtils, and the RPC's
//     CustomSSLEngineProvider, where even an empty value pins);
//   - with REST SSL, security.ssl.rest.cert.fingerprint, likewise;
//   - for each store kvs names, its *-type key when kvs leaves it out
//     (LegacyStoreTypes): the source's type describes some other store,
//     and Flink 1.20+ would open this one as that type (BCFKS, say) and
//     fail.
//
// Keys that kvs sets are not returned.
func unset(kvs []KV) []string {
	set := confMap(kvs)
	var out []string
	add := func(keys ...string) {
		for _, k := range keys {
			if _, ok := set[k]; !ok && !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	if isTrueValue(set["security.ssl.internal.enabled"]) {
		add(TransportSSLKeys...)
		add(internalFingerprintKey)
	}
	if isTrueValue(set["security.ssl.rest.enabled"]) {
		add(restFingerprintKey)
	}
	for _, scope := range []string{"internal", "rest"} {
		for _, store := range []string{"keystore", "truststore"} {
			if k := "security.ssl." + scope + "." + store; set[k] != "" {
				add(k + "-type")
			}
		}
	}
	return out
}

// KV is one Flink configuration key and its value. Order matters for
// readable, deterministic output, so configuration is passed as []KV.
type KV struct {
	Key   string
	Value string
}

// StoreType returns Flink's name of a store format ("PKCS12" or "JKS").
func StoreType(format string) (string, error) {
	switch strings.ToLower(format) {
	case "pkcs12", "p12":
		return "PKCS12", nil
	case "jks":
		return "JKS", nil
	}
	return "", fmt.Errorf("unknown store format %q: use jks or pkcs12", format)
}

// InternalSSL describes one process's internal TLS material on disk.
type InternalSSL struct {
	Keystore           string // absolute path
	KeystorePassword   string
	KeyPassword        string
	KeystoreType       string // "PKCS12" or "JKS"
	Truststore         string // absolute path
	TruststorePassword string
	TruststoreType     string
	KeyAlgorithm       x509.PublicKeyAlgorithm
	// LegacyStoreTypes omits the *-type keys, which Flink < 1.20 does not know.
	LegacyStoreTypes bool
	// TLS13 writes TLS 1.3 (ProtocolTLS13 and TLS13Algorithms) instead of
	// TLS 1.2 with suites matched to the key.
	TLS13 bool
}

// Keys returns the security.ssl.* keys for the internal connectivity, in a
// fixed order.
func (s InternalSSL) Keys() ([]KV, error) { return s.keys("internal") }

// RESTKeys returns the security.ssl.rest.* keys for the same material, for
// Flink's REST endpoint with mutual authentication (rest-server material)
// and for Flink's REST client (rest-client material).
func (s InternalSSL) RESTKeys() ([]KV, error) { return s.keys("rest") }

func (s InternalSSL) keys(scope string) ([]KV, error) {
	protocol, algs, err := ProtocolAlgorithms(s.KeyAlgorithm, s.TLS13)
	if err != nil {
		return nil, err
	}
	p := "security.ssl." + scope + "."
	kvs := []KV{{p + "enabled", "true"}}
	if scope == "rest" {
		kvs = append(kvs, KV{p + "authentication-enabled", "true"})
	}
	kvs = append(kvs,
		KV{p + "keystore", s.Keystore},
		KV{p + "keystore-password", s.KeystorePassword},
		KV{p + "key-password", s.KeyPassword},
	)
	if !s.LegacyStoreTypes {
		kvs = append(kvs, KV{p + "keystore-type", s.KeystoreType})
	}
	kvs = append(kvs,
		KV{p + "truststore", s.Truststore},
		KV{p + "truststore-password", s.TruststorePassword},
	)
	if !s.LegacyStoreTypes {
		kvs = append(kvs, KV{p + "truststore-type", s.TruststoreType})
	}
	kvs = append(kvs,
		KV{"security.ssl.protocol", protocol},
		KV{"security.ssl.algorithms", algs},
	)
	return kvs, nil
}

// RenderFlat renders keys as flat "key: value" lines, the format of
// flink-ssl.yaml and of a legacy flink-conf.yaml. Values are written plain:
// the generated ones (paths, ASCII passwords, suite names) never need quoting.
func RenderFlat(kvs []KV) []byte {
	var b strings.Builder
	for _, kv := range kvs {
		b.WriteString(kv.Key)
		b.WriteString(": ")
		b.WriteString(kv.Value)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}
