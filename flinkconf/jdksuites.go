package flinkconf

import "strings"

// jdkSuiteData is every cipher suite name JDK 17's SSLEngine accepts, as
// testdata/jdk/JDKCipherSuites.java prints it on JDK 17.0.15, one per line:
// "NAME STATUS [STANDARD-NAME]". Flink hands each entry of
// security.ssl.algorithms to SSLEngine.setEnabledCipherSuites, which throws
// "Unsupported CipherSuite" for any other name. STATUS is
//   - enabled: enabled by default, so a handshake can use it;
//   - supported: supported but not enabled by default (Flink enables it);
//   - disabled: accepted, but jdk.tls.disabledAlgorithms (3DES_EDE_CBC,
//     anon, NULL, ECDH, RC4, DES ...) keeps it out of every handshake.
//
// An alias carries the standard name it stands for. JDK 17.0.18 and later
// also disable TLS_RSA_*, which FP005 reports on its own.
// TestJDKSuiteTableMatchesTheJDK compares this table with the installed JDK.
const jdkSuiteData = `
TLS_AES_256_GCM_SHA384 enabled
TLS_AES_128_GCM_SHA256 enabled
TLS_CHACHA20_POLY1305_SHA256 enabled
TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 enabled
TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 enabled
TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 enabled
TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 enabled
TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 enabled
TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 enabled
TLS_DHE_RSA_WITH_AES_256_GCM_SHA384 enabled
TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256 enabled
TLS_DHE_DSS_WITH_AES_256_GCM_SHA384 enabled
TLS_DHE_RSA_WITH_AES_128_GCM_SHA256 enabled
TLS_DHE_DSS_WITH_AES_128_GCM_SHA256 enabled
TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384 enabled
TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384 enabled
TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 enabled
TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256 enabled
TLS_DHE_RSA_WITH_AES_256_CBC_SHA256 enabled
TLS_DHE_DSS_WITH_AES_256_CBC_SHA256 enabled
TLS_DHE_RSA_WITH_AES_128_CBC_SHA256 enabled
TLS_DHE_DSS_WITH_AES_128_CBC_SHA256 enabled
TLS_ECDH_ECDSA_WITH_AES_256_GCM_SHA384 disabled
TLS_ECDH_RSA_WITH_AES_256_GCM_SHA384 disabled
TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256 disabled
TLS_ECDH_RSA_WITH_AES_128_GCM_SHA256 disabled
TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA384 disabled
TLS_ECDH_RSA_WITH_AES_256_CBC_SHA384 disabled
TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256 disabled
TLS_ECDH_RSA_WITH_AES_128_CBC_SHA256 disabled
TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA enabled
TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA enabled
TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA enabled
TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA enabled
TLS_DHE_RSA_WITH_AES_256_CBC_SHA enabled
TLS_DHE_DSS_WITH_AES_256_CBC_SHA enabled
TLS_DHE_RSA_WITH_AES_128_CBC_SHA enabled
TLS_DHE_DSS_WITH_AES_128_CBC_SHA enabled
TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA disabled
TLS_ECDH_RSA_WITH_AES_256_CBC_SHA disabled
TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA disabled
TLS_ECDH_RSA_WITH_AES_128_CBC_SHA disabled
TLS_RSA_WITH_AES_256_GCM_SHA384 enabled
TLS_RSA_WITH_AES_128_GCM_SHA256 enabled
TLS_RSA_WITH_AES_256_CBC_SHA256 enabled
TLS_RSA_WITH_AES_128_CBC_SHA256 enabled
TLS_RSA_WITH_AES_256_CBC_SHA enabled
TLS_RSA_WITH_AES_128_CBC_SHA enabled
TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA disabled
TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA disabled
SSL_DHE_RSA_WITH_3DES_EDE_CBC_SHA disabled
TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA disabled SSL_DHE_RSA_WITH_3DES_EDE_CBC_SHA
SSL_DHE_DSS_WITH_3DES_EDE_CBC_SHA disabled
TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA disabled SSL_DHE_DSS_WITH_3DES_EDE_CBC_SHA
TLS_ECDH_ECDSA_WITH_3DES_EDE_CBC_SHA disabled
TLS_ECDH_RSA_WITH_3DES_EDE_CBC_SHA disabled
SSL_RSA_WITH_3DES_EDE_CBC_SHA disabled
TLS_RSA_WITH_3DES_EDE_CBC_SHA disabled SSL_RSA_WITH_3DES_EDE_CBC_SHA
TLS_EMPTY_RENEGOTIATION_INFO_SCSV enabled
TLS_DH_anon_WITH_AES_256_GCM_SHA384 disabled
TLS_DH_anon_WITH_AES_128_GCM_SHA256 disabled
TLS_DH_anon_WITH_AES_256_CBC_SHA256 disabled
TLS_ECDH_anon_WITH_AES_256_CBC_SHA disabled
TLS_DH_anon_WITH_AES_256_CBC_SHA disabled
TLS_DH_anon_WITH_AES_128_CBC_SHA256 disabled
TLS_ECDH_anon_WITH_AES_128_CBC_SHA disabled
TLS_DH_anon_WITH_AES_128_CBC_SHA disabled
TLS_ECDH_anon_WITH_3DES_EDE_CBC_SHA disabled
SSL_DH_anon_WITH_3DES_EDE_CBC_SHA disabled
TLS_DH_anon_WITH_3DES_EDE_CBC_SHA disabled SSL_DH_anon_WITH_3DES_EDE_CBC_SHA
TLS_ECDHE_ECDSA_WITH_RC4_128_SHA disabled
TLS_ECDHE_RSA_WITH_RC4_128_SHA disabled
SSL_RSA_WITH_RC4_128_SHA disabled
TLS_RSA_WITH_RC4_128_SHA disabled SSL_RSA_WITH_RC4_128_SHA
TLS_ECDH_ECDSA_WITH_RC4_128_SHA disabled
TLS_ECDH_RSA_WITH_RC4_128_SHA disabled
SSL_RSA_WITH_RC4_128_MD5 disabled
TLS_RSA_WITH_RC4_128_MD5 disabled SSL_RSA_WITH_RC4_128_MD5
TLS_ECDH_anon_WITH_RC4_128_SHA disabled
SSL_DH_anon_WITH_RC4_128_MD5 disabled
TLS_DH_anon_WITH_RC4_128_MD5 disabled SSL_DH_anon_WITH_RC4_128_MD5
SSL_RSA_WITH_DES_CBC_SHA disabled
TLS_RSA_WITH_DES_CBC_SHA disabled SSL_RSA_WITH_DES_CBC_SHA
SSL_DHE_RSA_WITH_DES_CBC_SHA disabled
TLS_DHE_RSA_WITH_DES_CBC_SHA disabled SSL_DHE_RSA_WITH_DES_CBC_SHA
SSL_DHE_DSS_WITH_DES_CBC_SHA disabled
TLS_DHE_DSS_WITH_DES_CBC_SHA disabled SSL_DHE_DSS_WITH_DES_CBC_SHA
SSL_DH_anon_WITH_DES_CBC_SHA disabled
TLS_DH_anon_WITH_DES_CBC_SHA disabled SSL_DH_anon_WITH_DES_CBC_SHA
SSL_RSA_EXPORT_WITH_DES40_CBC_SHA disabled
TLS_RSA_EXPORT_WITH_DES40_CBC_SHA disabled SSL_RSA_EXPORT_WITH_DES40_CBC_SHA
SSL_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA disabled
TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA disabled SSL_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA
SSL_DHE_DSS_EXPORT_WITH_DES40_CBC_SHA disabled
TLS_DHE_DSS_EXPORT_WITH_DES40_CBC_SHA disabled SSL_DHE_DSS_EXPORT_WITH_DES40_CBC_SHA
SSL_DH_anon_EXPORT_WITH_DES40_CBC_SHA disabled
TLS_DH_anon_EXPORT_WITH_DES40_CBC_SHA disabled SSL_DH_anon_EXPORT_WITH_DES40_CBC_SHA
SSL_RSA_EXPORT_WITH_RC4_40_MD5 disabled
TLS_RSA_EXPORT_WITH_RC4_40_MD5 disabled SSL_RSA_EXPORT_WITH_RC4_40_MD5
SSL_DH_anon_EXPORT_WITH_RC4_40_MD5 disabled
TLS_DH_anon_EXPORT_WITH_RC4_40_MD5 disabled SSL_DH_anon_EXPORT_WITH_RC4_40_MD5
TLS_RSA_WITH_NULL_SHA256 disabled
TLS_ECDHE_ECDSA_WITH_NULL_SHA disabled
TLS_ECDHE_RSA_WITH_NULL_SHA disabled
SSL_RSA_WITH_NULL_SHA disabled
TLS_RSA_WITH_NULL_SHA disabled SSL_RSA_WITH_NULL_SHA
TLS_ECDH_ECDSA_WITH_NULL_SHA disabled
TLS_ECDH_RSA_WITH_NULL_SHA disabled
TLS_ECDH_anon_WITH_NULL_SHA disabled
SSL_RSA_WITH_NULL_MD5 disabled
TLS_RSA_WITH_NULL_MD5 disabled SSL_RSA_WITH_NULL_MD5
`

