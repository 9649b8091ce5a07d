package enroll

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flinkpki/flinkpki/ca"
	flinkpkiv1 "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// ErrBadResponse means the server answered with material the client cannot
// use (unparsable certificates, a chain that does not match the key).
var ErrBadResponse = errors.New("unusable answer from flinkpki")

// Request names what to enroll for.
type Request struct {
	Cluster string
	Role    string
	// Holder names the process (pod); ignored by the server for Kubernetes
	// tokens, which name the pod themselves.
	Holder string
	// KeyType is the cluster's key type when the caller knows it; empty
	// makes Enroll ask the server first.
	KeyType ca.KeyType
	DNS     []string
	IPs     []string
}

// Result is the material for one holder, ready for credentials.Build.
type Result struct {
	Key      crypto.Signer
	Chain    []*x509.Certificate // leaf first
	Trusted  []*x509.Certificate // every CA the cluster trusts for the role's purpose
	Holder   string              // as recorded by the server
	KeyType  ca.KeyType
	NotAfter time.Time
	// Superseded is the live record of another process under the same
	// holder name that this issuance replaced (nil when none, or when a
	// pod replaced its own): rotation steps no longer wait for it.
	Superseded *Superseded
}

// Superseded is a live holder record an issuance replaced.
type Superseded struct {
	Serial   string // hex
	NotAfter time.Time
	Actor    string // who obtained it, as in the audit trail
}

func supersededOf(s *flinkpkiv1.SupersededHolder) *Superseded {
	if s == nil {
		return nil
	}
	return &Superseded{Serial: s.GetSerial(), NotAfter: s.GetNotAfter().AsTime(), Actor: s.GetActor()}
}

// Client enrolls over one gRPC connection.
type Client struct {
	rpc    flinkpkiv1.EnrollmentServiceClient
	target string

	// Timeout > 0 makes Enroll retry retryable failures until it passes,
	// one deadline for all of its calls; zero means a single try.
	Timeout time.Duration
	// Backoff tunes the retries (clock, sleep, delays).
	Backoff Backoff
	// Logf receives one line per failed attempt; nil discards them.
	Logf func(format string, args ...any)
	// Rand is the randomness for keys and CSRs; nil means crypto/rand.
	Rand io.Reader
}

// NewClient returns a Client on conn; target names the server in messages.
func NewClient(conn grpc.ClientConnInterface, target string) *Client {
	return &Client{rpc: flinkpkiv1.NewEnrollmentServiceClient(conn), target: target}
}

// Enroll makes a key of the cluster's type locally, sends a CSR for it and
// returns the signed chain with the trusted CAs. Without req.KeyType it
// first asks the server for the key type with an Enroll carrying no CSR,
// which checks the token without spending a use.
func (c *Client) Enroll(ctx context.Context, req Request) (*Result, error) {
	ips, err := parseIPs(req.IPs)
	if err != nil {
		return nil, err
	}
	deadline := c.now().Add(c.Timeout)
	keyType := req.KeyType
	if keyType == "" {
		var resp *flinkpkiv1.EnrollResponse
		err := c.call(ctx, deadline, func(ctx context.Context) (err error) {
			resp, err = c.rpc.Enroll(ctx, c.pbRequest(req, nil))
			return err
		})
		if err != nil {
			return nil, err
		}
		if keyType, err = ca.ParseKeyType(resp.GetKeyType()); err != nil || resp.GetKeyType() == "" {
			return nil, fmt.Errorf("%w: the server named key type %q; is it older than this client?", ErrBadResponse, resp.GetKeyType())
		}
	}
	key, err := keyType.GenerateKey(c.Rand)
	if err != nil {
		return nil, err
	}
	csr, err := CreateCSR(c.rand(), key, req.Holder, req.DNS, ips)
	if err != nil {
		return nil, fmt.Errorf("create the CSR: %w", err)
	}
	var resp *flinkpkiv1.EnrollResponse
	err = c.call(ctx, deadline, func(ctx context.Context) (err error) {
		resp, err = c.rpc.Enroll(ctx, c.pbRequest(req, csr))
		return err
	})
	if err != nil {
		return nil, err
	}
	return newResult(key, resp)
}

