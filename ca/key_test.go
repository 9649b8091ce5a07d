package ca

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"testing"
)

func TestMarshalKeyRoundTripsEveryKeyType(t *testing.T) {
	t.Parallel()
	for _, kt := range []KeyType{KeyTypeECDSAP256, KeyTypeECDSAP384, KeyTypeRSA2048} {
		t.Run(string(kt), func(t *testing.T) {
			t.Parallel()
			key, err := kt.GenerateKey(nil)
			if err != nil {
				t.Fatal(err)
			}
			der, err := MarshalKey(key)
			if err != nil {
				t.Fatalf("MarshalKey: %v", err)
			}
			if _, err := x509.ParsePKCS8PrivateKey(der); err != nil {
				t.Fatalf("MarshalKey output is not PKCS#8: %v", err)
			}
			back, err := ParseKey(der)
			if err != nil {
				t.Fatalf("ParseKey: %v", err)
			}
			if !back.Public().(publicKeyEqual).Equal(key.Public()) {
				t.Fatal("ParseKey returned another key")
			}
		})
	}
}

func TestMarshalAndParseKeyRefuseKeysThatAreNotOffered(t *testing.T) {
	t.Parallel()
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edDER, err := x509.MarshalPKCS8PrivateKey(ed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := MarshalKey(p521); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("MarshalKey(P-521) error = %v, want ErrUnsupportedKey", err)
	}
	if _, err := MarshalKey(nil); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("MarshalKey(nil) error = %v, want ErrUnsupportedKey", err)
	}
	if _, err := ParseKey(edDER); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("ParseKey(Ed25519) error = %v, want ErrUnsupportedKey", err)
	}
	if _, err := ParseKey([]byte("not DER")); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("ParseKey(garbage) error = %v, want ErrUnsupportedKey", err)
	}
}
