package main

import (
	"bytes"
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
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/flinkpki/flinkpki/ca"
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
	// servingCertCheck is how often the serving certificate's age, and
	// which serving CA the store has active, are checked (one small read,
	// which also brings server-ca.crt up to date); it is renewed with a
	// third of its validity (four months) to go, or at once when another
	// serving CA was activated.
	servingCertCheck = 5 * time.Minute
)

// serverIdentity loads the serving CAs from the store, creating the first
// on first start, writes their certificates to dataDir/server-ca.crt for
// clients (writeTrustBundle), and makes a fresh serving certificate for
// this process, signed by the active serving CA, which it returns too. The
// serving key lives in memory only. P-256 keeps handshakes cheap for init
// containers.
func serverIdentity(ctx context.Context, st *store.Store, dataDir string, sans []string, now time.Time) (*tls.Certificate, *x509.Certificate, error) {
	cas, err := loadServingCAs(ctx, st, now)
	if err != nil {
		return nil, nil, err
	}
	if err := writeTrustBundle(dataDir, cas.bundle); err != nil {
		return nil, nil, err
	}
	cert, err := newServingLeaf(cas.active, cas.key, sans, now)
	if err != nil {
		return nil, nil, err
	}
	return cert, cas.active, nil
}

// viewServingCAs reads the serving CAs in a transaction of its own.
func viewServingCAs(ctx context.Context, st *store.Store) (*servingCAs, error) {
	var cas *servingCAs
	err := st.View(ctx, func(tx *store.Txn) (err error) {
		cas, err = readServingCAs(tx)
		return err
	})
	return cas, err
}

// servingCAs is what the store holds of the server's serving CAs.
type servingCAs struct {
	active *x509.Certificate // signs the serving certificates
	key    crypto.Signer     // active's key
	// all are the records of every slot that holds one, in
	// store.ServingSlots' order, with their certificates.
	all   []*store.CA
	certs []*x509.Certificate
	// bundle is every serving CA's certificate in PEM, active first: what
	// clients trust as server-ca.crt.
	bundle []byte
}

// readServingCAs reads the serving CAs; store.ErrNotFound when the store
// has no active one yet.
func readServingCAs(tx *store.Txn) (*servingCAs, error) {
	cas := &servingCAs{}
	for _, slot := range store.ServingSlots {
		rec, err := tx.ServingCA(slot)
		if errors.Is(err, store.ErrNotFound) {
			if slot == store.ServingActive {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("serving CA (%s): %w", slot, err)
		}
		cert, err := x509.ParseCertificate(rec.CertDER)
		if err != nil {
			return nil, fmt.Errorf("serving CA certificate (%s): %w", slot, err)
		}
		if slot == store.ServingActive {
			if rec.Key == nil {
				return nil, fmt.Errorf("%w: the active serving CA %s has no key", store.ErrCorrupt, rec.ID)
			}
			caKeyAny, err := x509.ParsePKCS8PrivateKey(rec.Key)
			if err != nil {
				return nil, fmt.Errorf("serving CA key: %w", err)
			}
			key, ok := caKeyAny.(crypto.Signer)
			if !ok {
				return nil, errors.New("serving CA key cannot sign")
			}
			cas.active, cas.key = cert, key
		}
		cas.all, cas.certs = append(cas.all, rec), append(cas.certs, cert)
		cas.bundle = append(cas.bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})...)
	}
	return cas, nil
}

