// Package k8sauth verifies Kubernetes projected service-account tokens
// offline, against the cluster's JWKS, and turns a valid token into the
// Identity of the pod that presented it.
//
// It checks authenticity only: which namespaces and service accounts may
// enroll for which flinkpki cluster is decided by the caller with the
// returned Identity.
//
// JOSE handling is go-jose v4 (github.com/go-jose/go-jose/v4), used
// directly: it is the maintained library that go.step.sm/crypto/jose itself
// wraps, its ParseSignedCompact refuses any algorithm not on an explicit
// allow-list before a key is touched (so "none" and HS256-with-a-public-key
// cannot get through), and using it directly keeps one less layer between
// flinkpki and the code that checks signatures.
package k8sauth

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Defaults for Config fields left zero.
const (
	DefaultAudience = "flinkpki"
	DefaultLeeway   = 60 * time.Second
	// DefaultMaxAge bounds how long after its iat a token is accepted,
	// whatever its exp says. The kubelet renews a projected token once
	// 80% of its life or 24 hours have passed, so the token file of a
	// running pod is never much older than a day: an older token is a
	// copy, not what a pod reads now.
	DefaultMaxAge = 25 * time.Hour
	// MaxTokenBytes bounds the input Verify parses. Projected tokens are
	// about 1 KiB; anything far larger is refused before any decoding.
	MaxTokenBytes = 16 << 10
)

// allowedAlgs are the only JWS algorithms accepted: what kube-apiserver
// signs with for RSA and P-256 service-account keys.
var allowedAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.ES256}

// reviewAlgs are the algorithms a token the API server judges alone may
// name (its cluster may sign with any of them): its claims are read
// without a key, only to refuse it or to bound how long an answer is kept.
var reviewAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// Config configures a Verifier.
type Config struct {
	// Issuer is the cluster's service-account issuer (--k8s-issuer), the
	// apiserver's --service-account-issuer. Required.
	Issuer string
	// Audience must appear in the token's "aud"; default "flinkpki".
	Audience string
	// JWKS is the content of --k8s-jwks-file, as served by the apiserver
	// at /openid/v1/jwks. Required.
	JWKS []byte
	// JWKSFile, when set, is the file JWKS was read from. Every token
	// makes the Verifier look at the file again (one stat) and take its
	// content when its size or modification time changed (the kubelet
	// updates a mounted ConfigMap in place), so that a cluster's new
	// signing key is picked up without a restart, and a key dropped from
	// the file (compromised, say) is refused from the next token on.
	// Content that does not parse leaves the keys as they were.
	JWKSFile string
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
	// Leeway absorbs clock skew between the apiserver and flinkpki when
	// checking exp, nbf and iat; zero means DefaultLeeway.
	Leeway time.Duration
	// MaxAge is how long after its iat a token is accepted; zero means
	// DefaultMaxAge.
	MaxAge time.Duration
}

// Identity is what a verified token says about the workload that holds it.
type Identity struct {
	Namespace         string
	ServiceAccount    string
	ServiceAccountUID string
	Pod               string // empty when the token is not bound to a pod
	PodUID            string
	Node              string // empty when the token names no node
	Subject           string // system:serviceaccount:<Namespace>:<ServiceAccount>
	Expiry            time.Time
}

// Verifier checks service-account tokens of one cluster. It is safe for
// concurrent use; its keys change only when Config.JWKSFile does.
type Verifier struct {
	issuer   string
	audience string
	keys     atomic.Pointer[[]verificationKey]
	file     *jwksFile // nil without Config.JWKSFile
	clock    func() time.Time
	leeway   time.Duration
	maxAge   time.Duration
}

// jwksFile is where the keys came from, read again when it changes.
type jwksFile struct {
	path string

	mu      sync.Mutex
	size    int64     // of the content last looked at: taken, or refused
	modTime time.Time // likewise; zero before the first look, so that the first unknown key reads the file once
	refused error     // why that content was not taken; nil when it was
}

// New returns a Verifier for cfg, refusing a Config that could never
// verify a token: no issuer, an unreadable JWKS, or a JWKS without an
// RS256 or ES256 signing key.
func New(cfg Config) (*Verifier, error) {
	if strings.TrimSpace(cfg.Issuer) == "" {
		return nil, fmt.Errorf("Kubernetes issuer is empty; set --k8s-issuer to the cluster's service-account issuer (the \"issuer\" of /.well-known/openid-configuration): %w", ErrConfig)
	}
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("clock leeway %v is negative: %w", cfg.Leeway, ErrConfig)
	}
	keys, err := parseJWKS(cfg.JWKS)
	if err != nil {
		return nil, err
	}
	if cfg.MaxAge < 0 {
		return nil, fmt.Errorf("token max age %v is negative: %w", cfg.MaxAge, ErrConfig)
	}
	v := &Verifier{issuer: cfg.Issuer, audience: cfg.Audience, clock: cfg.Clock, leeway: cfg.Leeway, maxAge: cmp.Or(cfg.MaxAge, DefaultMaxAge)}
	v.keys.Store(&keys)
	if cfg.JWKSFile != "" {
		v.file = &jwksFile{path: cfg.JWKSFile}
	}
	if v.audience == "" {
		v.audience = DefaultAudience
	}
	if v.clock == nil {
		v.clock = time.Now
	}
	if v.leeway == 0 {
		v.leeway = DefaultLeeway
	}
	return v, nil
}

