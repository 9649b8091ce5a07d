package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// KEKSize is the size of a key-encryption key: AES-256.
const KEKSize = 32

const sealVersion = 1

// Sealer encrypts CA private keys with AES-256-GCM under the
// key-encryption key. The associated data binds each ciphertext to the
// record it belongs to, so a sealed key cannot be moved to another CA.
type Sealer struct {
	aead cipher.AEAD
	id   [8]byte
	rand io.Reader
}

// ParseKEK reads a key-encryption key file's content: 32 raw bytes, or 32
// bytes written as hex or base64 text (surrounding whitespace ignored).
func ParseKEK(data []byte) ([]byte, error) {
	if len(data) == KEKSize {
		return data, nil
	}
	s := strings.TrimSpace(string(data))
	if b, err := hex.DecodeString(s); err == nil && len(b) == KEKSize {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == KEKSize {
		return b, nil
	}
	return nil, fmt.Errorf("key-encryption key must be %d random bytes (raw, hex or base64), got %d bytes: create one with '(umask 077; head -c 32 /dev/urandom > kek)'", KEKSize, len(data))
}

// NewSealer returns a Sealer for kek. r supplies nonces (crypto/rand when nil).
func NewSealer(kek []byte, r io.Reader) (*Sealer, error) {
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("key-encryption key must be %d bytes, got %d", KEKSize, len(kek))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if r == nil {
		r = rand.Reader
	}
	s := &Sealer{aead: aead, rand: r}
	sum := sha256.Sum256(append([]byte("flinkpki-kek-id/"), kek...))
	copy(s.id[:], sum[:])
	return s, nil
}

// ID identifies the key-encryption key without revealing it.
func (s *Sealer) ID() string { return hex.EncodeToString(s.id[:]) }

// Seal encrypts plaintext bound to aad.
func (s *Sealer) Seal(plaintext []byte, aad string) ([]byte, error) {
	out := make([]byte, 1+len(s.id)+s.aead.NonceSize(), 1+len(s.id)+s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	out[0] = sealVersion
	copy(out[1:], s.id[:])
	nonce := out[1+len(s.id):]
	if _, err := io.ReadFull(s.rand, nonce); err != nil {
		return nil, fmt.Errorf("read nonce: %w", err)
	}
	return s.aead.Seal(out, nonce, plaintext, []byte(aad)), nil
}

// Open decrypts a sealed value bound to aad.
func (s *Sealer) Open(sealed []byte, aad string) ([]byte, error) {
	hdr := 1 + len(s.id) + s.aead.NonceSize()
	if len(sealed) < hdr+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, fmt.Errorf("%w: sealed key has an unknown format", ErrCorrupt)
	}
	if string(sealed[1:1+len(s.id)]) != string(s.id[:]) {
		return nil, ErrWrongKEK
	}
	pt, err := s.aead.Open(nil, sealed[1+len(s.id):hdr], sealed[hdr:], []byte(aad))
	if err != nil {
		return nil, errors.Join(ErrWrongKEK, err)
	}
	return pt, nil
}
