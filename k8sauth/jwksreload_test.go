package k8sauth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flinkpki/flinkpki/k8sauth/k8stest"
)

// kubeletVolume lays out a ConfigMap volume as the kubelet does: the file
// is a symlink through ..data to a timestamped directory, and an update
// writes a new directory and swaps ..data in one rename.
type kubeletVolume struct {
	dir string
	n   int
}

func (kv *kubeletVolume) publish(t *testing.T, content []byte) {
	t.Helper()
	kv.n++
	ts := filepath.Join(kv.dir, "..2026_03_01_12_00_0"+string(rune('0'+kv.n)))
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts, "jwks.json"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(kv.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(kv.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if kv.n == 1 {
		if err := os.Symlink("..data/jwks.json", filepath.Join(kv.dir, "jwks.json")); err != nil {
			t.Fatal(err)
		}
	}
}

// TestJWKSFileIsReadAgainWhenItChanges: the cluster's signing key rotates,
// and the JWKS ConfigMap is updated in place: a token of the new key is
// refused until the file holds it, then accepted without a new Verifier;
// content that does not parse keeps the keys the verifier had.
func TestJWKSFileIsReadAgainWhenItChanges(t *testing.T) {
	old := k8stest.NewECIssuer(t, testIssuer)
	next := k8stest.NewIssuer(t, testIssuer)
	stranger := k8stest.NewECIssuer(t, testIssuer)
	kv := &kubeletVolume{dir: t.TempDir()}
	kv.publish(t, old.JWKS())
	path := filepath.Join(kv.dir, "jwks.json")
	v := newVerifier(t, old.JWKS(), func(c *Config) { c.JWKSFile = path })
	ctx := context.Background()

	_, err := v.Verify(ctx, next.Mint(validClaims()))
	if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), "read again whenever it changes") || strings.Contains(err.Error(), kv.dir) {
		t.Fatalf("a token of a key the file lacks: err = %v, want ErrUnknownKey saying the file is read again, without its path", err)
	}

	kv.publish(t, k8stest.JWKS(t, old, next))
	for _, iss := range []*k8stest.Issuer{next, old} {
		if _, err := v.Verify(ctx, iss.Mint(validClaims())); err != nil {
			t.Fatalf("after the file gained the new key, a token of key %s: %v", iss.KeyID(), err)
		}
	}

	kv.publish(t, []byte(`{"keys": [`))
	_, err = v.Verify(ctx, stranger.Mint(validClaims()))
	if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), "latest content was not taken") {
		t.Fatalf("a broken file: err = %v, want ErrUnknownKey saying the content was not taken", err)
	}
	for _, iss := range []*k8stest.Issuer{next, old} {
		if _, err := v.Verify(ctx, iss.Mint(validClaims())); err != nil {
			t.Fatalf("a broken file dropped key %s: %v", iss.KeyID(), err)
		}
	}

	kv.publish(t, next.JWKS())
	if _, err := v.Verify(ctx, stranger.Mint(validClaims())); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("a key in no version of the file: err = %v, want ErrUnknownKey", err)
	}
	if _, err := v.Verify(ctx, old.Mint(validClaims())); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("the retired key, after the file dropped it: err = %v, want ErrUnknownKey", err)
	}
}

// TestJWKSWithoutFileKeepsItsKeys: a Verifier made from bytes alone never
// reads anything.
func TestJWKSWithoutFileKeepsItsKeys(t *testing.T) {
	old := k8stest.NewECIssuer(t, testIssuer)
	next := k8stest.NewECIssuer(t, testIssuer)
	v := newVerifier(t, old.JWKS())
	_, err := v.Verify(context.Background(), next.Mint(validClaims()))
	if !errors.Is(err, ErrUnknownKey) || strings.Contains(err.Error(), "read again") {
		t.Fatalf("err = %v, want ErrUnknownKey that names no file", err)
	}
}

// TestAKeyDroppedFromTheJWKSFileIsRefusedAtOnce: after a signing key's
// compromise the operator drops it from the ConfigMap in place; a token of
// that key (whose kid the verifier knows, so no unknown key prompts a
// reading) is refused from the next token on, not after a restart.
func TestAKeyDroppedFromTheJWKSFileIsRefusedAtOnce(t *testing.T) {
	compromised := k8stest.NewECIssuer(t, testIssuer)
	next := k8stest.NewECIssuer(t, testIssuer)
	kv := &kubeletVolume{dir: t.TempDir()}
	kv.publish(t, k8stest.JWKS(t, compromised, next))
	path := filepath.Join(kv.dir, "jwks.json")
	v := newVerifier(t, k8stest.JWKS(t, compromised, next), func(c *Config) { c.JWKSFile = path })
	ctx := context.Background()
	if _, err := v.Verify(ctx, compromised.Mint(validClaims())); err != nil {
		t.Fatalf("a token of a key in the file: %v", err)
	}
	kv.publish(t, next.JWKS())
	if _, err := v.Verify(ctx, compromised.Mint(validClaims())); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("a token of the key dropped from the file: err = %v, want ErrUnknownKey", err)
	}
	if _, err := v.Verify(ctx, next.Mint(validClaims())); err != nil {
		t.Fatalf("a token of the key left in the file: %v", err)
	}
}
