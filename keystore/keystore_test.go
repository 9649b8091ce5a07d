package keystore_test

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/flinkpki/flinkpki/internal/jdktest"
	"github.com/flinkpki/flinkpki/keystore"
)

func TestEncodeKeyStoreRoundTrips(t *testing.T) {
	for _, kt := range jdktest.KeyTypes {
		m := newMaterial(t, kt)
		for _, c := range combos {
			t.Run(kt+"/"+c.String(), func(t *testing.T) {
				ks := m.keyStore(c.profile)
				data := mustEncodeKeyStore(t, c.format, ks)
				got, err := keystore.DecodeKeyStore(c.format, data, ks.StorePassword, "")
				if err != nil {
					t.Fatalf("DecodeKeyStore: %v", err)
				}
				if got.Alias != keystore.DefaultAlias {
					t.Errorf("alias = %q, want %q", got.Alias, keystore.DefaultAlias)
				}
				if !m.key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(publicKey(t, got.Key)) {
					t.Errorf("decoded key does not match the encoded key")
				}
				if !sameCerts(got.Chain, m.chain) {
					t.Errorf("chain = %d certificates, want leaf then CA (%d)", len(got.Chain), len(m.chain))
				}
				if c.format == keystore.JKS && !got.Created.Equal(created) {
					t.Errorf("created = %v, want %v", got.Created, created)
				}
			})
		}
	}
}

func publicKey(t testing.TB, k crypto.PrivateKey) crypto.PublicKey {
	t.Helper()
	s, ok := k.(crypto.Signer)
	if !ok {
		t.Fatalf("decoded key %T has no public key", k)
	}
	return s.Public()
}

func TestEncodeKeyStoreKeepsACustomAliasAndKeyPassword(t *testing.T) {
	m := newMaterial(t, "ecdsa-p256")
	ks := m.keyStore("")
	ks.Alias = "TaskManager-0"
	ks.KeyPassword = "a-different-key-password"
	data := mustEncodeKeyStore(t, keystore.JKS, ks)
	if _, err := keystore.DecodeKeyStore(keystore.JKS, data, ks.StorePassword, ""); !errors.Is(err, keystore.ErrIncorrectPassword) {
		t.Fatalf("decoding with the store password as key password: error = %v, want ErrIncorrectPassword", err)
	}
	got, err := keystore.DecodeKeyStore(keystore.JKS, data, ks.StorePassword, ks.KeyPassword)
	if err != nil {
		t.Fatalf("DecodeKeyStore: %v", err)
	}
	if got.Alias != ks.Alias {
		t.Errorf("alias = %q, want the case kept: %q", got.Alias, ks.Alias)
	}
}

func TestEncodeKeyStoreRefusesBadInput(t *testing.T) {
	m := newMaterial(t, "ecdsa-p256")
	other := newMaterial(t, "rsa-2048")
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		name   string
		format keystore.Format
		edit   func(*keystore.KeyStore)
		want   error
	}{
		{"an unknown format is refused", "pem", func(*keystore.KeyStore) {}, keystore.ErrUnknownFormat},
		{"an unknown profile is refused", keystore.PKCS12, func(k *keystore.KeyStore) { k.Profile = "modern2026" }, keystore.ErrUnknownProfile},
		{"an empty store password is refused", keystore.PKCS12, func(k *keystore.KeyStore) { k.StorePassword = "" }, keystore.ErrPassword},
		{"a PKCS#12 key password that differs from the store password is refused", keystore.PKCS12,
			func(k *keystore.KeyStore) { k.KeyPassword = "something-else" }, keystore.ErrPassword},
		{"a non-ASCII JKS store password is refused", keystore.JKS, func(k *keystore.KeyStore) { k.StorePassword = "pässword" }, keystore.ErrPassword},
		{"a non-ASCII JKS key password is refused", keystore.JKS, func(k *keystore.KeyStore) { k.KeyPassword = "clé-secrète" }, keystore.ErrPassword},
		{"a missing key is refused", keystore.JKS, func(k *keystore.KeyStore) { k.Key = nil }, keystore.ErrInvalidKey},
		{"a key of another certificate is refused", keystore.PKCS12, func(k *keystore.KeyStore) { k.Key = other.key }, keystore.ErrInvalidKey},
		{"an Ed25519 key is refused", keystore.JKS, func(k *keystore.KeyStore) { k.Key = edKey }, keystore.ErrInvalidKey},
		{"an empty chain is refused", keystore.JKS, func(k *keystore.KeyStore) { k.Chain = nil }, keystore.ErrInvalidChain},
		{"a chain with the CA first is refused", keystore.PKCS12,
			func(k *keystore.KeyStore) { k.Chain = []*x509.Certificate{m.chain[1], m.chain[0]} }, keystore.ErrInvalidChain},
		{"a chain with a foreign CA is refused", keystore.JKS,
			func(k *keystore.KeyStore) { k.Chain = []*x509.Certificate{m.chain[0], other.cas[0], m.chain[1]} }, keystore.ErrInvalidChain},
		{"an alias with a space is refused", keystore.JKS, func(k *keystore.KeyStore) { k.Alias = "my key" }, keystore.ErrInvalidAlias},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks := m.keyStore("")
			tt.edit(&ks)
			data, err := keystore.EncodeKeyStore(tt.format, ks)
			if !errors.Is(err, tt.want) {
				t.Fatalf("EncodeKeyStore error = %v, want %v", err, tt.want)
			}
			if data != nil {
				t.Errorf("EncodeKeyStore returned %d bytes with an error", len(data))
			}
		})
	}
}

