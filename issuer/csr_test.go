package issuer

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/internal/x509der"
)

func basicConstraints(tb testing.TB, isCA bool) pkix.Extension {
	tb.Helper()
	v, err := asn1.Marshal(struct {
		IsCA bool `asn1:"optional"`
	}{isCA})
	if err != nil {
		tb.Fatal(err)
	}
	return pkix.Extension{Id: x509der.OIDBasicConstraints, Critical: true, Value: v}
}

func TestCheckCSRAcceptsTheOfferedKeys(t *testing.T) {
	t.Parallel()
	for _, kt := range []ca.KeyType{ca.KeyTypeECDSAP256, ca.KeyTypeECDSAP384, ca.KeyTypeRSA2048} {
		der := newCSR(t, newKey(t, kt), &x509.CertificateRequest{
			Subject:         pkix.Name{CommonName: "tm-0"},
			DNSNames:        []string{"tm-0.orders"},
			ExtraExtensions: []pkix.Extension{basicConstraints(t, false)},
		})
		csr, err := CheckCSR(der, 0)
		if err != nil {
			t.Errorf("%s: CheckCSR refused a good CSR: %v", kt, err)
			continue
		}
		if got, _ := ca.KeyTypeOf(csr.PublicKey); got != kt {
			t.Errorf("%s: CSR key type is %s", kt, got)
		}
	}
}

func TestCheckCSRRefusals(t *testing.T) {
	t.Parallel()
	p256 := newKey(t, ca.KeyTypeECDSAP256)
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := newCSR(t, p256, nil)
	badSig := append([]byte(nil), good...)
	badSig[len(badSig)-3] ^= 0xff
	tooMany := make([]string, MaxSANs+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("h%d.orders", i)
	}
	tests := []struct {
		name    string
		der     []byte
		maxSize int
		wantErr error
	}{
		{"an empty CSR is refused", nil, 0, ErrBadCSR},
		{"a CSR over the size limit is refused", good, len(good) - 1, ErrBadCSR},
		{"garbage is refused as malformed", []byte("-----BEGIN CERTIFICATE REQUEST-----"), 0, ErrBadCSR},
		{"a CSR with a broken signature is refused", badSig, 0, ErrBadCSR},
		{"an RSA-1024 key is refused as weak", newCSR(t, rsa1024, nil), 0, ErrWeakKey},
		{"a P-224 key is refused as weak", newCSR(t, p224, nil), 0, ErrWeakKey},
		{"a P-521 key is refused as unsupported", newCSR(t, p521, nil), 0, ErrUnsupportedKey},
		{"an Ed25519 key is refused as unsupported", newCSR(t, ed, nil), 0, ErrUnsupportedKey},
		{"a CSR asking for a CA is refused", newCSR(t, p256, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{basicConstraints(t, true)}}), 0, ErrBadCSR},
		{"a CSR asking for an unknown extension is refused", newCSR(t, p256, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Value: []byte{5, 0}}}}), 0, ErrBadCSR},
		{"a CSR asking for an e-mail SAN is refused", newCSR(t, p256, &x509.CertificateRequest{EmailAddresses: []string{"a@b.c"}}), 0, ErrBadCSR},
		{"a CSR asking for a URI SAN is refused", newCSR(t, p256, &x509.CertificateRequest{URIs: []*url.URL{{Scheme: "spiffe", Host: "flinkpki", Path: "/cluster/other"}}}), 0, ErrBadCSR},
		{"a CSR asking for 17 SANs is refused", newCSR(t, p256, &x509.CertificateRequest{DNSNames: tooMany}), 0, ErrBadCSR},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := CheckCSR(tt.der, tt.maxSize)
			if !errors.Is(err, tt.wantErr) || !errors.Is(err, ErrBadCSR) {
				t.Fatalf("CheckCSR error = %v, want %v (wrapping ErrBadCSR)", err, tt.wantErr)
			}
		})
	}
}

func TestCheckPublicKeyRefusesHugeRSAKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		bits    uint
		wantErr error
	}{
		{"4096 bits are accepted", 4096, nil},
		{"4097 bits are refused", 4097, ErrUnsupportedKey},
		{"8192 bits are refused", 8192, ErrUnsupportedKey},
		{"2047 bits are refused as weak", 2047, ErrWeakKey},
		{"2048 bits are accepted", 2048, nil},
	}
	for _, tt := range tests {
		n := new(big.Int).Lsh(big.NewInt(1), tt.bits-1)
		if err := CheckPublicKey(&rsa.PublicKey{N: n, E: 65537}); !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: CheckPublicKey error = %v, want %v", tt.name, err, tt.wantErr)
		}
	}
}