// Verify checks raw (surrounding white space is ignored, as token files may
// end in a newline) and returns the identity it proves. The signature is
// checked before any claim is believed.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Identity, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	payload, err := v.verifySignature(raw)
	if err != nil {
		return nil, err
	}
	c, err := parseClaims(payload)
	if err != nil {
		return nil, err
	}
	return v.checkClaims(c)
}

// verifySignature parses raw and returns its payload once a JWKS key has
// verified it. With a "kid" only keys of that id are tried; without one,
// every key of the token's algorithm is. The keys are the JWKS file's as it
// is now, when there is one: it is read again whenever it changed.
func (v *Verifier) verifySignature(raw string) ([]byte, error) {
	if v.file != nil {
		v.file.reload(&v.keys)
	}
	return v.verifyWith(*v.keys.Load(), raw)
}

// reload reads the file when its size or modification time differ from
// the content last looked at, and puts its keys in keys when they parse;
// under the lock, so that a slower reading never replaces a newer one.
func (f *jwksFile) reload(keys *atomic.Pointer[[]verificationKey]) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, err := os.Stat(f.path)
	if err != nil {
		f.refused = withoutPath(err)
		return
	}
	if st.Size() == f.size && st.ModTime().Equal(f.modTime) {
		return
	}
	f.size, f.modTime = st.Size(), st.ModTime()
	b, err := os.ReadFile(f.path)
	if err != nil {
		f.refused = withoutPath(err)
		return
	}
	parsed, err := parseJWKS(b)
	if err != nil {
		f.refused = err
		return
	}
	f.refused = nil
	keys.Store(&parsed)
}

// withoutPath is a file error without the file's path, for a refusal.
func withoutPath(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// note says, for an unknown key's refusal, that the file is read again
// and what its last reading came to; "" without a file.
func (f *jwksFile) note() string {
	if f == nil {
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// The refusal goes to a client that has not authenticated: it names
	// the flag, not the server's path.
	if f.refused != nil {
		return fmt.Sprintf(" (the file is read again whenever it changes; its latest content was not taken: %v)", f.refused)
	}
	return " (the file is read again whenever it changes)"
}

func (v *Verifier) verifyWith(keys []verificationKey, raw string) ([]byte, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, fmt.Errorf("service-account token is empty: %w", ErrMalformed)
	}
	if len(raw) > MaxTokenBytes {
		return nil, fmt.Errorf("service-account token is %d bytes, more than the %d-byte limit: %w", len(raw), MaxTokenBytes, ErrMalformed)
	}
	jws, err := jose.ParseSignedCompact(raw, allowedAlgs)
	if err != nil {
		if algErr, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, fmt.Errorf("service-account token uses alg %q; only RS256 and ES256 are accepted: %w", clip(string(algErr.Got)), ErrSignature)
		}
		return nil, fmt.Errorf("service-account token is not a compact JWS (%v): %w", err, ErrMalformed)
	}
	hdr := jws.Signatures[0].Header
	alg := jose.SignatureAlgorithm(hdr.Algorithm)
	kid := clip(hdr.KeyID)
	var named, sameAlg []verificationKey
	for _, k := range keys {
		if hdr.KeyID == "" || k.kid == hdr.KeyID {
			named = append(named, k)
			if k.alg == alg {
				sameAlg = append(sameAlg, k)
			}
		}
	}
	for _, k := range sameAlg {
		if payload, err := jws.Verify(k.key); err == nil {
			return payload, nil
		}
	}
	switch {
	case hdr.KeyID == "":
		return nil, fmt.Errorf("service-account token has no kid and its %s signature verifies with none of the %d JWKS keys: %w", alg, len(keys), ErrSignature)
	case len(named) == 0:
		return nil, fmt.Errorf("service-account token is signed by key %q, which is not in the JWKS%s; update --k8s-jwks-file from the cluster's /openid/v1/jwks: %w", kid, v.file.note(), ErrUnknownKey)
	case len(sameAlg) == 0:
		return nil, fmt.Errorf("service-account token claims alg %s, but JWKS key %q is an %s key: %w", alg, kid, named[0].alg, ErrSignature)
	default:
		return nil, fmt.Errorf("service-account token signature does not verify with JWKS key %q: %w", kid, ErrSignature)
	}
}

// clip shortens a header value for an error message: it is chosen by
// whoever sent the token, before any signature is checked.
func clip(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "…"
}