func TestJKSEncodingIsDeterministic(t *testing.T) {
	m := newMaterial(t, "ecdsa-p384")
	a := mustEncodeKeyStore(t, keystore.JKS, m.keyStore(""))
	b := mustEncodeKeyStore(t, keystore.JKS, m.keyStore(""))
	if !bytes.Equal(a, b) {
		t.Errorf("two JKS keystore encodings of the same input differ")
	}
	later := m.keyStore("")
	later.Created = created.Add(1e6)
	if bytes.Equal(a, mustEncodeKeyStore(t, keystore.JKS, later)) {
		t.Errorf("a different creation time gave the same JKS bytes")
	}
	ta := mustEncodeTrustStore(t, keystore.JKS, m.trustStore(""))
	tb := mustEncodeTrustStore(t, keystore.JKS, m.trustStore(""))
	if !bytes.Equal(ta, tb) {
		t.Errorf("two JKS truststore encodings of the same input differ")
	}
}

func TestPKCS12EncodingsDifferInBytesButNotInContent(t *testing.T) {
	m := newMaterial(t, "ecdsa-p256")
	ks := m.keyStore(keystore.Modern2023)
	a := mustEncodeKeyStore(t, keystore.PKCS12, ks)
	b := mustEncodeKeyStore(t, keystore.PKCS12, ks)
	if bytes.Equal(a, b) {
		t.Fatalf("two PKCS#12 encodings are identical; salts should be random")
	}
	da, errA := keystore.DecodeKeyStore(keystore.PKCS12, a, ks.StorePassword, "")
	db, errB := keystore.DecodeKeyStore(keystore.PKCS12, b, ks.StorePassword, "")
	if errA != nil || errB != nil {
		t.Fatalf("decode: %v, %v", errA, errB)
	}
	if da.Alias != db.Alias || !sameCerts(da.Chain, db.Chain) {
		t.Errorf("decoded PKCS#12 keystores differ in content")
	}
}

func TestTrustStoreRoundTrips(t *testing.T) {
	m := newMaterial(t, "ecdsa-p256")
	for _, c := range combos {
		t.Run(c.String(), func(t *testing.T) {
			ts := m.trustStore(c.profile)
			ts.CAs = append(ts.CAs, m.cas[0]) // a duplicate is written once
			data := mustEncodeTrustStore(t, c.format, ts)
			got, err := keystore.DecodeTrustStore(c.format, data, ts.Password)
			if err != nil {
				t.Fatalf("DecodeTrustStore: %v", err)
			}
			if len(got) != len(m.cas) {
				t.Fatalf("truststore holds %d certificates, want %d", len(got), len(m.cas))
			}
			for _, want := range m.cas {
				if !containsCert(got, want) {
					t.Errorf("truststore lacks CA %s", keystore.TrustAlias(want))
				}
			}
		})
	}
}

