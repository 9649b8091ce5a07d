package store

import (
	"bytes"
	"errors"
	"testing"
)

// TestASealedKeyOpensOnlyForItsOwnRecord: a sealed CA key is bound to its
// cluster and CA ID (and the serving CA's to its own name), so one who can
// write the database but lacks the KEK cannot move a key to another CA's
// record, another cluster's, or the serving CA's; the key opens only where
// it was sealed, and a flipped bit or another KEK opens nothing.
func TestASealedKeyOpensOnlyForItsOwnRecord(t *testing.T) {
	s, err := NewSealer(bytes.Repeat([]byte{1}, KEKSize), nil)
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("a CA's PKCS#8 key")
	sealed, err := s.Seal(key, caAAD("orders", "internal-1"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Open(sealed, caAAD("orders", "internal-1")); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("the key does not open for its own record: %v", err)
	}
	for _, aad := range []string{caAAD("orders", "internal-2"), caAAD("orders", "rest-1"), caAAD("payments", "internal-1"), "server-ca"} {
		if _, err := s.Open(sealed, aad); !errors.Is(err, ErrWrongKEK) {
			t.Errorf("the key of orders/internal-1 opens as %s: %v", aad, err)
		}
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	if _, err := s.Open(flipped, caAAD("orders", "internal-1")); err == nil {
		t.Error("a sealed key with a flipped bit opens")
	}
	other, _ := NewSealer(bytes.Repeat([]byte{2}, KEKSize), nil)
	if _, err := other.Open(sealed, caAAD("orders", "internal-1")); !errors.Is(err, ErrWrongKEK) {
		t.Errorf("another KEK opens the key: %v", err)
	}
	if bytes.Contains(sealed, key) {
		t.Error("the sealed form holds the key")
	}
}
