package issuer

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/ca"
)

func issueAt(tb testing.TB, at time.Time, s *ca.Signer, req Request) (*x509.Certificate, []*x509.Certificate, error) {
	tb.Helper()
	return Issue(context.Background(), Config{Now: fixedClock(at)}, s, req)
}

func TestIssueAppliesTheRoleProfile(t *testing.T) {
	t.Parallel()
	internal := newSigner(t, ca.PurposeInternal, ca.KeyTypeECDSAP256, 0)
	rest := newSigner(t, ca.PurposeREST, ca.KeyTypeECDSAP256, 0)
	ecKey := newKey(t, ca.KeyTypeECDSAP256)
	rsaKey := newKey(t, ca.KeyTypeRSA2048)
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	tests := []struct {
		name      string
		signer    *ca.Signer
		req       Request
		wantEKU   []x509.ExtKeyUsage
		wantUsage x509.KeyUsage
	}{
		{"a jobmanager leaf is both server and client", internal,
			Request{Cluster: "orders", Holder: "jm-0", Role: RoleJobManager, PublicKey: ecKey.Public()},
			both, x509.KeyUsageDigitalSignature},
		{"a taskmanager RSA leaf may also encipher keys", internal,
			Request{Cluster: "orders", Holder: "tm-3", Role: RoleTaskManager, PublicKey: rsaKey.Public()},
			both, x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment},
		{"a taskmanager may carry host names", internal,
			Request{Cluster: "orders", Holder: "tm-1", Role: RoleTaskManager, PublicKey: ecKey.Public(), DNSNames: []string{"tm-1.orders"}},
			both, x509.KeyUsageDigitalSignature},
		{"a rest-server leaf is a server only", rest,
			Request{Cluster: "orders", Holder: "proxy", Role: RoleRESTServer, PublicKey: ecKey.Public(),
				DNSNames: []string{"orders-rest.flink.svc"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.7")}},
			[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, x509.KeyUsageDigitalSignature},
		{"a rest-client leaf is a client only", rest,
			Request{Cluster: "orders", Holder: "ops", Role: RoleRESTClient, PublicKey: ecKey.Public()},
			[]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, x509.KeyUsageDigitalSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			leaf, chain, err := issueAt(t, t0.Add(time.Hour), tt.signer, tt.req)
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			if !slices.Equal(leaf.ExtKeyUsage, tt.wantEKU) || leaf.KeyUsage != tt.wantUsage {
				t.Errorf("EKU %v usage %v, want %v %v", leaf.ExtKeyUsage, leaf.KeyUsage, tt.wantEKU, tt.wantUsage)
			}
			if leaf.IsCA || !leaf.BasicConstraintsValid {
				t.Errorf("leaf IsCA=%v BasicConstraintsValid=%v, want a non-CA leaf", leaf.IsCA, leaf.BasicConstraintsValid)
			}
			s := leaf.Subject
			if s.CommonName != tt.req.Holder || !slices.Equal(s.Organization, []string{"flinkpki"}) ||
				!slices.Equal(s.OrganizationalUnit, []string{"cluster:orders", "role:" + string(tt.req.Role)}) {
				t.Errorf("subject = %v", s)
			}
			wantURI := "spiffe://flinkpki/cluster/orders/role/" + string(tt.req.Role) + "/holder/" + tt.req.Holder
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != wantURI {
				t.Errorf("URIs = %v, want %s", leaf.URIs, wantURI)
			}
			if !slices.Equal(leaf.DNSNames, tt.req.DNSNames) || len(leaf.IPAddresses) != len(tt.req.IPAddresses) {
				t.Errorf("SANs = %v %v, want %v %v", leaf.DNSNames, leaf.IPAddresses, tt.req.DNSNames, tt.req.IPAddresses)
			}
			if len(chain) != 2 || chain[0] != leaf || !chain[1].Equal(tt.signer.Certificate()) {
				t.Errorf("chain is not leaf, CA")
			}
			if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 128 {
				t.Errorf("serial %s is not a positive 128-bit number", leaf.SerialNumber)
			}
		})
	}
}

func TestIssuedChainsVerifyForTheirUsage(t *testing.T) {
	t.Parallel()
	for _, kt := range []ca.KeyType{ca.KeyTypeECDSAP256, ca.KeyTypeECDSAP384, ca.KeyTypeRSA2048} {
		t.Run(string(kt), func(t *testing.T) {
			t.Parallel()
			internal := newSigner(t, ca.PurposeInternal, kt, 0)
			rest := newSigner(t, ca.PurposeREST, kt, 0)
			key := newKey(t, kt)
			now := t0.Add(24 * time.Hour)
			cases := []struct {
				signer *ca.Signer
				req    Request
				usages []x509.ExtKeyUsage
				dns    string
			}{
				{internal, Request{Cluster: "orders", Holder: "jm-0", Role: RoleJobManager, PublicKey: key.Public()}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, ""},
				{internal, Request{Cluster: "orders", Holder: "jm-0", Role: RoleJobManager, PublicKey: key.Public()}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, ""},
				{rest, Request{Cluster: "orders", Holder: "proxy", Role: RoleRESTServer, PublicKey: key.Public(), DNSNames: []string{"rest.orders"}}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, "rest.orders"},
				{rest, Request{Cluster: "orders", Holder: "ops", Role: RoleRESTClient, PublicKey: key.Public()}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, ""},
			}
			for _, c := range cases {
				leaf, _, err := issueAt(t, now, c.signer, c.req)
				if err != nil {
					t.Fatalf("Issue %s: %v", c.req.Role, err)
				}
				roots := x509.NewCertPool()
				roots.AddCert(c.signer.Certificate())
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: c.usages, DNSName: c.dns}); err != nil {
					t.Errorf("%s leaf does not verify for %v: %v", c.req.Role, c.usages, err)
				}
			}
		})
	}
}

