package keystore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"fmt"
)

// DER encodings of the OIDs an ECDSA PKCS#8 key names.
var (
	derOIDECPublicKey = []byte{0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01}
	derOIDCurve       = map[elliptic.Curve][]byte{
		elliptic.P256(): {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07},
		elliptic.P384(): {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22},
		elliptic.P521(): {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23},
	}
)

// marshalPKCS8 returns the same bytes as x509.MarshalPKCS8PrivateKey. For
// ECDSA it writes the DER directly: reflection-based ASN.1 marshalling was
// over a third of the cost of a whole JKS encoding.
func marshalPKCS8(key crypto.PrivateKey) ([]byte, error) {
	k, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return x509.MarshalPKCS8PrivateKey(key)
	}
	curve, ok := derOIDCurve[k.Curve]
	if !ok {
		return nil, fmt.Errorf("%w: unsupported ECDSA curve", ErrInvalidKey)
	}
	priv, err := k.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	pub, err := k.PublicKey.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	bitString := derTLV(0x03, []byte{0}, pub)
	ecKey := derTLV(0x30, []byte{0x02, 0x01, 0x01}, derTLV(0x04, priv), derTLV(0xa1, bitString))
	alg := derTLV(0x30, derOIDECPublicKey, curve)
	return derTLV(0x30, []byte{0x02, 0x01, 0x00}, alg, derTLV(0x04, ecKey)), nil
}

// derTLV encodes one DER element whose content is the concatenation of
// parts. Lengths up to 65535 bytes are enough for any key here.
func derTLV(tag byte, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n+4)
	out = append(out, tag)
	switch {
	case n < 0x80:
		out = append(out, byte(n))
	case n <= 0xff:
		out = append(out, 0x81, byte(n))
	default:
		out = append(out, 0x82, byte(n>>8), byte(n))
	}
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
