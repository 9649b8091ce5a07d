package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"testing"
	"time"
)

// TestTheServingCertificateIsRenewedBeforeItExpires: a server that runs
// longer than its certificate's validity must keep serving. The
// certificate is kept until two thirds of its validity have passed, then
// replaced, and handshakes get the new one at once; a failed renewal keeps
// the old one for the next try.
func TestTheServingCertificateIsRenewedBeforeItExpires(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	issue := func(now time.Time) (*tls.Certificate, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{SerialNumber: randomSerial(), Subject: pkix.Name{CommonName: "flinkpki server"},
			NotBefore: now, NotAfter: now.Add(servingCertValidity), DNSNames: []string{"localhost"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			return nil, err
		}
		leaf, err := x509.ParseCertificate(der)
		return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, err
	}
	var fail error
	renewals := 0
	first, err := issue(t0)
	if err != nil {
		t.Fatal(err)
	}
	s := newServingCert(first, nil, func(now time.Time) (*tls.Certificate, *x509.Certificate, error) {
		if fail != nil {
			return nil, nil, fail
		}
		renewals++
		c, err := issue(now)
		return c, nil, err
	}, nil, nil)
	serving := func() *x509.Certificate {
		c, err := s.get(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf
	}
	third := servingCertValidity / 3
	if renewed, err := s.renewIfDue(t0.Add(2*third - time.Hour)); renewed || err != nil || serving() != first.Leaf {
		t.Fatalf("renewed %v (%v) before two thirds of the validity", renewed, err)
	}
	fail = errors.New("store unavailable")
	if renewed, err := s.renewIfDue(t0.Add(2 * third)); renewed || err == nil || serving() != first.Leaf {
		t.Fatalf("a failed renewal: renewed %v, err %v; the old certificate must stay", renewed, err)
	}
	fail = nil
	due := t0.Add(2*third + time.Hour)
	if renewed, err := s.renewIfDue(due); !renewed || err != nil {
		t.Fatalf("due for renewal: renewed %v, err %v", renewed, err)
	}
	if got := serving(); got == first.Leaf || !got.NotAfter.Equal(due.Add(servingCertValidity)) || renewals != 1 {
		t.Fatalf("after the renewal handshakes get the certificate valid until %v (%d renewals)", got.NotAfter, renewals)
	}
	if renewed, _ := s.renewIfDue(due.Add(time.Hour)); renewed {
		t.Error("the new certificate was renewed again at once")
	}
}
