package issuer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
)

// RSA modulus bounds for leaf keys. Under 2048 bits is breakable; over 8192
// bits costs every handshake for no gain and invites denial of service.
const (
	MinRSABits = 2048
	MaxRSABits = 8192
)

// MinRSAExponent is the smallest RSA public exponent taken (FIPS 186-5 asks
// for more than 2^16). Every library generates 65537; a smaller one such as 3
// comes from a hand-rolled or deliberately weakened key, and small exponents
// are what the classic signature-forgery attacks on lax verifiers need.
const MinRSAExponent = 65537

// CheckPublicKey refuses leaf keys that are weak or that the JDK TLS path of
// Flink does not handle: RSA outside 2048..8192 bits or with a public exponent
// under 65537, ECDSA curves other than
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
		case k.E < MinRSAExponent:
			return fmt.Errorf("%w: RSA public exponent %d; use 65537", ErrWeakKey, k.E)
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