// Cipher suite statuses in jdkSuiteData.
const (
	suiteEnabled   = "enabled"
	suiteSupported = "supported"
	suiteDisabled  = "disabled"
)

// scsv is the renegotiation signalling value: the JDK lists it among its
// enabled suites, but it negotiates nothing ("No negotiable cipher suite").
const scsv = "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"

// jdkSuite is what the JDK does with one cipher suite name.
type jdkSuite struct {
	status   string // suiteEnabled, suiteSupported or suiteDisabled
	standard string // the standard name, for an alias; else the name itself
}

// jdkSuites indexes jdkSuiteData by name.
var jdkSuites = func() map[string]jdkSuite {
	m := map[string]jdkSuite{}
	for _, line := range strings.Split(jdkSuiteData, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		s := jdkSuite{status: f[1], standard: f[0]}
		if len(f) > 2 {
			s.standard = f[2]
		}
		m[f[0]] = s
	}
	return m
}()

// usableSuite reports whether the JDK can negotiate a suite once Flink
// enables it.
func usableSuite(name string) bool {
	s, ok := jdkSuites[name]
	return ok && name != scsv && (s.status == suiteEnabled || s.status == suiteSupported)
}

// suiteKeyType names the certificate key a TLS 1.2 suite needs: "ECDSA"
// (TLS_ECDHE_ECDSA_*), "RSA" (TLS_ECDHE_RSA_*, TLS_DHE_RSA_*, TLS_RSA_*),
// "DSA" (TLS_DHE_DSS_*), "EC" for static ECDH (TLS_ECDH_ECDSA_* and
// TLS_ECDH_RSA_* both need an EC key; the second names the CA's signature),
// "" for anonymous suites, TLS 1.3 suites (any key) and the SCSV.
func suiteKeyType(name string) string {
	n := strings.TrimPrefix(strings.TrimPrefix(name, "TLS_"), "SSL_")
	switch {
	case strings.HasPrefix(n, "ECDHE_ECDSA_"):
		return "ECDSA"
	case strings.HasPrefix(n, "ECDHE_RSA_"), strings.HasPrefix(n, "DHE_RSA_"), strings.HasPrefix(n, "RSA_"):
		return "RSA"
	case strings.HasPrefix(n, "DHE_DSS_"):
		return "DSA"
	case strings.HasPrefix(n, "ECDH_ECDSA_"), strings.HasPrefix(n, "ECDH_RSA_"):
		return "EC"
	}
	return ""
}
