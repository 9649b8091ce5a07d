package keystore_test

import (
	"crypto"
	"crypto/x509"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/internal/jdktest"
	"github.com/flinkpki/flinkpki/keystore"
)

// created is a fixed creation time; JKS stores milliseconds.
var created = time.Date(2025, 3, 4, 5, 6, 7, 8_000_000, time.UTC)

type material struct {
	key   crypto.Signer
	chain []*x509.Certificate
	cas   []*x509.Certificate
}

// newMaterial builds a root CA and a leaf of keyType, plus a second CA to
// stand in for a prepared CA in the truststore.
func newMaterial(t testing.TB, keyType string) material {
	t.Helper()
	ca := jdktest.NewCA(t, "keystore-test-ca-"+keyType, jdktest.Key(t, "ecdsa-p256", 100))
	next := jdktest.NewCA(t, "keystore-test-ca-"+keyType, jdktest.Key(t, "ecdsa-p256", 101))
	key := jdktest.Key(t, keyType, 0)
	return material{key: key, chain: ca.Issue(t, "jobmanager", key), cas: []*x509.Certificate{ca.Cert, next.Cert}}
}

func (m material) keyStore(p keystore.Profile) keystore.KeyStore {
	return keystore.KeyStore{
		Key: m.key, Chain: m.chain, StorePassword: "store-pass-1234567890",
		Created: created, Profile: p,
	}
}

func (m material) trustStore(p keystore.Profile) keystore.TrustStore {
	return keystore.TrustStore{CAs: m.cas, Password: "trust-pass-1234567890", Created: created, Profile: p}
}

// combo is one format and profile pair; JKS ignores the profile.
type combo struct {
	format  keystore.Format
	profile keystore.Profile
}

func (c combo) String() string {
	if c.format == keystore.JKS {
		return "jks"
	}
	return "pkcs12-" + string(c.profile)
}

var combos = []combo{
	{keystore.JKS, ""},
	{keystore.PKCS12, keystore.Modern2023},
	{keystore.PKCS12, keystore.LegacyDES},
}

func mustEncodeKeyStore(t testing.TB, f keystore.Format, ks keystore.KeyStore) []byte {
	t.Helper()
	b, err := keystore.EncodeKeyStore(f, ks)
	if err != nil {
		t.Fatalf("EncodeKeyStore(%s): %v", f, err)
	}
	return b
}

func mustEncodeTrustStore(t testing.TB, f keystore.Format, ts keystore.TrustStore) []byte {
	t.Helper()
	b, err := keystore.EncodeTrustStore(f, ts)
	if err != nil {
		t.Fatalf("EncodeTrustStore(%s): %v", f, err)
	}
	return b
}

func sameCerts(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}
