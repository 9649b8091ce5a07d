package ca

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestCreateMakesARootCAForEveryKeyType(t *testing.T) {
	t.Parallel()
	for _, kt := range KeyTypes() {
		t.Run(string(kt), func(t *testing.T) {
			if kt == KeyTypeRSA4096 && testing.Short() {
				t.Skip("-short: RSA-4096 key generation takes seconds")
			}
			t.Parallel()
			c, key := newTestCA(t, CreateRequest{Cluster: "orders", Purpose: PurposeInternal, Generation: 3, KeyType: kt})
			cert := c.Cert
			if got, err := KeyTypeOf(cert.PublicKey); err != nil || got != kt {
				t.Fatalf("CA key type = %q, %v; want %s", got, err, kt)
			}
			if !cert.IsCA || !cert.BasicConstraintsValid || cert.MaxPathLen != 0 || !cert.MaxPathLenZero {
				t.Errorf("basic constraints: IsCA=%v valid=%v MaxPathLen=%d zero=%v; want a CA with path length 0",
					cert.IsCA, cert.BasicConstraintsValid, cert.MaxPathLen, cert.MaxPathLenZero)
			}
			if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign; cert.KeyUsage != want {
				t.Errorf("KeyUsage = %v, want certSign|cRLSign", cert.KeyUsage)
			}
			if len(cert.ExtKeyUsage) != 0 {
				t.Errorf("ExtKeyUsage = %v, want none", cert.ExtKeyUsage)
			}
			if err := cert.CheckSignatureFrom(cert); err != nil {
				t.Errorf("CA is not self-signed: %v", err)
			}
			if _, err := NewSigner(c, key); err != nil {
				t.Errorf("the returned key does not match the certificate: %v", err)
			}
		})
	}
}

func TestCreateNamesTheClusterPurposeAndGeneration(t *testing.T) {
	t.Parallel()
	c, _ := newTestCA(t, CreateRequest{Cluster: "orders", Purpose: PurposeREST, Generation: 2})
	s := c.Cert.Subject
	if s.CommonName != "flinkpki orders rest CA 2" {
		t.Errorf("CN = %q", s.CommonName)
	}
	if len(s.Organization) != 1 || s.Organization[0] != "flinkpki" {
		t.Errorf("O = %v", s.Organization)
	}
	if len(s.OrganizationalUnit) != 1 || s.OrganizationalUnit[0] != "cluster:orders" {
		t.Errorf("OU = %v", s.OrganizationalUnit)
	}
	if c.ID != "rest-2" || c.Cluster != "orders" || c.Purpose != PurposeREST || c.Generation != 2 {
		t.Errorf("CA record = %+v", c)
	}
}

func TestCreateUsesTheInjectedClockForValidity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		validity time.Duration
		want     time.Duration
	}{
		{"no validity means three years", 0, DefaultCAValidity},
		{"an explicit validity is kept", 400 * 24 * time.Hour, 400 * 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _ := newTestCA(t, CreateRequest{Validity: tt.validity})
			if !c.Cert.NotBefore.Equal(t0.Add(-time.Minute)) {
				t.Errorf("NotBefore = %s, want one minute before %s", c.Cert.NotBefore, t0)
			}
			if !c.Cert.NotAfter.Equal(t0.Add(tt.want)) {
				t.Errorf("NotAfter = %s, want %s", c.Cert.NotAfter, t0.Add(tt.want))
			}
			if !c.Created.Equal(t0) {
				t.Errorf("Created = %s, want %s", c.Created, t0)
			}
		})
	}
}

func TestCreateMakesOnlyTheFirstGenerationActive(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		gen           int
		wantState     State
		wantActivated time.Time
	}{
		{"generation 1 starts active", 1, StateActive, t0},
		{"generation 2 starts prepared", 2, StatePrepared, time.Time{}},
	}
	for _, tt := range tests {
		c, _ := newTestCA(t, CreateRequest{Generation: tt.gen, KeyType: KeyTypeECDSAP256})
		if c.State != tt.wantState || !c.Activated.Equal(tt.wantActivated) {
			t.Errorf("%s: state %s activated %s", tt.name, c.State, c.Activated)
		}
	}
}

func TestCreateDrawsDistinct128BitSerials(t *testing.T) {
	t.Parallel()
	a, _ := newTestCA(t, CreateRequest{})
	b, _ := newTestCA(t, CreateRequest{})
	for _, c := range []*CA{a, b} {
		if c.Cert.SerialNumber.Sign() <= 0 || c.Cert.SerialNumber.BitLen() > 128 {
			t.Errorf("serial %s is not a positive 128-bit number", c.Cert.SerialNumber)
		}
	}
	if a.Cert.SerialNumber.Cmp(b.Cert.SerialNumber) == 0 {
		t.Errorf("two CAs share serial %s", a.Cert.SerialNumber)
	}
}

func TestCreateRefusesBadRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		req     CreateRequest
		wantErr error
	}{
		{"an empty cluster is refused", CreateRequest{Purpose: PurposeInternal, Generation: 1}, ErrInvalidRequest},
		{"an unknown purpose is refused", CreateRequest{Cluster: "a", Purpose: "web", Generation: 1}, ErrUnknownPurpose},
		{"generation zero is refused", CreateRequest{Cluster: "a", Purpose: PurposeInternal}, ErrInvalidRequest},
		{"an unknown key type is refused", CreateRequest{Cluster: "a", Purpose: PurposeInternal, Generation: 1, KeyType: "rsa-1024"}, ErrUnknownKeyType},
		{"a negative validity is refused", CreateRequest{Cluster: "a", Purpose: PurposeInternal, Generation: 1, Validity: -time.Hour}, ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, _, err := Create(context.Background(), Config{}, tt.req); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Create error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestCreateStopsOnACancelledContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := CreateRequest{Cluster: "a", Purpose: PurposeInternal, Generation: 1}
	if _, _, err := Create(ctx, Config{}, req); !errors.Is(err, context.Canceled) {
		t.Fatalf("Create error = %v, want context.Canceled", err)
	}
}

func TestFingerprintIsColonSeparatedUpperCaseSHA256(t *testing.T) {
	t.Parallel()
	c, _ := newTestCA(t, CreateRequest{})
	fp := c.Fingerprint()
	if !regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`).MatchString(fp) {
		t.Fatalf("fingerprint %q is not 32 colon-separated upper-case hex pairs", fp)
	}
	sum := sha256.Sum256(c.Cert.Raw)
	if got := strings.ReplaceAll(fp, ":", ""); !strings.EqualFold(got, hex.EncodeToString(sum[:])) {
		t.Fatalf("fingerprint %q is not the SHA-256 of the certificate", fp)
	}
	if (*CA)(nil).Fingerprint() != "" {
		t.Fatal("a nil CA has a fingerprint")
	}
}

func TestNewSerialRefusesARandomSourceOfZeros(t *testing.T) {
	t.Parallel()
	if _, err := NewSerial(zeroReader{}); err == nil {
		t.Fatal("NewSerial accepted a source that returns only zeros")
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func BenchmarkCreateCA(b *testing.B) {
	for _, kt := range KeyTypes() {
		b.Run(string(kt), func(b *testing.B) {
			if kt == KeyTypeRSA4096 && testing.Short() {
				b.Skip("RSA-4096 key generation is slow; run without -short")
			}
			req := CreateRequest{Cluster: "bench", Purpose: PurposeInternal, Generation: 1, KeyType: kt}
			for b.Loop() {
				if _, _, err := Create(context.Background(), Config{}, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
