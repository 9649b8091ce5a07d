package loadgen

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/internal/jdktest"
)

// BenchmarkTLSHandshake is the floor under bench enroll --fresh-connections:
// full TLS 1.3 handshakes on loopback, client and server in this process,
// with a P-256 serving certificate under a P-256 CA, as flinkpki serves. No
// enrollment happens: whatever a fresh-connection enrollment costs on top
// of this is the server's and the client's own work. "default" is what Go
// negotiates (the X25519MLKEM768 post-quantum hybrid), which flinkpki keeps;
// "p256mlkem" is the other hybrid Go 1.26 offers (SecP256r1MLKEM768), no
// cheaper here although plain P-256 beats plain X25519.
func BenchmarkTLSHandshake(b *testing.B) {
	serverConf, roots := handshakeFixture(b)
	for _, c := range []struct {
		name   string
		curves []tls.CurveID
	}{
		{"default", nil},
		{"x25519", []tls.CurveID{tls.X25519}},
		{"p256", []tls.CurveID{tls.CurveP256}},
		{"p256mlkem", []tls.CurveID{tls.SecP256r1MLKEM768}},
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

// handshakeFixture is a P-256 serving leaf for "localhost" under a P-256 CA.
func handshakeFixture(b *testing.B) (*tls.Config, *x509.CertPool) {
	ca := jdktest.NewCA(b, "bench CA", jdktest.NewKey(b, "ecdsa-p256"))
	key := jdktest.NewKey(b, "ecdsa-p256")
	chain := ca.Issue(b, "localhost", key)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{chain[0].Raw}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}, roots
}