func TestCheckCSRRefusesRSAExponentsOtherThan65537(t *testing.T) {
	t.Parallel()
	key := rsaKeyWithExponent(t, 2048, 3)
	_, err := CheckCSR(newCSR(t, key, nil), 0)
	if !errors.Is(err, ErrWeakKey) || !strings.Contains(err.Error(), "exponent 3") {
		t.Fatalf("CheckCSR(e=3) error = %v, want ErrWeakKey naming exponent 3", err)
	}
	n := new(big.Int).Lsh(big.NewInt(1), 2047)
	for _, e := range []int{3, 17, 65535} {
		if err := CheckPublicKey(&rsa.PublicKey{N: n, E: e}); !errors.Is(err, ErrWeakKey) {
			t.Errorf("CheckPublicKey(e=%d) error = %v, want ErrWeakKey", e, err)
		}
	}
	if err := CheckPublicKey(&rsa.PublicKey{N: n, E: 65537}); err != nil {
		t.Errorf("CheckPublicKey(e=65537) error = %v, want nil", err)
	}
	// Larger exponents are not weak, but each verification costs more.
	for _, e := range []int{65539, 1<<31 - 1} {
		if err := CheckPublicKey(&rsa.PublicKey{N: n, E: e}); !errors.Is(err, ErrUnsupportedKey) {
			t.Errorf("CheckPublicKey(e=%d) error = %v, want ErrUnsupportedKey", e, err)
		}
	}
}

// rsaKeyWithExponent makes an RSA key with public exponent e, which
// rsa.GenerateKey never does (it always uses 65537).
func rsaKeyWithExponent(t *testing.T, bits, e int) *rsa.PrivateKey {
	t.Helper()
	E := big.NewInt(int64(e))
	one := big.NewInt(1)
	prime := func() *big.Int {
		for {
			p, err := rand.Prime(rand.Reader, bits/2)
			if err != nil {
				t.Fatal(err)
			}
			if new(big.Int).GCD(nil, nil, E, new(big.Int).Sub(p, one)).Cmp(one) == 0 {
				return p
			}
		}
	}
	for {
		p, q := prime(), prime()
		n := new(big.Int).Mul(p, q)
		if p.Cmp(q) == 0 || n.BitLen() != bits {
			continue
		}
		phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
		key := &rsa.PrivateKey{
			PublicKey: rsa.PublicKey{N: n, E: e},
			D:         new(big.Int).ModInverse(E, phi),
			Primes:    []*big.Int{p, q},
		}
		if err := key.Validate(); err != nil {
			t.Fatal(err)
		}
		key.Precompute()
		return key
	}
}

func TestMatchCSR(t *testing.T) {
	t.Parallel()
	key := newKey(t, ca.KeyTypeECDSAP256)
	csr := func(dns []string, ips []net.IP) *x509.CertificateRequest {
		c, err := CheckCSR(newCSR(t, key, &x509.CertificateRequest{DNSNames: dns, IPAddresses: ips}), 0)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	reqDNS := []string{"rest.orders", "rest.orders.svc"}
	reqIPs := []net.IP{net.ParseIP("10.1.2.3")}
	tests := []struct {
		name    string
		csr     *x509.CertificateRequest
		wantErr error
	}{
		{"a CSR without names matches any request", csr(nil, nil), nil},
		{"a CSR naming a subset of the request matches", csr([]string{"rest.orders"}, []net.IP{net.ParseIP("10.1.2.3").To4()}), nil},
		{"a CSR naming a request host in upper case matches", csr([]string{"REST.orders"}, nil), nil},
		{"a CSR naming an extra host is refused", csr([]string{"evil.example"}, nil), ErrBadCSR},
		{"a CSR naming an extra IP is refused", csr(nil, []net.IP{net.ParseIP("10.9.9.9")}), ErrBadCSR},
	}
	for _, tt := range tests {
		if err := MatchCSR(tt.csr, reqDNS, reqIPs); !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: MatchCSR error = %v, want %v", tt.name, err, tt.wantErr)
		}
	}
}
