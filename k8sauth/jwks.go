package k8sauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// minRSABits is the smallest RSA modulus accepted as a signing key.
const minRSABits = 2048

// verificationKey is one usable key from the JWKS with the single
// algorithm it may verify; binding key and algorithm here is what keeps an
// RSA public key from ever being used as an HMAC secret.
type verificationKey struct {
	kid string
	alg jose.SignatureAlgorithm
	key crypto.PublicKey
}

// parseJWKS reads a JWK set as served at the apiserver's /openid/v1/jwks
// and keeps the RS256 and ES256 signature keys. Keys of other types or
// algorithms, or marked for encryption, are skipped; private key material
// is refused outright, because a file holding it is a leak waiting to
// happen and certainly not what the apiserver publishes.
func parseJWKS(b []byte) ([]verificationKey, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("JWKS is empty; give the contents of the cluster's /openid/v1/jwks: %w", ErrConfig)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("JWKS is not valid JSON (%v); give the contents of /openid/v1/jwks: %w", err, ErrConfig)
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf(`JWKS has no "keys"; is this /openid/v1/jwks and not the discovery document?: %w`, ErrConfig)
	}
	var keys []verificationKey
	for n, raw := range set.Keys {
		var jwk jose.JSONWebKey
		if err := json.Unmarshal(raw, &jwk); err != nil {
			return nil, fmt.Errorf("JWKS key %d is invalid: %v: %w", n, err, ErrConfig)
		}
		switch jwk.Key.(type) {
		case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
			return nil, fmt.Errorf("JWKS key %q holds private key material; give the public JWKS from /openid/v1/jwks: %w", jwk.KeyID, ErrConfig)
		}
		if k, ok := usableKey(jwk); ok {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("none of the %d JWKS keys is an RS256 (RSA, at least %d bits) or ES256 (P-256) signing key: %w",
			len(set.Keys), minRSABits, ErrConfig)
	}
	return keys, nil
}

// usableKey returns the verification key for jwk, or false when jwk cannot
// verify RS256 or ES256 signatures.
func usableKey(jwk jose.JSONWebKey) (verificationKey, bool) {
	if jwk.Use != "" && jwk.Use != "sig" {
		return verificationKey{}, false
	}
	var alg jose.SignatureAlgorithm
	switch k := jwk.Key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return verificationKey{}, false
		}
		alg = jose.RS256
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return verificationKey{}, false
		}
		alg = jose.ES256
	default:
		return verificationKey{}, false
	}
	if jwk.Algorithm != "" && jwk.Algorithm != string(alg) {
		return verificationKey{}, false
	}
	return verificationKey{kid: jwk.KeyID, alg: alg, key: jwk.Key}, true
}
