package ca

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
)

func TestParseKeyType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    KeyType
		wantErr error
	}{
		{"an empty name means the default P-256", "", KeyTypeECDSAP256, nil},
		{"ecdsa-p256 is accepted", "ecdsa-p256", KeyTypeECDSAP256, nil},
		{"ecdsa-p384 is accepted", "ecdsa-p384", KeyTypeECDSAP384, nil},
		{"rsa-2048 is accepted", "rsa-2048", KeyTypeRSA2048, nil},
		{"rsa-3072 is accepted", "rsa-3072", KeyTypeRSA3072, nil},
		{"rsa-4096 is accepted", "rsa-4096", KeyTypeRSA4096, nil},
		{"an upper-case spelling is refused", "RSA-2048", "", ErrUnknownKeyType},
		{"ed25519 is refused", "ed25519", "", ErrUnknownKeyType},
		{"rsa-1024 is refused", "rsa-1024", "", ErrUnknownKeyType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseKeyType(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseKeyType(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("ParseKeyType(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseKeyTypeErrorListsTheChoices(t *testing.T) {
	t.Parallel()
	_, err := ParseKeyType("dsa")
	for _, k := range KeyTypes() {
		if !strings.Contains(err.Error(), string(k)) {
			t.Errorf("error %q does not list %s", err, k)
		}
	}
}

func TestKeyTypeAlgorithm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		kt   KeyType
		want x509.PublicKeyAlgorithm
	}{
		{"P-256 is ECDSA", KeyTypeECDSAP256, x509.ECDSA},
		{"P-384 is ECDSA", KeyTypeECDSAP384, x509.ECDSA},
		{"RSA-2048 is RSA", KeyTypeRSA2048, x509.RSA},
		{"RSA-3072 is RSA", KeyTypeRSA3072, x509.RSA},
		{"RSA-4096 is RSA", KeyTypeRSA4096, x509.RSA},
		{"an unknown type has no algorithm", KeyType("x"), x509.UnknownPublicKeyAlgorithm},
	}
	for _, tt := range tests {
		if got := tt.kt.Algorithm(); got != tt.want {
			t.Errorf("%s: Algorithm() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestGenerateKeyRoundTripsThroughKeyTypeOf(t *testing.T) {
	t.Parallel()
	// RSA-4096 is left to TestCreateMakesARootCAForEveryKeyType: its key
	// generation is slow enough to dominate the package's test time.
	for _, kt := range []KeyType{KeyTypeECDSAP256, KeyTypeECDSAP384, KeyTypeRSA2048, KeyTypeRSA3072} {
		t.Run(string(kt), func(t *testing.T) {
			t.Parallel()
			key, err := kt.GenerateKey(nil)
			if err != nil {
				t.Fatalf("GenerateKey: %v", err)
			}
			got, err := KeyTypeOf(key.Public())
			if err != nil || got != kt {
				t.Fatalf("KeyTypeOf(generated %s) = %q, %v", kt, got, err)
			}
		})
	}
}

func TestGenerateKeyRefusesAnUnknownType(t *testing.T) {
	t.Parallel()
	if _, err := KeyType("dsa-1024").GenerateKey(nil); !errors.Is(err, ErrUnknownKeyType) {
		t.Fatalf("GenerateKey error = %v, want ErrUnknownKeyType", err)
	}
}

func TestKeyTypeOfRefusesKeysThatAreNotOffered(t *testing.T) {
	t.Parallel()
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pub  any
	}{
		{"a P-521 key is refused", &p521.PublicKey},
		{"an RSA-1024 key is refused", &rsa1024.PublicKey},
		{"an Ed25519 key is refused", edPub},
		{"a nil key is refused", nil},
	}
	for _, tt := range tests {
		if _, err := KeyTypeOf(tt.pub); !errors.Is(err, ErrUnsupportedKey) {
			t.Errorf("%s: error = %v, want ErrUnsupportedKey", tt.name, err)
		}
	}
}