func TestIssuedLeavesDoNotVerifyForTheOtherUsage(t *testing.T) {
	t.Parallel()
	rest := newSigner(t, ca.PurposeREST, ca.KeyTypeECDSAP256, 0)
	key := newKey(t, ca.KeyTypeECDSAP256)
	leaf, _, err := issueAt(t, t0, rest, Request{Cluster: "orders", Holder: "ops", Role: RoleRESTClient, PublicKey: key.Public()})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(rest.Certificate())
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Fatal("a rest-client leaf verified as a TLS server")
	}
}

func TestIssueValidityWindow(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	caValidity := 365 * day
	s := newSigner(t, ca.PurposeInternal, ca.KeyTypeECDSAP256, caValidity)
	caNotBefore, caNotAfter := s.Certificate().NotBefore, s.Certificate().NotAfter
	key := newKey(t, ca.KeyTypeECDSAP256)
	tests := []struct {
		name          string
		now           time.Time
		validity      time.Duration
		wantNotBefore time.Time
		wantNotAfter  time.Time
	}{
		{"the default is 90 days, backdated a minute", t0.Add(day), 0, t0.Add(day - time.Minute), t0.Add(day + DefaultLeafValidity)},
		{"an explicit validity is kept", t0.Add(day), 7 * day, t0.Add(day - time.Minute), t0.Add(8 * day)},
		{"backdating never goes before the CA", t0, time.Hour, caNotBefore, t0.Add(time.Hour)},
		{"a leaf ending one nanosecond before the CA is not clamped", caNotAfter.Add(-day - time.Nanosecond), day, caNotAfter.Add(-day - time.Nanosecond - time.Minute), caNotAfter.Add(-time.Nanosecond)},
		{"a leaf ending exactly with the CA is kept", caNotAfter.Add(-day), day, caNotAfter.Add(-day - time.Minute), caNotAfter},
		{"a leaf that would outlive the CA is clamped to it", caNotAfter.Add(-day), 2 * day, caNotAfter.Add(-day - time.Minute), caNotAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			leaf, _, err := issueAt(t, tt.now, s, Request{Cluster: "orders", Holder: "jm-0", Role: RoleJobManager, PublicKey: key.Public(), Validity: tt.validity})
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			// X.509 times have one-second precision.
			if !leaf.NotBefore.Equal(tt.wantNotBefore.Truncate(time.Second)) || !leaf.NotAfter.Equal(tt.wantNotAfter.Truncate(time.Second)) {
				t.Fatalf("validity %s .. %s, want %s .. %s", leaf.NotBefore, leaf.NotAfter, tt.wantNotBefore, tt.wantNotAfter)
			}
			if leaf.NotAfter.After(caNotAfter) || leaf.NotBefore.Before(caNotBefore) {
				t.Fatal("the leaf is not inside its CA's validity")
			}
		})
	}
}

func TestIssueRefusesTheWrongCA(t *testing.T) {
	t.Parallel()
	internal := newSigner(t, ca.PurposeInternal, ca.KeyTypeECDSAP256, 0)
	rest := newSigner(t, ca.PurposeREST, ca.KeyTypeECDSAP256, 0)
	c, key, err := ca.Create(context.Background(), ca.Config{Now: fixedClock(t0)},
		ca.CreateRequest{Cluster: "orders", Purpose: ca.PurposeInternal, Generation: 2})
	if err != nil {
		t.Fatal(err)
	}
	prepared, err := ca.NewSigner(c, key)
	if err != nil {
		t.Fatal(err)
	}
	pub := newKey(t, ca.KeyTypeECDSAP256).Public()
	jm := Request{Cluster: "orders", Holder: "jm-0", Role: RoleJobManager, PublicKey: pub}
	tests := []struct {
		name   string
		signer *ca.Signer
		req    Request
		now    time.Time
	}{
		{"the REST CA never signs internal material", rest, jm, t0},
		{"the internal CA never signs REST material", internal, Request{Cluster: "orders", Holder: "p", Role: RoleRESTServer, PublicKey: pub, DNSNames: []string{"a"}}, t0},
		{"a CA never signs for another cluster", internal, Request{Cluster: "payments", Holder: "jm-0", Role: RoleJobManager, PublicKey: pub}, t0},
		{"a prepared CA does not sign yet", prepared, jm, t0},
		{"an expired CA does not sign", internal, jm, internal.Certificate().NotAfter},
		{"a CA not yet valid does not sign", internal, jm, internal.Certificate().NotBefore.Add(-time.Nanosecond)},
		{"a missing CA does not sign", nil, jm, t0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, _, err := issueAt(t, tt.now, tt.signer, tt.req); !errors.Is(err, ErrWrongCA) {
				t.Fatalf("Issue error = %v, want ErrWrongCA", err)
			}
		})
	}
}

