package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"io"
	"strings"

	kmsapi "go.step.sm/crypto/kms/apiv1"
)

// KeyType names the key algorithm and size of a cluster's CAs and leaves. The
// set is small on purpose: these are the keys the JDK shipped with Flink
// handles in every TLS path, with matching cipher suites.
type KeyType string

// The offered key types. ECDSA P-256 is the default: it is the fastest to
// generate and sign with, which matters for init containers.
const (
	KeyTypeECDSAP256 KeyType = "ecdsa-p256"
	KeyTypeECDSAP384 KeyType = "ecdsa-p384"
	KeyTypeRSA2048   KeyType = "rsa-2048"
	KeyTypeRSA3072   KeyType = "rsa-3072"
	KeyTypeRSA4096   KeyType = "rsa-4096"

	// DefaultKeyType is used when no key type is given.
	DefaultKeyType = KeyTypeECDSAP256
)

// KeyTypes lists every offered key type in the order shown to people.
func KeyTypes() []KeyType {
	return []KeyType{KeyTypeECDSAP256, KeyTypeECDSAP384, KeyTypeRSA2048, KeyTypeRSA3072, KeyTypeRSA4096}
}

// ParseKeyType turns a flag value into a KeyType; the empty string means
// DefaultKeyType, so an omitted flag needs no special case at the caller.
func ParseKeyType(s string) (KeyType, error) {
	if s == "" {
		return DefaultKeyType, nil
	}
	for _, k := range KeyTypes() {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("%w %q: choose one of %s", ErrUnknownKeyType, s, keyTypeChoices())
}

func keyTypeChoices() string {
	names := make([]string, 0, len(KeyTypes()))
	for _, k := range KeyTypes() {
		names = append(names, string(k))
	}
	return strings.Join(names, ", ")
}

// String returns the flag spelling of the key type.
func (k KeyType) String() string { return string(k) }

// Algorithm returns the X.509 public key algorithm of the key type, or
// x509.UnknownPublicKeyAlgorithm for an unknown one.
func (k KeyType) Algorithm() x509.PublicKeyAlgorithm {
	switch k {
	case KeyTypeECDSAP256, KeyTypeECDSAP384:
		return x509.ECDSA
	case KeyTypeRSA2048, KeyTypeRSA3072, KeyTypeRSA4096:
		return x509.RSA
	default:
		return x509.UnknownPublicKeyAlgorithm
	}
}

// rsaBits returns the modulus size of an RSA key type, 0 for others.
func (k KeyType) rsaBits() int {
	switch k {
	case KeyTypeRSA2048:
		return 2048
	case KeyTypeRSA3072:
		return 3072
	case KeyTypeRSA4096:
		return 4096
	default:
		return 0
	}
}

// curve returns the curve of an ECDSA key type, nil for others.
func (k KeyType) curve() elliptic.Curve {
	switch k {
	case KeyTypeECDSAP256:
		return elliptic.P256()
	case KeyTypeECDSAP384:
		return elliptic.P384()
	default:
		return nil
	}
}

// GenerateKey makes a new private key of this type. Clients use it to make
// leaf keys where they are used; the server uses it only for bake. A nil r
// means crypto/rand.Reader (Go may ignore r and use its own secure source).
func (k KeyType) GenerateKey(r io.Reader) (crypto.Signer, error) {
	if r == nil {
		r = rand.Reader
	}
	if c := k.curve(); c != nil {
		return ecdsa.GenerateKey(c, r)
	}
	if bits := k.rsaBits(); bits != 0 {
		return rsa.GenerateKey(r, bits)
	}
	return nil, fmt.Errorf("%w %q: choose one of %s", ErrUnknownKeyType, string(k), keyTypeChoices())
}

// createKeyRequest returns the KMS request that creates a key of this type.
func (k KeyType) createKeyRequest() (*kmsapi.CreateKeyRequest, error) {
	switch k {
	case KeyTypeECDSAP256:
		return &kmsapi.CreateKeyRequest{SignatureAlgorithm: kmsapi.ECDSAWithSHA256}, nil
	case KeyTypeECDSAP384:
		return &kmsapi.CreateKeyRequest{SignatureAlgorithm: kmsapi.ECDSAWithSHA384}, nil
	case KeyTypeRSA2048, KeyTypeRSA3072, KeyTypeRSA4096:
		return &kmsapi.CreateKeyRequest{SignatureAlgorithm: kmsapi.SHA256WithRSA, Bits: k.rsaBits()}, nil
	default:
		return nil, fmt.Errorf("%w %q: choose one of %s", ErrUnknownKeyType, string(k), keyTypeChoices())
	}
}

// KeyTypeOf names the key type of a public key, so a loaded CA or a CSR can be
// checked against the cluster's key type.
func KeyTypeOf(pub crypto.PublicKey) (KeyType, error) {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			return KeyTypeECDSAP256, nil
		case elliptic.P384():
			return KeyTypeECDSAP384, nil
		}
		return "", fmt.Errorf("%w: ECDSA curve %s is not offered; use P-256 or P-384", ErrUnsupportedKey, p.Curve.Params().Name)
	case *rsa.PublicKey:
		switch p.N.BitLen() {
		case 2048:
			return KeyTypeRSA2048, nil
		case 3072:
			return KeyTypeRSA3072, nil
		case 4096:
			return KeyTypeRSA4096, nil
		}
		return "", fmt.Errorf("%w: RSA key of %d bits is not offered; use 2048, 3072 or 4096", ErrUnsupportedKey, p.N.BitLen())
	default:
		return "", fmt.Errorf("%w: %T keys are not offered; use ECDSA P-256/P-384 or RSA", ErrUnsupportedKey, pub)
	}
}
