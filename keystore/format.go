// Package keystore encodes and decodes the JKS and PKCS#12 keystores and
// truststores that Flink loads, and generates their passwords.
//
// The encoders are pure: alias, passwords and creation time are inputs, so a
// caller decides when a store changed. JKS output is byte-for-byte
// deterministic; PKCS#12 output carries random salts, so compare decoded
// content instead of bytes.
//
// Everything here follows what Flink's SSLUtils and JDK 17 need (see
// PRODUCT.md): exactly one private-key entry per keystore, a PKCS#12 key
// password equal to the store password, ASCII-only JKS passwords, the Java
// trusted-cert attribute on every PKCS#12 truststore entry, and only the
// PKCS#12 profiles JDK 17 can read.
package keystore

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors, for errors.Is. Every error returned by this package wraps
// one of them.
var (
	// ErrUnknownFormat means a store format name is not jks or pkcs12.
	ErrUnknownFormat = errors.New("unknown keystore format")
	// ErrUnknownProfile means a PKCS#12 profile name is not known.
	ErrUnknownProfile = errors.New("unknown PKCS#12 profile")
	// ErrPassword means a password cannot be used for the store (empty,
	// non-ASCII for JKS, or a PKCS#12 key password that differs from the
	// store password).
	ErrPassword = errors.New("unusable password")
	// ErrIncorrectPassword means a store could not be opened with the given
	// password (or its integrity check failed).
	ErrIncorrectPassword = errors.New("incorrect password or corrupted store")
	// ErrInvalidKey means the private key is missing, of an unsupported type,
	// or does not belong to the leaf certificate.
	ErrInvalidKey = errors.New("invalid private key")
	// ErrInvalidChain means the certificate chain is empty, contains a nil
	// certificate, or is not ordered leaf first.
	ErrInvalidChain = errors.New("invalid certificate chain")
	// ErrNoCertificates means a truststore would hold no certificate, which
	// the JDK treats as "trust nothing".
	ErrNoCertificates = errors.New("truststore has no certificates")
	// ErrInvalidAlias means an alias is empty or not printable ASCII.
	ErrInvalidAlias = errors.New("invalid alias")
	// ErrMalformed means the bytes are not a store of the expected shape.
	ErrMalformed = errors.New("malformed store")
)

// Format is a store file format.
type Format string

// The supported formats. PKCS12 is the default: it is the JDK's default
// keystore type since JDK 9.
const (
	PKCS12 Format = "pkcs12"
	JKS    Format = "jks"
)

// ParseFormat turns a user-supplied format name into a Format. The empty
// string means the default, PKCS12; "p12" is accepted as an alias.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "pkcs12", "p12":
		return PKCS12, nil
	case "jks":
		return JKS, nil
	}
	return "", fmt.Errorf("%w %q: use jks or pkcs12", ErrUnknownFormat, s)
}

// Ext returns the file name extension for the format, without a dot.
func (f Format) Ext() string {
	if f == JKS {
		return "jks"
	}
	return "p12"
}

// StoreType returns the JDK's KeyStore type name, as Flink's
// keystore-type and truststore-type options expect it.
func (f Format) StoreType() string {
	if f == JKS {
		return "JKS"
	}
	return "PKCS12"
}

func (f Format) check() error {
	if f != PKCS12 && f != JKS {
		return fmt.Errorf("%w %q: use jks or pkcs12", ErrUnknownFormat, string(f))
	}
	return nil
}

// Profile selects the PKCS#12 encryption algorithms. It does not affect JKS.
type Profile string

// The supported profiles. Both load on JDK 17. Modern2026 (PBMAC1) is
// deliberately absent because JDK 17 cannot read it, and RC2 because
// OpenSSL 3 and Java 20+ reject it.
const (
	// Modern2023 uses PBES2 with PBKDF2-HMAC-SHA-256 and AES-256-CBC, and an
	// HMAC-SHA-256 MAC.
	Modern2023 Profile = "modern2023"
	// LegacyDES uses 3DES and an HMAC-SHA-1 MAC, for old readers.
	LegacyDES Profile = "legacy-des"
)

// Profiles lists the accepted profile names, default first.
var Profiles = []Profile{Modern2023, LegacyDES}

// ParseProfile turns a profile name into a Profile. The empty string means
// the default, Modern2023. An unknown name is an error, never a silent
// fallback to a weaker profile.
func ParseProfile(s string) (Profile, error) {
	switch p := Profile(strings.ToLower(strings.TrimSpace(s))); p {
	case "":
		return Modern2023, nil
	case Modern2023, LegacyDES:
		return p, nil
	}
	return "", fmt.Errorf("%w %q: use %s or %s", ErrUnknownProfile, s, Modern2023, LegacyDES)
}