// Bake asks the server to generate the key (for image builds) and returns
// it with its chain. The key is made on the server and returned only once.
func (c *Client) Bake(ctx context.Context, req Request) (*Result, error) {
	var resp *flinkpkiv1.BakeResponse
	err := c.call(ctx, c.now().Add(c.Timeout), func(ctx context.Context) (err error) {
		resp, err = c.rpc.Bake(ctx, &flinkpkiv1.BakeRequest{
			Cluster: req.Cluster, Role: req.Role, Holder: req.Holder,
			DnsNames: req.DNS, IpAddresses: req.IPs,
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(resp.GetPrivateKey())
	if err != nil {
		return nil, fmt.Errorf("%w: the private key is not PKCS#8: %v", ErrBadResponse, err)
	}
	key, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: a %T key cannot sign", ErrBadResponse, k)
	}
	return newResult(key, resp)
}

// call runs one RPC, retrying until deadline when Timeout is set.
func (c *Client) call(ctx context.Context, deadline time.Time, fn func(ctx context.Context) error) error {
	if c.Timeout <= 0 {
		return fn(ctx)
	}
	b := c.Backoff
	if b.Describe == nil {
		b.Describe = c.describe
	}
	if b.Now == nil {
		b.Now = time.Now
	}
	return b.Retry(ctx, deadline.Sub(b.Now()), c.Logf, fn)
}

// describe phrases a retryable failure for the per-attempt log line.
func (c *Client) describe(err error) string {
	switch status.Code(err) {
	case codes.DeadlineExceeded:
		return fmt.Sprintf("flinkpki at %s did not answer in time", c.target)
	case codes.ResourceExhausted:
		return fmt.Sprintf("flinkpki at %s is overloaded (%s)", c.target, Reason(err))
	case codes.Canceled:
		return fmt.Sprintf("flinkpki at %s ended the request before reading it (overloaded, or the request came too slowly)", c.target)
	case codes.Unavailable:
		if r := Reason(err); strings.HasPrefix(r, "store unavailable") {
			// The server answered: its store cannot take the request now
			// (etcd lost, the data volume full).
			return fmt.Sprintf("flinkpki at %s cannot serve the request now (%s)", c.target, r)
		}
	}
	return fmt.Sprintf("flinkpki at %s not reachable yet (%s)", c.target, Reason(err))
}

func (c *Client) now() time.Time {
	if c.Backoff.Now != nil {
		return c.Backoff.Now()
	}
	return time.Now()
}

func (c *Client) rand() io.Reader {
	if c.Rand != nil {
		return c.Rand
	}
	return rand.Reader
}

func (c *Client) pbRequest(req Request, csr []byte) *flinkpkiv1.EnrollRequest {
	return &flinkpkiv1.EnrollRequest{
		Cluster: req.Cluster, Role: req.Role, Holder: req.Holder, Csr: csr,
		DnsNames: req.DNS, IpAddresses: req.IPs,
	}
}

func parseIPs(ss []string) ([]net.IP, error) {
	ips := make([]net.IP, 0, len(ss))
	for _, s := range ss {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("%q is not an IP address: pass --ip as e.g. 10.0.0.7 or fd00::7", s)
		}
		ips = append(ips, ip)
	}
	return ips, nil
}

// newResult parses the answer's certificates and checks that the leaf
// belongs to key, so a confused server can never produce a keystore Flink
// would reject at start.
func newResult(key crypto.Signer, resp answer) (*Result, error) {
	chain, trusted, err := ParseAnswer(key, resp.GetChain(), resp.GetTrustedCas())
	if err != nil {
		return nil, err
	}
	kt, err := ca.KeyTypeOf(key.Public())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	return &Result{Key: key, Chain: chain, Trusted: trusted, Holder: resp.GetHolder(), KeyType: kt,
		NotAfter: resp.GetNotAfter().AsTime(), Superseded: supersededOf(resp.GetSuperseded())}, nil
}

// answer is what EnrollResponse and BakeResponse share.
type answer interface {
	GetChain() [][]byte
	GetTrustedCas() [][]byte
	GetHolder() string
	GetNotAfter() *timestamppb.Timestamp
	GetSuperseded() *flinkpkiv1.SupersededHolder
}

// ParseAnswer parses a signed chain and the trusted CAs that came with it
// and checks that both are there and that the leaf belongs to key. A CA in
// both lists is parsed once. bench/stepca parses step-ca's answers with it,
// so both load generators of make bench do the same client work.
func ParseAnswer(key crypto.Signer, chainDER, trustedDER [][]byte) (chain, trusted []*x509.Certificate, err error) {
	if chain, err = parseCerts("chain", chainDER); err != nil {
		return nil, nil, err
	}
	if trusted, err = parseCerts("trusted CAs", trustedDER, chain...); err != nil {
		return nil, nil, err
	}
	if len(chain) == 0 || len(trusted) == 0 {
		return nil, nil, fmt.Errorf("%w: it holds %d chain and %d trusted certificates; both must be non-empty", ErrBadResponse, len(chain), len(trusted))
	}
	if !publicKeysEqual(chain[0].PublicKey, key.Public()) {
		return nil, nil, fmt.Errorf("%w: the leaf certificate does not belong to the private key", ErrBadResponse)
	}
	return chain, trusted, nil
}

// parseCerts parses ders; a certificate already in parsed (the issuing CA
// is usually in the chain and among the trusted CAs) is not parsed again.
func parseCerts(what string, ders [][]byte, parsed ...*x509.Certificate) ([]*x509.Certificate, error) {
	certs := make([]*x509.Certificate, 0, len(ders))
	for i, der := range ders {
		if j := slices.IndexFunc(parsed, func(c *x509.Certificate) bool { return bytes.Equal(c.Raw, der) }); j >= 0 {
			certs = append(certs, parsed[j])
			continue
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: %s certificate %d does not parse: %v", ErrBadResponse, what, i, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}