func containsCert(certs []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range certs {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

func TestEncodeTrustStoreRefusesBadInput(t *testing.T) {
	m := newMaterial(t, "ecdsa-p256")
	tests := []struct {
		name   string
		format keystore.Format
		edit   func(*keystore.TrustStore)
		want   error
	}{
		{"an empty truststore is refused", keystore.PKCS12, func(ts *keystore.TrustStore) { ts.CAs = nil }, keystore.ErrNoCertificates},
		{"a nil CA is refused", keystore.JKS, func(ts *keystore.TrustStore) { ts.CAs = []*x509.Certificate{nil} }, keystore.ErrInvalidChain},
		{"an empty password is refused", keystore.JKS, func(ts *keystore.TrustStore) { ts.Password = "" }, keystore.ErrPassword},
		{"a non-ASCII JKS password is refused", keystore.JKS, func(ts *keystore.TrustStore) { ts.Password = "ünicode" }, keystore.ErrPassword},
		{"an unknown profile is refused", keystore.PKCS12, func(ts *keystore.TrustStore) { ts.Profile = "rc2" }, keystore.ErrUnknownProfile},
		{"an unknown format is refused", "bks", func(*keystore.TrustStore) {}, keystore.ErrUnknownFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := m.trustStore("")
			tt.edit(&ts)
			if _, err := keystore.EncodeTrustStore(tt.format, ts); !errors.Is(err, tt.want) {
				t.Fatalf("EncodeTrustStore error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDecodeRefusesWrongPasswordsAndWrongStores(t *testing.T) {
	m := newMaterial(t, "ecdsa-p256")
	jksKS := mustEncodeKeyStore(t, keystore.JKS, m.keyStore(""))
	p12KS := mustEncodeKeyStore(t, keystore.PKCS12, m.keyStore(""))
	jksTS := mustEncodeTrustStore(t, keystore.JKS, m.trustStore(""))
	p12TS := mustEncodeTrustStore(t, keystore.PKCS12, m.trustStore(""))
	pw := m.keyStore("").StorePassword
	tpw := m.trustStore("").Password
	tests := []struct {
		name   string
		decode func() error
		want   error
	}{
		{"a JKS keystore with a wrong password", func() error { _, err := keystore.DecodeKeyStore(keystore.JKS, jksKS, "wrong", ""); return err }, keystore.ErrIncorrectPassword},
		{"a PKCS#12 keystore with a wrong password", func() error { _, err := keystore.DecodeKeyStore(keystore.PKCS12, p12KS, "wrong", ""); return err }, keystore.ErrIncorrectPassword},
		{"a JKS truststore with a wrong password", func() error { _, err := keystore.DecodeTrustStore(keystore.JKS, jksTS, "wrong"); return err }, keystore.ErrIncorrectPassword},
		{"a PKCS#12 truststore with a wrong password", func() error { _, err := keystore.DecodeTrustStore(keystore.PKCS12, p12TS, "wrong"); return err }, keystore.ErrIncorrectPassword},
		{"a JKS truststore read as a keystore", func() error { _, err := keystore.DecodeKeyStore(keystore.JKS, jksTS, tpw, ""); return err }, keystore.ErrMalformed},
		{"a JKS keystore read as a truststore", func() error { _, err := keystore.DecodeTrustStore(keystore.JKS, jksKS, pw); return err }, keystore.ErrMalformed},
		{"a PKCS#12 keystore read as a truststore", func() error { _, err := keystore.DecodeTrustStore(keystore.PKCS12, p12KS, pw); return err }, keystore.ErrMalformed},
		{"a PKCS#12 file read as JKS", func() error { _, err := keystore.DecodeKeyStore(keystore.JKS, p12KS, pw, ""); return err }, keystore.ErrMalformed},
		{"a truncated JKS file", func() error {
			_, err := keystore.DecodeKeyStore(keystore.JKS, jksKS[:len(jksKS)-30], pw, "")
			return err
		}, keystore.ErrMalformed},
		{"a truncated PKCS#12 file", func() error {
			_, err := keystore.DecodeKeyStore(keystore.PKCS12, p12KS[:len(p12KS)/2], pw, "")
			return err
		}, keystore.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			if err := tt.decode(); !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
		})
	}
}
