package keystore

import (
	"encoding/asn1"
	"fmt"
)

// maxPKCS12Iterations caps the KDF iteration counts a PKCS#12 file may ask
// for. go-pkcs12 runs whatever count a file names, so a crafted file could
// keep a decoder busy for hours. Our encoders use 2048 and keytool 10,000.
const maxPKCS12Iterations = 1_000_000

const maxDERDepth = 32

// checkPKCS12Cost rejects PKCS#12 files whose unencrypted parameters name
// an iteration count above maxPKCS12Iterations. In RFC 7292 and RFC 8018
// every iteration count (MacData, pbeParams, PBKDF2-params) is an INTEGER
// that directly follows an OCTET STRING salt in a SEQUENCE; the check looks
// for that shape anywhere, including inside OCTET STRINGs that wrap DER.
func checkPKCS12Cost(der []byte) error {
	var top asn1.RawValue
	if _, err := asn1.Unmarshal(der, &top); err != nil {
		return nil // not DER at all: the decoder reports it
	}
	return checkDERCost(top, 0)
}

func checkDERCost(v asn1.RawValue, depth int) error {
	if depth > maxDERDepth {
		return fmt.Errorf("%w: PKCS#12 structure is nested too deeply", ErrMalformed)
	}
	if !v.IsCompound {
		if v.Class == asn1.ClassUniversal && v.Tag == asn1.TagOctetString {
			var inner asn1.RawValue
			if rest, err := asn1.Unmarshal(v.Bytes, &inner); err == nil && len(rest) == 0 && inner.IsCompound {
				return checkDERCost(inner, depth+1)
			}
		}
		return nil
	}
	var prev asn1.RawValue
	for rest := v.Bytes; len(rest) > 0; {
		var child asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &child); err != nil {
			return nil
		}
		if isUniversal(child, asn1.TagInteger) && isUniversal(prev, asn1.TagOctetString) && !iterationsOK(child.Bytes) {
			return fmt.Errorf("%w: PKCS#12 file asks for more than %d KDF iterations", ErrMalformed, maxPKCS12Iterations)
		}
		if err := checkDERCost(child, depth+1); err != nil {
			return err
		}
		prev = child
	}
	return nil
}

func isUniversal(v asn1.RawValue, tag int) bool {
	return v.Class == asn1.ClassUniversal && v.Tag == tag && !v.IsCompound && v.FullBytes != nil
}

func iterationsOK(b []byte) bool {
	if len(b) > 4 {
		return false
	}
	n := 0
	for _, x := range b {
		n = n<<8 | int(x)
	}
	return n <= maxPKCS12Iterations
}
