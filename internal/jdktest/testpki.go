package jdktest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"
)

// KeyTypes are the key types of the contract's `cluster create --key-type`.
var KeyTypes = []string{"ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096"}

// NewKey generates a fresh key of a contract key type.
func NewKey(t testing.TB, keyType string) crypto.Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch keyType {
	case "ecdsa-p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ecdsa-p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "rsa-2048":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "rsa-3072":
		k, err = rsa.GenerateKey(rand.Reader, 3072)
	case "rsa-4096":
		k, err = rsa.GenerateKey(rand.Reader, 4096)
	default:
		t.Fatalf("unknown key type %q; use one of %v", keyType, KeyTypes)
	}
	if err != nil {
		t.Fatalf("generate %s key: %v", keyType, err)
	}
	return k
}

var (
	keyMu    sync.Mutex
	keyCache = map[string]crypto.Signer{}
)

// Key returns a key of keyType that is generated once per test process for
// each slot, because RSA key generation dominates test time otherwise.
// Different slots give different keys.
func Key(t testing.TB, keyType string, slot int) crypto.Signer {
	t.Helper()
	id := fmt.Sprintf("%s/%d", keyType, slot)
	keyMu.Lock()
	defer keyMu.Unlock()
	if k, ok := keyCache[id]; ok {
		return k
	}
	k := NewKey(t, keyType)
	keyCache[id] = k
	return k
}

// CA is a throwaway root CA for tests, shaped like a cluster CA: a
// self-signed root with path length 0.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

var serial struct {
	sync.Mutex
	n int64
}

func nextSerial() *big.Int {
	serial.Lock()
	defer serial.Unlock()
	serial.n++
	return big.NewInt(time.Now().UnixNano() + serial.n)
}

// NewCA creates a root CA named name with key.
func NewCA(t testing.TB, name string, key crypto.Signer) *CA {
	t.Helper()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"flinkpki test"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("create CA %s: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse CA %s: %v", name, err)
	}
	return &CA{Cert: cert, Key: key}
}

// Issue signs a leaf for key with serverAuth and clientAuth, as Flink's
// internal connections need both, and returns the chain leaf first.
func (ca *CA) Issue(t testing.TB, cn string, key crypto.Signer) []*x509.Certificate {
	t.Helper()
	now := time.Now()
	usage := x509.KeyUsageDigitalSignature
	if _, ok := key.(*rsa.PrivateKey); ok {
		usage |= x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     []string{cn},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(12 * time.Hour),
		KeyUsage:     usage,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatalf("issue leaf %s: %v", cn, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse leaf %s: %v", cn, err)
	}
	return []*x509.Certificate{leaf, ca.Cert}
}
