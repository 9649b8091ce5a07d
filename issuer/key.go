package issuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
)

// RSA modulus bounds for leaf keys. Under 2048 bits is breakable; over
// 4096, the largest cluster key type, the key cannot match its cluster, and
// its CSR signature alone would cost the server for nothing.
const (
	MinRSABits = 2048
	MaxRSABits = 4096
)

// RSAExponent is the one RSA public exponent taken, the one every library
// generates. A smaller one such as 3 comes from a hand-rolled or weakened
// key (FIPS 186-5 asks for more than 2^16, and small exponents are what the
// classic signature forgeries on lax verifiers need); a larger one makes
// each verification of the CSR's signature cost up to a hundred times more.
const RSAExponent = 65537

// CheckPublicKey refuses leaf keys that are weak or that the JDK TLS path of
// Flink does not handle: RSA outside 2048..4096 bits or with a public exponent
// other than 65537, ECDSA curves other than
// P-256 and P-384, and Ed25519 (no JSSE cipher suite in Flink's defaults).
func CheckPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		switch {
		case bits < MinRSABits:
			return fmt.Errorf("%w: RSA key of %d bits; use at least %d", ErrWeakKey, bits, MinRSABits)
		case bits > MaxRSABits:
			return fmt.Errorf("%w: RSA key of %d bits; use at most %d", ErrUnsupportedKey, bits, MaxRSABits)
		case k.E < RSAExponent:
			return fmt.Errorf("%w: RSA public exponent %d; use %d", ErrWeakKey, k.E, RSAExponent)
		case k.E != RSAExponent:
			return fmt.Errorf("%w: RSA public exponent %d; use %d", ErrUnsupportedKey, k.E, RSAExponent)
		}
		return nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384():
			return nil
		case elliptic.P224():
			return fmt.Errorf("%w: ECDSA curve P-224; use P-256 or P-384", ErrWeakKey)
		}
		return fmt.Errorf("%w: ECDSA curve %s; use P-256 or P-384", ErrUnsupportedKey, k.Curve.Params().Name)
	case ed25519.PublicKey:
		return fmt.Errorf("%w: Ed25519 keys do not work with Flink's JDK TLS; use ECDSA P-256/P-384 or RSA", ErrUnsupportedKey)
	case nil:
		return fmt.Errorf("%w: no public key", ErrInvalidRequest)
	default:
		return fmt.Errorf("%w: %T keys; use ECDSA P-256/P-384 or RSA", ErrUnsupportedKey, pub)
	}
}
