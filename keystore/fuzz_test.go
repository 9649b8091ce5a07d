package keystore_test

import (
	"testing"

	"github.com/flinkpki/flinkpki/keystore"
)

var formats = []keystore.Format{keystore.JKS, keystore.PKCS12}

// FuzzDecodeKeyStore checks that decoding arbitrary bytes never panics and
// that a store that decodes is usable.
func FuzzDecodeKeyStore(f *testing.F) {
	m := newMaterial(f, "ecdsa-p256")
	ks := m.keyStore("")
	for _, c := range combos {
		f.Add(mustEncodeKeyStore(f, c.format, m.keyStore(c.profile)), ks.StorePassword)
	}
	f.Fuzz(func(t *testing.T, data []byte, password string) {
		for _, format := range formats {
			got, err := keystore.DecodeKeyStore(format, data, password, "")
			if err != nil {
				continue
			}
			if got.Key == nil || len(got.Chain) == 0 {
				t.Fatalf("%s store decoded without a key or chain", format)
			}
		}
	})
}

// FuzzDecodeTrustStore checks that decoding arbitrary bytes never panics.
func FuzzDecodeTrustStore(f *testing.F) {
	m := newMaterial(f, "ecdsa-p256")
	ts := m.trustStore("")
	for _, c := range combos {
		f.Add(mustEncodeTrustStore(f, c.format, m.trustStore(c.profile)), ts.Password)
	}
	f.Fuzz(func(t *testing.T, data []byte, password string) {
		for _, format := range formats {
			certs, err := keystore.DecodeTrustStore(format, data, password)
			if err == nil && len(certs) == 0 {
				t.Fatalf("%s truststore decoded without certificates", format)
			}
		}
	})
}
