package keystore

import (
	"crypto/rand"
	"fmt"
	"io"
	"strings"
)

// PasswordLength is the length of generated passwords: 40 characters from a
// 62-symbol alphabet give about 238 bits.
const PasswordLength = 40

const passwordAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// GeneratePassword returns a random password of PasswordLength ASCII letters
// and digits, which every store format and every Flink configuration syntax
// accepts unquoted. Bytes are drawn from r (crypto/rand when nil) and
// rejection-sampled, so every symbol is equally likely.
func GeneratePassword(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	// 62*4 = 248: bytes below 248 map onto the alphabet without bias.
	const limit = byte(len(passwordAlphabet) * 4)
	out := make([]byte, 0, PasswordLength)
	buf := make([]byte, PasswordLength+PasswordLength/4)
	for len(out) < PasswordLength {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("read randomness for a password: %w", err)
		}
		for _, b := range buf {
			if b >= limit {
				continue
			}
			out = append(out, passwordAlphabet[b%byte(len(passwordAlphabet))])
			if len(out) == PasswordLength {
				break
			}
		}
	}
	return string(out), nil
}

// CheckPassword reports whether pw is a password GeneratePassword could
// have made: PasswordLength letters and digits.
func CheckPassword(pw string) error {
	if len(pw) != PasswordLength || strings.Trim(pw, passwordAlphabet) != "" {
		return fmt.Errorf("not a generated password: want %d letters and digits", PasswordLength)
	}
	return nil
}
