package etcd_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/internal/etcdtest"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/etcd"
)

// pki writes a CA and two certificates it signed (a server one for
// 127.0.0.1, a client one) as PEM files in dir.
type pki struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func newPKI(t testing.TB, dir string) pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "etcd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalPKCS8PrivateKey(key)
		return write(name+".crt", "CERTIFICATE", der), write(name+".key", "PRIVATE KEY", kder)
	}
	p := pki{ca: write("ca.crt", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func TestMutualTLSConnectsWithTheClientCertificateOnly(t *testing.T) {
	ctx := context.Background()
	p := newPKI(t, t.TempDir())
	withCert, err := etcd.TLSConfig(p.ca, p.clientCert, p.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	root, err := etcdtest.DataRoot()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: withCert}}
	c, err := etcdtest.StartTLS(1, root, []string{
		"--cert-file", p.serverCert, "--key-file", p.serverKey,
		"--trusted-ca-file", p.ca, "--client-cert-auth",
	}, hc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)

	b, err := etcd.Open(ctx, etcd.Config{Endpoints: c.Endpoints(), TLS: withCert})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := mustOpenStore(t, b, newKEK(t))
	if err := s.Update(ctx, func(tx *store.Txn) error { return tx.PutCluster(&store.Cluster{Name: "orders"}) }); err != nil {
		t.Fatalf("write over mutual TLS: %v", err)
	}

	withoutCert, err := etcd.TLSConfig(p.ca, "", "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		tls  *tls.Config
	}{
		{"a client without a certificate is refused", withoutCert},
		{"a client that speaks plain text is refused", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := etcd.Open(ctx, etcd.Config{Endpoints: c.Endpoints(), TLS: tc.tls, OpTimeout: time.Second, DialTimeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if err := b.Healthy(ctx); err == nil {
				t.Fatal("etcd answered a client it should refuse")
			}
		})
	}
}

func TestTLSConfigRefusesHalfAClientCertificate(t *testing.T) {
	p := newPKI(t, t.TempDir())
	tests := []struct {
		name             string
		ca, cert, key    string
		wantErr, wantNil bool
	}{
		{name: "no files means plain text", wantNil: true},
		{name: "a certificate without its key is refused", ca: p.ca, cert: p.clientCert, wantErr: true},
		{name: "a key without its certificate is refused", ca: p.ca, key: p.clientKey, wantErr: true},
		{name: "a missing CA file is refused", ca: p.ca + ".missing", wantErr: true},
		{name: "a CA file without a certificate is refused", ca: p.clientKey, wantErr: true},
		{name: "a CA alone verifies the server", ca: p.ca},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := etcd.TLSConfig(tc.ca, tc.cert, tc.key)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr && (cfg == nil) != tc.wantNil {
				t.Fatalf("config = %v, want nil %v", cfg, tc.wantNil)
			}
		})
	}
}
