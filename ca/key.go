package ca

import (
	"crypto"
	"crypto/x509"
	"fmt"
)

// MarshalKey encodes a CA private key as PKCS#8 DER, the form the store
// encrypts. Only the offered key types are accepted, so a key that could never
// be loaded again is refused before it is stored.
func MarshalKey(key crypto.Signer) ([]byte, error) {
	if key == nil {
		return nil, fmt.Errorf("%w: the CA key is nil", ErrUnsupportedKey)
	}
	if _, err := KeyTypeOf(key.Public()); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: encode CA key as PKCS#8: %v", ErrUnsupportedKey, err)
	}
	return der, nil
}

// ParseKey decodes a PKCS#8 DER CA private key written by MarshalKey.
func ParseKey(der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: decode PKCS#8 CA key: %v", ErrUnsupportedKey, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %T cannot sign", ErrUnsupportedKey, k)
	}
	if _, err := KeyTypeOf(s.Public()); err != nil {
		return nil, err
	}
	return s, nil
}
