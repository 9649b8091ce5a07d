package keystore

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"time"
	"unicode/utf8"
)

// DefaultAlias is the alias of the private-key entry Flink's keystores
// carry. SunX509 picks the first key entry of a matching type, so the name
// is for people and keytool, not for Flink.
const DefaultAlias = "flink"

// KeyStore is one keystore: exactly one private-key entry with its chain.
type KeyStore struct {
	// Alias names the private-key entry; empty means DefaultAlias.
	Alias string
	// Key is the private key of Chain[0]: ECDSA (P-256, P-384, P-521) or
	// RSA (2048 bits or more).
	Key crypto.PrivateKey
	// Chain is the leaf first, then each issuer in order.
	Chain []*x509.Certificate
	// StorePassword protects the store's integrity (and, for PKCS#12, its
	// encryption).
	StorePassword string
	// KeyPassword protects the private key. Empty means StorePassword. For
	// PKCS#12 it must equal StorePassword, because Java requires it.
	KeyPassword string
	// Created is the entry creation time written into JKS files. It is an
	// input so that the same input gives the same bytes.
	Created time.Time
	// Profile selects the PKCS#12 algorithms; empty means Modern2023.
	Profile Profile
	// Rand supplies PKCS#12 salts and IVs; nil means crypto/rand. JKS
	// encoding uses no randomness.
	Rand io.Reader
}

// TrustStore is one truststore: every CA as a trusted-certificate entry.
type TrustStore struct {
	// CAs are the trust anchors. Duplicates are written once.
	CAs []*x509.Certificate
	// Password protects the store.
	Password string
	// Created is the entry creation time written into JKS files.
	Created time.Time
	// Profile selects the PKCS#12 algorithms; empty means Modern2023.
	Profile Profile
	// Rand supplies PKCS#12 salts and IVs; nil means crypto/rand.
	Rand io.Reader
}

// EncodeKeyStore encodes ks in format f.
func EncodeKeyStore(f Format, ks KeyStore) ([]byte, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	if ks.Alias == "" {
		ks.Alias = DefaultAlias
	}
	if ks.KeyPassword == "" {
		ks.KeyPassword = ks.StorePassword
	}
	if err := checkAlias(ks.Alias); err != nil {
		return nil, err
	}
	if err := checkPasswords(f, ks.StorePassword, ks.KeyPassword); err != nil {
		return nil, err
	}
	if err := checkChain(ks.Chain); err != nil {
		return nil, err
	}
	if err := checkKey(ks.Key, ks.Chain[0]); err != nil {
		return nil, err
	}
	if f == JKS {
		return encodeJKSKeyStore(ks)
	}
	return encodePKCS12KeyStore(ks)
}

// EncodeTrustStore encodes ts in format f. Each CA's alias is
// "ca-" followed by the first 16 hex digits of its SHA-256 fingerprint:
// stable across issuances, unique per certificate, and independent of the
// subject, which two CAs of a lineage may share. Entries are written in
// alias order in both formats.
func EncodeTrustStore(f Format, ts TrustStore) ([]byte, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	if err := checkPasswords(f, ts.Password, ts.Password); err != nil {
		return nil, err
	}
	entries, err := trustEntries(ts.CAs)
	if err != nil {
		return nil, err
	}
	if f == JKS {
		return encodeJKSTrustStore(entries, ts)
	}
	return encodePKCS12TrustStore(entries, ts)
}

// DecodeKeyStore decodes a keystore and checks that it holds exactly one
// private-key entry. keyPassword empty means storePassword. Created is set
// for JKS only; PKCS#12 has no creation time.
func DecodeKeyStore(f Format, data []byte, storePassword, keyPassword string) (*KeyStore, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	if keyPassword == "" {
		keyPassword = storePassword
	}
	if f == JKS {
		return decodeJKSKeyStore(data, storePassword, keyPassword)
	}
	return decodePKCS12KeyStore(data, storePassword)
}