func TestIssueRefusesRequestsOutsideTheProfile(t *testing.T) {
	t.Parallel()
	internal := newSigner(t, ca.PurposeInternal, ca.KeyTypeECDSAP256, 0)
	rest := newSigner(t, ca.PurposeREST, ca.KeyTypeECDSAP256, 0)
	pub := newKey(t, ca.KeyTypeECDSAP256).Public()
	many := make([]string, MaxSANs+1)
	for i := range many {
		many[i] = "h" + string(rune('a'+i))
	}
	tests := []struct {
		name    string
		signer  *ca.Signer
		req     Request
		wantErr error
	}{
		{"an unknown role is refused", internal, Request{Cluster: "orders", Holder: "x", Role: "admin", PublicKey: pub}, ErrUnknownRole},
		{"an empty holder is refused", internal, Request{Cluster: "orders", Role: RoleJobManager, PublicKey: pub}, ErrInvalidRequest},
		{"a holder with a slash is refused", internal, Request{Cluster: "orders", Holder: "a/b", Role: RoleJobManager, PublicKey: pub}, ErrInvalidRequest},
		{"a holder of two dots is refused", internal, Request{Cluster: "orders", Holder: "..", Role: RoleJobManager, PublicKey: pub}, ErrInvalidRequest},
		{"a holder of 254 characters is refused", internal, Request{Cluster: "orders", Holder: string(make254()), Role: RoleJobManager, PublicKey: pub}, ErrInvalidRequest},
		{"an upper-case cluster is refused", internal, Request{Cluster: "Orders", Holder: "x", Role: RoleJobManager, PublicKey: pub}, ErrInvalidRequest},
		{"a rest-server without names is refused", rest, Request{Cluster: "orders", Holder: "p", Role: RoleRESTServer, PublicKey: pub}, ErrInvalidRequest},
		{"a rest-client with names is refused", rest, Request{Cluster: "orders", Holder: "p", Role: RoleRESTClient, PublicKey: pub, DNSNames: []string{"a"}}, ErrInvalidRequest},
		{"a wildcard name is refused", rest, Request{Cluster: "orders", Holder: "p", Role: RoleRESTServer, PublicKey: pub, DNSNames: []string{"*.orders"}}, ErrInvalidRequest},
		{"a name with an empty label is refused", rest, Request{Cluster: "orders", Holder: "p", Role: RoleRESTServer, PublicKey: pub, DNSNames: []string{"a..b"}}, ErrInvalidRequest},
		{"a malformed IP is refused", rest, Request{Cluster: "orders", Holder: "p", Role: RoleRESTServer, PublicKey: pub, IPAddresses: []net.IP{{1, 2, 3}}}, ErrInvalidRequest},
		{"more than 16 names are refused", rest, Request{Cluster: "orders", Holder: "p", Role: RoleRESTServer, PublicKey: pub, DNSNames: many}, ErrInvalidRequest},
		{"a missing public key is refused", internal, Request{Cluster: "orders", Holder: "x", Role: RoleJobManager}, ErrInvalidRequest},
		{"a negative validity is refused", internal, Request{Cluster: "orders", Holder: "x", Role: RoleJobManager, PublicKey: pub, Validity: -time.Second}, ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, _, err := issueAt(t, t0, tt.signer, tt.req); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Issue error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func make254() []byte {
	b := make([]byte, MaxHolderLen+1)
	for i := range b {
		b[i] = 'a'
	}
	return b
}

func TestIssueStopsOnACancelledContext(t *testing.T) {
	t.Parallel()
	s := newSigner(t, ca.PurposeInternal, ca.KeyTypeECDSAP256, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := Request{Cluster: "orders", Holder: "jm-0", Role: RoleJobManager, PublicKey: newKey(t, ca.KeyTypeECDSAP256).Public()}
	if _, _, err := Issue(ctx, Config{}, s, req); !errors.Is(err, context.Canceled) {
		t.Fatalf("Issue error = %v, want context.Canceled", err)
	}
}

func TestValidateHolderAcceptsPodNames(t *testing.T) {
	t.Parallel()
	for _, h := range []string{"a", "orders-taskmanager-1-7f9c", "jm_0.local", string(make254()[:MaxHolderLen])} {
		if err := ValidateHolder(h); err != nil {
			t.Errorf("ValidateHolder(%q) = %v", h, err)
		}
	}
}
