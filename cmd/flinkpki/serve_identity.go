package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/flinkpki/flinkpki/internal/atomicfile"
	"github.com/flinkpki/flinkpki/internal/tick"
	"github.com/flinkpki/flinkpki/issuer"
	"github.com/flinkpki/flinkpki/store"
)

// The server's own identity is a serving CA of its own, never a cluster CA:
// a Flink cluster's CA must sign nothing but that cluster's internal leaves.
const (
	servingCAValidity   = 10 * 365 * 24 * time.Hour
	servingCertValidity = 365 * 24 * time.Hour
	// servingCertCheck is how often the serving certificate's age is
	// checked; it is renewed with a third of its validity (four months)
	// to go.
	servingCertCheck = time.Hour
)

// serverIdentity loads the serving CA from the store, creating it on first
// start, writes its certificate to dataDir/server-ca.crt for clients, and
// makes a fresh serving certificate for this process. The serving key lives
// in memory only. P-256 keeps handshakes cheap for init containers.
func serverIdentity(ctx context.Context, st *store.Store, dataDir string, sans []string, now time.Time) (*tls.Certificate, *x509.Certificate, error) {
	caCert, caKey, err := loadServingCA(ctx, st, now)
	if err != nil {
		return nil, nil, err
	}
	caFile := filepath.Join(dataDir, "server-ca.crt")
	if err := atomicfile.Write(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}), 0o644); err != nil {
		return nil, nil, err
	}
	cert, err := newServingLeaf(caCert, caKey, sans, now)
	if err != nil {
		return nil, nil, err
	}
	return cert, caCert, nil
}

// loadServingCA reads the serving CA and its key from the store, creating
// it first when the store has none; of two processes that start on a new
// store at once, the first to commit wins and the other uses its CA.
func loadServingCA(ctx context.Context, st *store.Store, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	var rec *store.CA
	err := st.View(ctx, func(tx *store.Txn) error {
		var err error
		rec, err = tx.ServerCA()
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		rec, err = newServingCA(now)
		if err == nil {
			err = st.Update(ctx, func(tx *store.Txn) error {
				if existing, err := tx.ServerCA(); err == nil {
					rec = existing // another process won the race
					return nil
				}
				return tx.PutServerCA(rec)
			})
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("serving CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(rec.CertDER)
	if err != nil {
		return nil, nil, fmt.Errorf("serving CA certificate: %w", err)
	}
	caKeyAny, err := x509.ParsePKCS8PrivateKey(rec.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("serving CA key: %w", err)
	}
	caKey, ok := caKeyAny.(crypto.Signer)
	if !ok {
		return nil, nil, errors.New("serving CA key cannot sign")
	}
	return caCert, caKey, nil
}

// newServingLeaf makes a serving certificate for localhost, the loopback
// addresses and sans, with a new P-256 key, valid for servingCertValidity
// but never past the CA.
func newServingLeaf(caCert *x509.Certificate, caKey crypto.Signer, sans []string, now time.Time) (*tls.Certificate, error) {
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{Organization: []string{"flinkpki"}, CommonName: "flinkpki server"},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     minTime(now.Add(servingCertValidity), caCert.NotAfter),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, s := range sans {
		if ip := net.ParseIP(s); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, s)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, leafKey.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	// The leaf alone: every client holds the serving CA as its trust anchor
	// (server-ca.crt), and TLS 1.3 lets a server leave the root out. Sent
	// along, the client also parses it and checks it as an intermediate:
	// about 9% of a full handshake, client and server together (A/B).
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: leafKey, Leaf: leaf}, nil
}

// servingCert is the certificate the server presents, renewed in the
// background once two thirds of its validity have passed: a server that
// runs longer than one certificate's validity keeps serving. Handshakes
// read it through GetCertificate.
type servingCert struct {
	cur   atomic.Pointer[tls.Certificate]
	renew func(now time.Time) (*tls.Certificate, error)
}

func newServingCert(first *tls.Certificate, renew func(now time.Time) (*tls.Certificate, error)) *servingCert {
	s := &servingCert{renew: renew}
	s.cur.Store(first)
	return s
}

// get implements tls.Config.GetCertificate.
func (s *servingCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cur.Load(), nil }

// renewIfDue replaces the certificate when two thirds of its validity have
// passed at now, and reports whether it did.
func (s *servingCert) renewIfDue(now time.Time) (bool, error) {
	leaf := s.cur.Load().Leaf
	if now.Before(leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)) {
		return false, nil
	}
	next, err := s.renew(now)
	if err != nil {
		return false, err
	}
	s.cur.Store(next)
	return true, nil
}

// run checks every interval until ctx ends; a failed renewal is logged and
// tried again at the next check, with a third of the validity to go.
func (s *servingCert) run(ctx context.Context, every time.Duration, log *slog.Logger) {
	tick.Every(ctx, log, every, func(now time.Time) {
		renewed, err := s.renewIfDue(now)
		switch {
		case err != nil:
			log.Error("the serving certificate was not renewed; retrying at the next check", "err", err, "not_after", s.cur.Load().Leaf.NotAfter)
		case renewed:
			log.Info("serving certificate renewed", "not_after", s.cur.Load().Leaf.NotAfter)
		}
	})
}

// servingCAWarning is how long before the serving CA's expiry serve starts
// to warn at start (the serving CA is made for ten years and not renewed).
const servingCAWarning = 365 * 24 * time.Hour

// warnServingCAExpiry logs, at start, a serving CA that expires within a
// year or has expired: every client trusts it alone (server-ca.crt), so
// once it expires none can verify the server, and the serving certificates
// made from it expire with it.
func warnServingCAExpiry(log *slog.Logger, ca *x509.Certificate, now time.Time) {
	switch left := ca.NotAfter.Sub(now); {
	case left <= 0:
		log.Error("the serving CA has expired: no client can verify this server", "not_after", ca.NotAfter)
	case left < servingCAWarning:
		log.Warn("the serving CA expires within a year: no client can verify this server after that", "not_after", ca.NotAfter)
	}
}

// checkServingSANs refuses a --san the serving certificate must not carry.
// A name is a host name as the issuer accepts one in a leaf
// (issuer.ValidateDNSName). Wildcards are refused: the server names the hosts clients
// reach it by, and a wildcard would vouch for every other host too.
func checkServingSANs(sans []string) error {
	for _, s := range sans {
		if net.ParseIP(s) == nil && issuer.ValidateDNSName(s) != nil {
			return usagef("--san %q is neither an IP address nor a DNS host name: give labels of letters, digits and '-' (1 to 63 characters each, 253 in all), no wildcards", s)
		}
	}
	return nil
}

func newServingCA(now time.Time) (*store.CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{Organization: []string{"flinkpki"}, CommonName: "flinkpki serving CA"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(servingCAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &store.CA{ID: "server", Purpose: "serving", State: "active", CertDER: der, Key: keyDER, Created: now}, nil
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
