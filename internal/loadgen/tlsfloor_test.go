package loadgen

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"testing"
	"time"
)

// BenchmarkTLSHandshake is the floor under bench enroll --fresh-connections:
// full TLS 1.3 handshakes on loopback, client and server in this process,
// with a P-256 serving certificate under a P-256 CA, as flinkpki serves. No
// enrollment happens: whatever a fresh-connection enrollment costs on top
// of this is the server's and the client's own work. "default" is what Go
// negotiates (the X25519MLKEM768 post-quantum hybrid), which flinkpki keeps.
func BenchmarkTLSHandshake(b *testing.B) {
	serverConf, roots := handshakeFixture(b)
	for _, c := range []struct {
		name   string
		curves []tls.CurveID
	}{
		{"default", nil},
		{"x25519", []tls.CurveID{tls.X25519}},
		{"p256", []tls.CurveID{tls.CurveP256}},
	} {
		b.Run(c.name, func(b *testing.B) {
			ln, err := tls.Listen("tcp", "127.0.0.1:0", serverConf)
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					conn, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						defer conn.Close()
						if conn.(*tls.Conn).Handshake() == nil {
							_, _ = conn.Write([]byte{1})
						}
					}()
				}
			}()
			conf := &tls.Config{RootCAs: roots, ServerName: "localhost", CurvePreferences: c.curves}
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 1)
				for pb.Next() {
					conn, err := tls.Dial("tcp", ln.Addr().String(), conf)
					if err != nil {
						b.Error(err)
						return
					}
					if _, err := io.ReadFull(conn, buf); err != nil {
						b.Error(err)
					}
					conn.Close()
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
		})
	}
}

func handshakeFixture(b *testing.B) (*tls.Config, *x509.CertPool) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		b.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, leafKey.Public(), caKey)
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}, MinVersion: tls.VersionTLS12}, roots
}
