package ca

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"
)

// Config carries the clock and the randomness used when creating CAs and
// issuing leaves (issuer.Config is this type). The zero value is ready to
// use: a nil Now means time.Now and a nil Rand means crypto/rand.Reader.
// Tests pass a fixed clock instead of patching globals.
type Config struct {
	// Now returns the current time.
	Now func() time.Time
	// Rand is the source of serial numbers.
	Rand io.Reader
}

// Time is Now(), or the wall clock when Now is nil.
func (c Config) Time() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

// Reader is Rand, or crypto/rand.Reader when Rand is nil.
func (c Config) Reader() io.Reader {
	if c.Rand == nil {
		return rand.Reader
	}
	return c.Rand
}

// serialLimit is 2^128: serials carry 128 bits of randomness, more than the
// 64 bits the CA/Browser Forum asks for and within RFC 5280's 20 octets.
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

// NewSerial returns a random positive serial number of up to 128 bits.
func NewSerial(r io.Reader) (*big.Int, error) {
	if r == nil {
		r = rand.Reader
	}
	// A zero draw has probability 2^-128; retrying a few times only guards
	// against a broken source that keeps returning zeros.
	for range 4 {
		n, err := rand.Int(r, serialLimit)
		if err != nil {
			return nil, fmt.Errorf("generate certificate serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
	return nil, errors.New("generate certificate serial: the random source returned only zeros")
}