// DecodeTrustStore decodes a truststore and returns its certificates in
// file order. It fails when the store holds anything but trusted
// certificates.
func DecodeTrustStore(f Format, data []byte, password string) ([]*x509.Certificate, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	if f == JKS {
		return decodeJKSTrustStore(data, password)
	}
	return decodePKCS12TrustStore(data, password)
}

// TrustAlias returns the alias a CA gets in a truststore.
func TrustAlias(ca *x509.Certificate) string {
	sum := sha256.Sum256(ca.Raw)
	return "ca-" + hex.EncodeToString(sum[:8])
}

type trustEntry struct {
	alias string
	cert  *x509.Certificate
}

func trustEntries(cas []*x509.Certificate) ([]trustEntry, error) {
	if len(cas) == 0 {
		return nil, fmt.Errorf("%w: give at least one CA certificate", ErrNoCertificates)
	}
	seen := make(map[string]bool, len(cas))
	entries := make([]trustEntry, 0, len(cas))
	for i, c := range cas {
		if c == nil || len(c.Raw) == 0 {
			return nil, fmt.Errorf("%w: CA certificate %d is empty", ErrInvalidChain, i)
		}
		a := TrustAlias(c)
		if seen[a] {
			continue
		}
		seen[a] = true
		entries = append(entries, trustEntry{alias: a, cert: c})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].alias < entries[j].alias })
	return entries, nil
}

func checkAlias(alias string) error {
	for i := 0; i < len(alias); i++ {
		if alias[i] < 0x21 || alias[i] > 0x7e {
			return fmt.Errorf("%w %q: use printable ASCII without spaces", ErrInvalidAlias, alias)
		}
	}
	return nil
}

func checkPasswords(f Format, store, key string) error {
	if store == "" || key == "" {
		return fmt.Errorf("%w: passwords must not be empty", ErrPassword)
	}
	if f == PKCS12 && store != key {
		return fmt.Errorf("%w: for PKCS#12 the key password must equal the store password (Java requires it)", ErrPassword)
	}
	if f == JKS && (!isASCII(store) || !isASCII(key)) {
		return fmt.Errorf("%w: JKS passwords must be ASCII", ErrPassword)
	}
	if f == PKCS12 && (!utf8.ValidString(store) || hasNonBMP(store)) {
		return fmt.Errorf("%w: PKCS#12 passwords must be valid UTF-8 within the Basic Multilingual Plane", ErrPassword)
	}
	return nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func hasNonBMP(s string) bool {
	for _, r := range s {
		if r > 0xFFFF {
			return true
		}
	}
	return false
}

// checkChain verifies the chain is leaf first by comparing issuer and
// subject names; it deliberately skips signature checks, which would cost
// more than the whole encoding.
func checkChain(chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return fmt.Errorf("%w: it is empty; give the leaf certificate first", ErrInvalidChain)
	}
	for i, c := range chain {
		if c == nil || len(c.Raw) == 0 {
			return fmt.Errorf("%w: certificate %d is empty", ErrInvalidChain, i)
		}
		if i > 0 && !bytes.Equal(chain[i-1].RawIssuer, c.RawSubject) {
			return fmt.Errorf("%w: certificate %d (%s) did not issue certificate %d (%s); order it leaf first",
				ErrInvalidChain, i, c.Subject, i-1, chain[i-1].Subject)
		}
	}
	return nil
}

func checkKey(key crypto.PrivateKey, leaf *x509.Certificate) error {
	var pub crypto.PublicKey
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return fmt.Errorf("%w: ECDSA curve %s is not supported; use P-256 or P-384", ErrInvalidKey, k.Curve.Params().Name)
		}
		pub = &k.PublicKey
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("%w: RSA key has %d bits; use at least 2048", ErrInvalidKey, k.N.BitLen())
		}
		pub = &k.PublicKey
	case nil:
		return fmt.Errorf("%w: no private key given", ErrInvalidKey)
	default:
		return fmt.Errorf("%w: key type %T is not supported; use ECDSA or RSA", ErrInvalidKey, key)
	}
	eq, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !eq.Equal(pub) {
		return fmt.Errorf("%w: the private key does not belong to the leaf certificate %s", ErrInvalidKey, leaf.Subject)
	}
	return nil
}