// loadServingCAs reads the serving CAs, creating the first when the store
// has none; of two processes that start on a new store at once, the first
// to commit wins and the other uses its CA.
func loadServingCAs(ctx context.Context, st *store.Store, now time.Time) (*servingCAs, error) {
	cas, err := viewServingCAs(ctx, st)
	if errors.Is(err, store.ErrNotFound) {
		var rec *store.CA
		rec, err = newServingCA(now, 1)
		if err == nil {
			err = st.Update(ctx, func(tx *store.Txn) error {
				if _, err := tx.ServerCA(); err == nil {
					return nil // another process won the race
				}
				return tx.PutServerCA(rec)
			})
		}
		if err == nil {
			cas, err = viewServingCAs(ctx, st)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("serving CA: %w", err)
	}
	return cas, nil
}

// writeTrustBundle writes bundle to dataDir/server-ca.crt unless the file
// holds it already.
func writeTrustBundle(dataDir string, bundle []byte) error {
	path := filepath.Join(dataDir, serverCAFileName)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, bundle) {
		return nil
	}
	return atomicfile.Write(path, bundle, 0o644)
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
// background once two thirds of its validity have passed, or once another
// serving CA signs (admin serving-ca activate, on any replica): a server
// that runs longer than one certificate's validity keeps serving, and
// picks up a new serving CA at its next check. Handshakes read it through
// GetCertificate.
type servingCert struct {
	cur atomic.Pointer[tls.Certificate]
	ca  atomic.Pointer[x509.Certificate] // the serving CA that signed cur
	// load reads the store's serving CAs, once per check.
	load func() (*servingCAs, error)
	// issue makes a serving certificate from the active one of cas.
	issue func(cas *servingCAs, now time.Time) (*tls.Certificate, error)
	// publish writes the trust bundle of each check that read the store
	// (the data directory's server-ca.crt); nil: nothing to do.
	publish func(bundle []byte) error
}

func newServingCert(first *tls.Certificate, ca *x509.Certificate, load func() (*servingCAs, error), issue func(*servingCAs, time.Time) (*tls.Certificate, error), publish func([]byte) error) *servingCert {
	s := &servingCert{load: load, issue: issue, publish: publish}
	s.cur.Store(first)
	s.ca.Store(ca)
	return s
}

// servingCertOn is the serving certificate first, signed by ca, of a
// server on st: each check reads st's serving CAs, signs for sans, and
// keeps dataDir/server-ca.crt up to date.
func servingCertOn(ctx context.Context, st *store.Store, dataDir string, sans []string, first *tls.Certificate, ca *x509.Certificate) *servingCert {
	return newServingCert(first, ca, func() (*servingCAs, error) { return viewServingCAs(ctx, st) },
		func(cas *servingCAs, now time.Time) (*tls.Certificate, error) {
			return newServingLeaf(cas.active, cas.key, sans, now)
		},
		func(bundle []byte) error { return writeTrustBundle(dataDir, bundle) })
}

// get implements tls.Config.GetCertificate.
func (s *servingCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cur.Load(), nil }

// servingCheckError is a check that could not read which serving CA
// signs: nothing was due by age, and the certificate is kept.
type servingCheckError struct{ err error }

func (e *servingCheckError) Error() string {
	return "could not read which serving CA signs: " + e.err.Error()
}

func (e *servingCheckError) Unwrap() error { return e.err }

// renewIfDue reads the store's serving CAs and replaces the certificate
// when two thirds of its validity have passed at now, or when another
// serving CA signs; it reports whether it did, with the serving CAs it
// read (nil when it could not).
func (s *servingCert) renewIfDue(now time.Time) (bool, *servingCAs, error) {
	leaf := s.cur.Load().Leaf
	due := !now.Before(leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3))
	cas, err := s.load()
	switch {
	case err != nil && due:
		return false, nil, err
	case err != nil:
		return false, nil, &servingCheckError{err}
	case !due && leaf.CheckSignatureFrom(cas.active) == nil:
		return false, cas, nil
	}
	next, err := s.issue(cas, now)
	if err != nil {
		return false, cas, err
	}
	s.cur.Store(next)
	s.ca.Store(cas.active)
	return true, cas, nil
}

// run checks every interval until ctx ends; a failed renewal or check is
// logged and tried again at the next check.
func (s *servingCert) run(ctx context.Context, every time.Duration, log *slog.Logger) {
	tick.Every(ctx, log, every, func(now time.Time) { s.check(now, every, log) })
}

// check is one of run's checks at now, the next one every later.
func (s *servingCert) check(now time.Time, every time.Duration, log *slog.Logger) {
	renewed, cas, err := s.renewIfDue(now)
	var check *servingCheckError
	switch {
	case errors.As(err, &check):
		log.Warn("could not check which serving CA signs; checking again in "+formatDuration(every), "err", check.err)
	case err != nil:
		log.Error("the serving certificate was not renewed; retrying at the next check", "err", err, "not_after", s.cur.Load().Leaf.NotAfter)
	case renewed:
		log.Info("serving certificate renewed", "not_after", s.cur.Load().Leaf.NotAfter, "serving_ca", ca.Fingerprint(s.ca.Load()))
	}
	if cas != nil && s.publish != nil {
		if err := s.publish(cas.bundle); err != nil {
			log.Warn("could not bring server-ca.crt up to date with the store's serving CAs; trying again in "+formatDuration(every), "err", err)
		}
	}
}

// servingCAWarning is how long before the serving CA's expiry serve starts
// to warn at start (the serving CA is made for ten years and replaced by
// hand: admin serving-ca).
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
		log.Warn("the serving CA expires within a year: no client can verify this server after that; replace it (flinkpki admin serving-ca prepare, then activate and retire)", "not_after", ca.NotAfter)
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

// newServingCA makes a serving CA of generation gen, valid for
// servingCAValidity from now.
func newServingCA(now time.Time, gen int) (*store.CA, error) {
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
	id := "server" // the first, as since the first release
	if gen > 1 {
		id = fmt.Sprintf("server-%d", gen)
	}
	return &store.CA{ID: id, Purpose: "serving", Generation: gen, State: "active", CertDER: der, Key: keyDER, Created: now}, nil
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
