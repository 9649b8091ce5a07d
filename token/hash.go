package token

import (
	"crypto/sha256"
	"crypto/subtle"
)

// hashDomain separates token-secret hashes from every other SHA-256 use, so
// a stored hash can never be confused with, say, a certificate fingerprint.
const hashDomain = "flinkpki token secret v1\x00"

// Hash returns the value to store for a token secret: SHA-256 over a
// domain-separation prefix and the secret.
//
// A plain hash is enough here, and a slow password KDF (bcrypt, argon2)
// would only cost server CPU on every request: secrets are 256 bits from
// crypto/rand, not human-chosen passwords, so there is no dictionary to
// search and brute force over 2^256 is out of reach however fast the hash.
func Hash(secret string) []byte {
	h := sha256.New()
	h.Write([]byte(hashDomain))
	h.Write([]byte(secret))
	return h.Sum(nil)
}

// Verify reports whether secret matches a hash made by Hash. The comparison
// runs in constant time so response timing reveals nothing about how much of
// a guessed secret was right.
func Verify(storedHash []byte, secret string) bool {
	return subtle.ConstantTimeCompare(storedHash, Hash(secret)) == 1
}
