package authoritytest

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/ca"
)

// Creds is what one holder process has after enrolling: its key, its chain
// and its truststore, as Go TLS configurations that verify peers at the
// fake clock's time. Flink does not check host names, so neither side does.
type Creds struct {
	Holder  string
	Key     crypto.Signer
	Chain   []*x509.Certificate
	Trusted []*x509.Certificate

	now    func() time.Time
	once   sync.Once
	server *tls.Config
	client *tls.Config
}

// NewCreds wraps issued credentials; now is the clock peers are verified at.
func NewCreds(key crypto.Signer, iss *authority.Issued, now func() time.Time) *Creds {
	return &Creds{Holder: iss.Holder, Key: key, Chain: iss.Chain, Trusted: iss.Trusted, now: now}
}

// Leaf is the holder's own certificate.
func (c *Creds) Leaf() *x509.Certificate { return c.Chain[0] }

// Issuer is the CA certificate that signed the leaf.
func (c *Creds) Issuer() *x509.Certificate { return c.Chain[len(c.Chain)-1] }

func (c *Creds) configs() (server, client *tls.Config) {
	c.once.Do(func() {
		pool := x509.NewCertPool()
		for _, t := range c.Trusted {
			pool.AddCert(t)
		}
		raw := make([][]byte, len(c.Chain))
		for i, cert := range c.Chain {
			raw[i] = cert.Raw
		}
		cert := tls.Certificate{Certificate: raw, PrivateKey: c.Key, Leaf: c.Leaf()}
		c.server = &tls.Config{
			Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
			Time: c.now, SessionTicketsDisabled: true, MinVersion: tls.VersionTLS12, CurvePreferences: curves,
		}
		c.client = &tls.Config{
			Certificates: []tls.Certificate{cert}, Time: c.now, MinVersion: tls.VersionTLS12, CurvePreferences: curves,
			InsecureSkipVerify: true, // replaced by VerifyConnection: no host name check, as in Flink
			VerifyConnection: func(cs tls.ConnectionState) error {
				return verifyPeer(cs.PeerCertificates, pool, c.now())
			},
		}
	})
	return c.server, c.client
}

func verifyPeer(certs []*x509.Certificate, roots *x509.CertPool, now time.Time) error {
	if len(certs) == 0 {
		return errors.New("the server sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err
}

// Handshake runs mutual TLS between a and b in both directions (a serving b,
// then b serving a) over in-memory pipes and exchanges a byte each way. It
// returns nil only when all four verifications succeeded.
func Handshake(a, b *Creds) error {
	return errors.Join(HandshakeOnce(a, b), HandshakeOnce(b, a))
}

// HandshakeOnce runs one mutual-TLS handshake with server serving client:
// each side verifies the other's chain against its own truststore.
func HandshakeOnce(server, client *Creds) error {
	// A watchdog turns a stuck handshake into a failure instead of a hung
	// test run; the I/O deadlines below should always fire first.
	done := make(chan error, 1)
	go func() { done <- handshakeOnce(server, client) }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s serving %s: handshake did not finish within 30s", server.Holder, client.Holder)
	}
}

func handshakeOnce(server, client *Creds) error {
	sconf, _ := server.configs()
	_, cconf := client.configs()
	sc, cc := net.Pipe()
	deadline := time.Now().Add(10 * time.Second) // I/O guard only; certificates are checked at the fake time
	sc.SetDeadline(deadline)
	cc.SetDeadline(deadline)
	// Closing the pipes, not the TLS connections, skips close_notify, which
	// would block on an unbuffered pipe until the peer reads it.
	errc := make(chan error, 1)
	go func() {
		defer sc.Close()
		errc <- exchange(tls.Server(sc, sconf), true)
	}()
	cerr := exchange(tls.Client(cc, cconf), false)
	cc.Close()
	serr := <-errc
	if cerr != nil || serr != nil {
		return fmt.Errorf("%s serving %s: server: %v; client: %v", server.Holder, client.Holder, serr, cerr)
	}
	return nil
}

func exchange(conn *tls.Conn, server bool) error {
	if err := conn.Handshake(); err != nil {
		return err
	}
	buf := []byte{'x'}
	if server {
		if _, err := conn.Write(buf); err != nil {
			return err
		}
		_, err := conn.Read(buf)
		return err
	}
	if _, err := conn.Read(buf); err != nil {
		return err
	}
	_, err := conn.Write(buf)
	return err
}

// NewCSR makes a key of keyType and a DER CSR for it, as init does in a pod.
func NewCSR(keyType, holder string) (crypto.Signer, []byte, error) {
	key, err := ca.KeyType(keyType).GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: holder}}, key)
	if err != nil {
		return nil, nil, err
	}
	return key, der, nil
}

// EnrollAs enrolls holder as actor with a fresh key of the cluster's key
// type and returns its credentials, or the Authority's error.
func (e *Env) EnrollAs(actor authority.Actor, cluster, role, holder string) (*Creds, error) {
	kt := string(ca.DefaultKeyType)
	if v, err := e.Authority.GetCluster(e.Ctx, cluster); err == nil {
		kt = v.Cluster.KeyType
	}
	key, csr, err := NewCSR(kt, holder)
	if err != nil {
		return nil, err
	}
	iss, err := e.Authority.Enroll(e.Ctx, actor, authority.EnrollRequest{Cluster: cluster, Role: role, Holder: holder, CSR: csr})
	if err != nil {
		return nil, err
	}
	return NewCreds(key, iss, e.Clock.Now), nil
}

// Enroll enrolls holder as Admin, failing the test on error.
func (e *Env) Enroll(cluster, role, holder string) *Creds {
	e.TB.Helper()
	c, err := e.EnrollAs(Admin, cluster, role, holder)
	if err != nil {
		e.TB.Fatalf("enroll %s %s of cluster %q: %v", role, holder, cluster, err)
	}
	return c
}

// curves skips the default post-quantum hybrid key exchange, which costs
// more than the rest of a test handshake and tests nothing of ours.
var curves = []tls.CurveID{tls.X25519, tls.CurveP256}
