package main

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
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
	rec, err := newServingCA(t0, 1)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(rec.CertDER)
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := x509.ParsePKCS8PrivateKey(rec.Key)
	if err != nil {
		t.Fatal(err)
	}
	cas := &servingCAs{active: caCert, key: caKey.(crypto.Signer)}
	issue := func(now time.Time) (*tls.Certificate, error) { return newServingLeaf(cas.active, cas.key, nil, now) }
	var fail error
	renewals := 0
	first, err := issue(t0)
	if err != nil {
		t.Fatal(err)
	}
	s := newServingCert(first, caCert, func() (*servingCAs, error) { return cas, nil }, func(_ *servingCAs, now time.Time) (*tls.Certificate, error) {
		if fail != nil {
			return nil, fail
		}
		renewals++
		return issue(now)
	}, nil)
	serving := func() *x509.Certificate {
		c, err := s.get(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf
	}
	third := servingCertValidity / 3
	if renewed, err := renewIfDue(s, t0.Add(2*third-time.Hour)); renewed || err != nil || serving() != first.Leaf {
		t.Fatalf("renewed %v (%v) before two thirds of the validity", renewed, err)
	}
	fail = errors.New("store unavailable")
	if renewed, err := renewIfDue(s, t0.Add(2*third)); renewed || err == nil || serving() != first.Leaf {
		t.Fatalf("a failed renewal: renewed %v, err %v; the old certificate must stay", renewed, err)
	}
	fail = nil
	due := t0.Add(2*third + time.Hour)
	if renewed, err := renewIfDue(s, due); !renewed || err != nil {
		t.Fatalf("due for renewal: renewed %v, err %v", renewed, err)
	}
	if got := serving(); got == first.Leaf || !got.NotAfter.Equal(due.Add(servingCertValidity)) || renewals != 1 {
		t.Fatalf("after the renewal handshakes get the certificate valid until %v (%d renewals)", got.NotAfter, renewals)
	}
	if renewed, _ := renewIfDue(s, due.Add(time.Hour)); renewed {
		t.Error("the new certificate was renewed again at once")
	}
}

// renewIfDue is s.renewIfDue without the serving CAs it read.
func renewIfDue(s *servingCert, now time.Time) (bool, error) {
	renewed, _, err := s.renewIfDue(now)
	return renewed, err
}
