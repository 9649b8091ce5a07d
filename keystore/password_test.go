package keystore_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/flinkpki/flinkpki/keystore"
)

func TestGeneratePasswordIsLongAlphanumericAndUnique(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		p, err := keystore.GeneratePassword(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != keystore.PasswordLength || keystore.PasswordLength < 32 {
			t.Fatalf("password %q has %d characters, want %d (at least 32)", p, len(p), keystore.PasswordLength)
		}
		if strings.Trim(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != "" {
			t.Fatalf("password %q has characters outside [A-Za-z0-9]", p)
		}
		if seen[p] {
			t.Fatalf("password %q generated twice", p)
		}
		seen[p] = true
	}
}

// TestGeneratePasswordRejectsBiasedBytes feeds bytes 248..255, which a
// modulo mapping would fold onto the first symbols; they must be skipped.
func TestGeneratePasswordRejectsBiasedBytes(t *testing.T) {
	src := bytes.Repeat([]byte{255, 248, 0, 61 + 62}, 100)
	p, err := keystore.GeneratePassword(bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Repeat("A9", keystore.PasswordLength/2); p != want {
		t.Errorf("password = %q, want %q", p, want)
	}
}

func TestGeneratePasswordReportsAShortRandomSource(t *testing.T) {
	if _, err := keystore.GeneratePassword(bytes.NewReader(make([]byte, 5))); err == nil {
		t.Fatal("a random source that runs dry gave no error")
	}
}

func TestGeneratePasswordIsUniform(t *testing.T) {
	counts := map[rune]int{}
	const n = 2000
	for i := 0; i < n; i++ {
		p, err := keystore.GeneratePassword(nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p {
			counts[r]++
		}
	}
	if len(counts) != 62 {
		t.Fatalf("saw %d distinct symbols, want 62", len(counts))
	}
	want := float64(n*keystore.PasswordLength) / 62
	for r, c := range counts {
		if float64(c) < want*0.8 || float64(c) > want*1.2 {
			t.Errorf("symbol %q appeared %d times, want about %.0f", r, c, want)
		}
	}
}

// TestRandomPasswordsRoundTrip tries many random password lengths and
// characters, as cert-manager does: JKS with printable ASCII (10,000 tries;
// JKS is cheap), PKCS#12 with any BMP character (fewer; PBKDF2 is not).
func TestRandomPasswordsRoundTrip(t *testing.T) {
	m := newMaterial(t, "ecdsa-p256")
	rng := rand.New(rand.NewPCG(1, 2))
	t.Run("JKS with printable ASCII", func(t *testing.T) {
		for i := 0; i < 10000; i++ {
			ks := m.keyStore("")
			ks.StorePassword = randomPassword(rng, 1+rng.IntN(128), 0x20, 0x7e)
			ks.KeyPassword = randomPassword(rng, 1+rng.IntN(128), 0x20, 0x7e)
			data := mustEncodeKeyStore(t, keystore.JKS, ks)
			got, err := keystore.DecodeKeyStore(keystore.JKS, data, ks.StorePassword, ks.KeyPassword)
			if err != nil {
				t.Fatalf("passwords %q/%q: %v", ks.StorePassword, ks.KeyPassword, err)
			}
			if got.Alias != "flink" {
				t.Fatalf("alias = %q", got.Alias)
			}
		}
	})
	t.Run("PKCS#12 with BMP characters", func(t *testing.T) {
		for i := 0; i < 60; i++ {
			ks := m.keyStore(keystore.Profiles[i%2])
			ks.StorePassword = randomPassword(rng, 1+rng.IntN(128), 0x20, 0xd7ff)
			data := mustEncodeKeyStore(t, keystore.PKCS12, ks)
			got, err := keystore.DecodeKeyStore(keystore.PKCS12, data, ks.StorePassword, "")
			if err != nil {
				t.Fatalf("password %q: %v", ks.StorePassword, err)
			}
			if got.Alias != "flink" {
				t.Fatalf("alias = %q", got.Alias)
			}
		}
	})
	t.Run("PKCS#12 with a password outside the BMP is refused", func(t *testing.T) {
		ks := m.keyStore("")
		ks.StorePassword = "emoji-\U0001F600"
		if _, err := keystore.EncodeKeyStore(keystore.PKCS12, ks); !errors.Is(err, keystore.ErrPassword) {
			t.Fatalf("error = %v, want ErrPassword", err)
		}
	})
}

func randomPassword(rng *rand.Rand, n int, lo, hi rune) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteRune(lo + rune(rng.IntN(int(hi-lo+1))))
	}
	return b.String()
}
