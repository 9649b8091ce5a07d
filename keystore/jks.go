package keystore

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"fmt"

	jks "github.com/pavlo-v-chernykh/keystore-go/v4"
)

// jksCertType is the certificate type the JDK itself writes into JKS files.
const jksCertType = "X.509"

func newJKS(saltSource []byte) jks.KeyStore {
	opts := []jks.Option{jks.WithOrderedAliases(), jks.WithCaseExactAliases()}
	if saltSource != nil {
		opts = append(opts, jks.WithCustomRandomNumberGenerator(bytes.NewReader(saltSource)))
	}
	return jks.New(opts...)
}

// jksSalt derives the 20-byte salt of JKS's key protector from the key and
// its password instead of reading randomness, so the same input gives the
// same bytes. The salt only has to differ between keys; it is public.
func jksSalt(password string, pkcs8 []byte) []byte {
	h := sha256.New()
	h.Write([]byte("flinkpki jks key protector salt\x00"))
	h.Write([]byte(password))
	h.Write([]byte{0})
	h.Write(pkcs8)
	return h.Sum(nil)[:20]
}

func encodeJKSKeyStore(ks KeyStore) ([]byte, error) {
	pkcs8, err := marshalPKCS8(ks.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	chain := make([]jks.Certificate, len(ks.Chain))
	size := 128 + len(ks.Alias) + 2*len(pkcs8)
	for i, c := range ks.Chain {
		chain[i] = jks.Certificate{Type: jksCertType, Content: c.Raw}
		size += len(c.Raw) + 16
	}
	store := newJKS(jksSalt(ks.KeyPassword, pkcs8))
	entry := jks.PrivateKeyEntry{CreationTime: ks.Created, PrivateKey: pkcs8, CertificateChain: chain}
	if err := store.SetPrivateKeyEntry(ks.Alias, entry, []byte(ks.KeyPassword)); err != nil {
		return nil, fmt.Errorf("encode JKS key entry: %w", err)
	}
	return storeJKS(store, ks.StorePassword, size)
}

func encodeJKSTrustStore(entries []trustEntry, ts TrustStore) ([]byte, error) {
	store := newJKS(nil)
	size := 64
	for _, e := range entries {
		entry := jks.TrustedCertificateEntry{
			CreationTime: ts.Created,
			Certificate:  jks.Certificate{Type: jksCertType, Content: e.cert.Raw},
		}
		if err := store.SetTrustedCertificateEntry(e.alias, entry); err != nil {
			return nil, fmt.Errorf("encode JKS trusted entry %s: %w", e.alias, err)
		}
		size += len(e.cert.Raw) + 64
	}
	return storeJKS(store, ts.Password, size)
}

func storeJKS(store jks.KeyStore, password string, sizeHint int) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(sizeHint)
	if err := store.Store(&buf, []byte(password)); err != nil {
		return nil, fmt.Errorf("encode JKS store: %w", err)
	}
	return buf.Bytes(), nil
}

// loadJKS checks the file's structure first, because keystore-go trusts the
// length fields it reads and would allocate whatever a corrupt file claims.
func loadJKS(data []byte, password string) (jks.KeyStore, error) {
	if err := scanJKS(data); err != nil {
		return jks.KeyStore{}, err
	}
	store := newJKS(nil)
	if err := store.Load(bytes.NewReader(data), []byte(password)); err != nil {
		return jks.KeyStore{}, fmt.Errorf("%w: open JKS store: %v", ErrIncorrectPassword, err)
	}
	return store, nil
}

func decodeJKSKeyStore(data []byte, storePassword, keyPassword string) (*KeyStore, error) {
	store, err := loadJKS(data, storePassword)
	if err != nil {
		return nil, err
	}
	var alias string
	for _, a := range store.Aliases() {
		if !store.IsPrivateKeyEntry(a) {
			continue
		}
		if alias != "" {
			return nil, fmt.Errorf("%w: JKS keystore has more than one private-key entry (%s, %s)", ErrMalformed, alias, a)
		}
		alias = a
	}
	if alias == "" {
		return nil, fmt.Errorf("%w: JKS keystore has no private-key entry", ErrMalformed)
	}
	chain, err := store.GetPrivateKeyEntryCertificateChain(alias)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	certs, err := parseJKSCerts(chain)
	if err != nil {
		return nil, err
	}
	entry, err := store.GetPrivateKeyEntry(alias, []byte(keyPassword))
	if err != nil {
		return nil, fmt.Errorf("%w: decrypt key entry %s: %v", ErrIncorrectPassword, alias, err)
	}
	key, err := x509.ParsePKCS8PrivateKey(entry.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("%w: key entry %s: %v", ErrMalformed, alias, err)
	}
	return &KeyStore{
		Alias: alias, Key: key, Chain: certs,
		StorePassword: storePassword, KeyPassword: keyPassword,
		Created: entry.CreationTime,
	}, nil
}

func decodeJKSTrustStore(data []byte, password string) ([]*x509.Certificate, error) {
	store, err := loadJKS(data, password)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for _, a := range store.Aliases() {
		entry, err := store.GetTrustedCertificateEntry(a)
		if err != nil {
			return nil, fmt.Errorf("%w: JKS truststore entry %s is not a trusted certificate", ErrMalformed, a)
		}
		parsed, err := parseJKSCerts([]jks.Certificate{entry.Certificate})
		if err != nil {
			return nil, err
		}
		certs = append(certs, parsed...)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: JKS truststore is empty", ErrNoCertificates)
	}
	return certs, nil
}

func parseJKSCerts(in []jks.Certificate) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, 0, len(in))
	for i, c := range in {
		if c.Type != jksCertType && c.Type != "X509" {
			return nil, fmt.Errorf("%w: certificate %d has type %q, not X.509", ErrMalformed, i, c.Type)
		}
		cert, err := x509.ParseCertificate(c.Content)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %v", ErrMalformed, i, err)
		}
		out = append(out, cert)
	}
	return out, nil
}
