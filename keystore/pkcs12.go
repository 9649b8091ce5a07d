package keystore

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

func pkcs12Encoder(p Profile, r io.Reader) (*pkcs12.Encoder, error) {
	var enc *pkcs12.Encoder
	switch p {
	case "", Modern2023:
		enc = pkcs12.Modern2023
	case LegacyDES:
		enc = pkcs12.LegacyDES
	default:
		return nil, fmt.Errorf("%w %q: use %s or %s", ErrUnknownProfile, string(p), Modern2023, LegacyDES)
	}
	if r != nil {
		enc = enc.WithRand(r)
	}
	return enc, nil
}

func encodePKCS12KeyStore(ks KeyStore) ([]byte, error) {
	enc, err := pkcs12Encoder(ks.Profile, ks.Rand)
	if err != nil {
		return nil, err
	}
	pfx, err := enc.Encode(ks.Key, ks.Chain[0], ks.Chain[1:], ks.StorePassword)
	if err != nil {
		return nil, fmt.Errorf("encode PKCS#12 keystore: %w", err)
	}
	// go-pkcs12 cannot name the key entry; without a friendlyName the JDK
	// calls it "1". Add the alias and recompute the MAC.
	pfx, err = setPKCS12KeyAlias(pfx, ks.Alias, ks.StorePassword)
	if err != nil {
		return nil, fmt.Errorf("encode PKCS#12 keystore: %w", err)
	}
	return pfx, nil
}

func encodePKCS12TrustStore(entries []trustEntry, ts TrustStore) ([]byte, error) {
	enc, err := pkcs12Encoder(ts.Profile, ts.Rand)
	if err != nil {
		return nil, err
	}
	named := make([]pkcs12.TrustStoreEntry, len(entries))
	for i, e := range entries {
		named[i] = pkcs12.TrustStoreEntry{Cert: e.cert, FriendlyName: e.alias}
	}
	// EncodeTrustStoreEntries writes the Java trusted-cert attribute
	// (2.16.840.1.113894.746875.1.1); without it the JDK sees no entries.
	pfx, err := enc.EncodeTrustStoreEntries(named, ts.Password)
	if err != nil {
		return nil, fmt.Errorf("encode PKCS#12 truststore: %w", err)
	}
	return pfx, nil
}

func pkcs12Error(what string, err error) error {
	if errors.Is(err, pkcs12.ErrIncorrectPassword) {
		return fmt.Errorf("%w: open PKCS#12 %s: %v", ErrIncorrectPassword, what, err)
	}
	return fmt.Errorf("%w: PKCS#12 %s: %v", ErrMalformed, what, err)
}

func decodePKCS12KeyStore(data []byte, password string) (*KeyStore, error) {
	if err := checkPKCS12Cost(data); err != nil {
		return nil, err
	}
	key, leaf, cas, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		return nil, pkcs12Error("keystore", err)
	}
	alias, err := pkcs12KeyAlias(data)
	if err != nil {
		return nil, err
	}
	return &KeyStore{
		Alias:         alias,
		Key:           key,
		Chain:         append([]*x509.Certificate{leaf}, cas...),
		StorePassword: password,
		KeyPassword:   password,
	}, nil
}

func decodePKCS12TrustStore(data []byte, password string) ([]*x509.Certificate, error) {
	if err := checkPKCS12Cost(data); err != nil {
		return nil, err
	}
	certs, err := pkcs12.DecodeTrustStore(data, password)
	if err != nil {
		return nil, pkcs12Error("truststore", err)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: PKCS#12 truststore is empty", ErrNoCertificates)
	}
	return certs, nil
}
