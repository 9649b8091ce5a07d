package k8sauth

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ErrReview reports a token the API server's TokenReview did not accept,
// or a TokenReview that could not be made.
var ErrReview = errors.New("TokenReview refused the service-account token")

// ErrReviewUnavailable reports a TokenReview that could not be had: the API
// server did not answer (unreachable, too slow, overloaded: a transport
// error, a timeout, HTTP 429 or 5xx), or this server could not read its own
// token to ask. It says nothing of the token; asking again later may work.
var ErrReviewUnavailable = errors.New("the Kubernetes API server could not review the service-account token")

// In-cluster locations of the server's own credentials.
const (
	inClusterTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	inClusterCAFile    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
	podNameExtra       = "authentication.kubernetes.io/pod-name"
	podUIDExtra        = "authentication.kubernetes.io/pod-uid"
)

// Reviewer asks the Kubernetes API server whether a service-account token
// is still valid (TokenReview). It complements offline JWKS verification:
// the API server also knows that a pod, and so its bound token, is gone.
// The server's service account needs to create TokenReviews (the
// tokenreview component's ClusterRole, or system:auth-delegator).
type Reviewer struct {
	url       string
	client    *http.Client
	tokenFile string
	audience  string
	cache     *reviewCache // nil: every token is reviewed every time
}

// ReviewerConfig points a Reviewer at an API server. Empty fields take the
// in-cluster values (KUBERNETES_SERVICE_HOST/PORT and the mounted service
// account).
type ReviewerConfig struct {
	APIServer string // https://host:port
	CAFile    string
	TokenFile string
	Audience  string // default DefaultAudience
	Timeout   time.Duration
	// CacheTTL is how long an accepted token's answer is reused (never
	// past the token's exp); zero asks the API server every time.
	CacheTTL time.Duration
	// CacheSize bounds the answers kept; zero means DefaultReviewCacheSize.
	CacheSize int
}

// NewReviewer returns a Reviewer.
func NewReviewer(cfg ReviewerConfig) (*Reviewer, error) {
	if cfg.APIServer == "" {
		host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return nil, fmt.Errorf("%w: TokenReview needs the in-cluster API server (KUBERNETES_SERVICE_HOST is unset): run in Kubernetes or give the API server URL", ErrConfig)
		}
		cfg.APIServer = "https://" + net.JoinHostPort(host, port)
	}
	// A review carries the pod's token and the server's own: never in
	// the clear, where anyone on the path could replay the one and answer
	// "authenticated" for any token.
	if u, err := url.Parse(cfg.APIServer); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%w: the API server URL %q is not https://HOST[:PORT]: TokenReview sends tokens, so only https is allowed", ErrConfig, clip(cfg.APIServer))
	}
	if cfg.CAFile == "" {
		cfg.CAFile = inClusterCAFile
	}
	if cfg.TokenFile == "" {
		cfg.TokenFile = inClusterTokenFile
	}
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	caPEM, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("%w: read the API server CA: %v", ErrConfig, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrConfig, cfg.CAFile)
	}
	if _, err := os.Stat(cfg.TokenFile); err != nil {
		return nil, fmt.Errorf("%w: the server's own service-account token: %v", ErrConfig, err)
	}
	return &Reviewer{
		url: strings.TrimRight(cfg.APIServer, "/") + "/apis/authentication.k8s.io/v1/tokenreviews",
		client: &http.Client{
			Timeout: cfg.Timeout,
			Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
				// HTTP/2 where the API server offers it (it does): reviews
				// in flight share one connection, instead of a TLS
				// connection each (a custom TLS configuration turns
				// net/http's HTTP/2 off unless asked for), and HTTP/1.1
				// keeps more of them.
				ForceAttemptHTTP2:   true,
				MaxIdleConnsPerHost: 32,
			},
			// A redirect would send the pod's token, in the body, to
			// wherever it points: taken as the answer it is (refused).
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		tokenFile: cfg.TokenFile,
		audience:  cfg.Audience,
		cache:     newReviewCache(cfg.CacheTTL, cfg.CacheSize, nil),
	}, nil
}

// Cached returns the identity the API server vouched for raw at a review
// whose answer still holds (ReviewerConfig.CacheTTL), without asking again.
func (r *Reviewer) Cached(raw string) (*Identity, bool) {
	return r.cache.get(raw)
}

// Review asks the API server about raw and returns the identity it vouches
// for; an accepted token's answer is kept for Cached. The server's own
// token is re-read every time, since the kubelet rotates it.
func (r *Reviewer) Review(ctx context.Context, raw string) (*Identity, error) {
	// The API server takes a projected token until its exp, a year away
	// on clusters that extend them: a token is held to the age the offline
	// verification allows too (DefaultMaxAge), so that one copied out of a
	// pod is not good for longer than the kubelet takes to renew it. Read
	// before the API server is asked (the claims unverified: it only
	// refuses), so a stale copy costs no review.
	cl := unverifiedClaims(raw)
	if cl == nil {
		return nil, fmt.Errorf("service-account token is no signed JWT with readable claims: %w", ErrMalformed)
	}
	if cl.IssuedAt == nil {
		return nil, errNoIssuedAt
	}
	if err := checkAge(cl.IssuedAt.Time(), time.Now(), DefaultMaxAge, DefaultLeeway); err != nil {
		return nil, err
	}
	st, err := r.ask(ctx, raw)
	if err != nil {
		return nil, err
	}
	id, err := r.identity(st)
	if err != nil {
		return nil, err
	}
	r.cache.put(raw, id, cl)
	return id, nil
}

// ask posts a TokenReview of raw, with the server's own token, and
// returns the API server's answer, whatever it says of the token: an
// answer not had is ErrReviewUnavailable (asking again later may work), a
// review refused or unreadable is ErrReview; a request that could not be
// built at all (a review that does not encode, a malformed URL) is
// neither.
func (r *Reviewer) ask(ctx context.Context, raw string) (*authnv1.TokenReviewStatus, error) {
	own, err := os.ReadFile(r.tokenFile)
	if err != nil {
		return nil, fmt.Errorf("%w: read the server's own token: %v", ErrReviewUnavailable, err)
	}
	body, err := json.Marshal(&authnv1.TokenReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "authentication.k8s.io/v1", Kind: "TokenReview"},
		Spec:     authnv1.TokenReviewSpec{Token: raw, Audiences: []string{r.audience}},
	})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(own)))
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReviewUnavailable, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		return nil, fmt.Errorf("%w: it answered HTTP %d", ErrReviewUnavailable, resp.StatusCode)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: the API server answered HTTP %d (may the server's service account create TokenReviews? deploy/kubernetes/tokenreview grants it)", ErrReview, resp.StatusCode)
	}
	var tr authnv1.TokenReview
	if err := json.Unmarshal(data, &tr); err != nil {
		return nil, fmt.Errorf("%w: unreadable TokenReview answer: %v", ErrReview, err)
	}
	return &tr.Status, nil
}

// identity is the service account, and the pod, that an answer vouches
// for: only an authenticated token for our audience, of a service account.
func (r *Reviewer) identity(st *authnv1.TokenReviewStatus) (*Identity, error) {
	if !st.Authenticated {
		reason := st.Error
		if reason == "" {
			reason = "not authenticated"
		}
		return nil, fmt.Errorf("%w: %s", ErrReview, reason)
	}
	// An empty list means the token is valid for the API server's own
	// audience, not ours (the TokenReview API's documentation): a client
	// that asks for audiences must find one of them in the answer.
	if len(st.Audiences) == 0 {
		return nil, fmt.Errorf("%w: the API server did not confirm the audience %q (a token for the API server itself, or an API server that ignores audiences)", ErrReview, r.audience)
	}
	if !slices.Contains(st.Audiences, r.audience) {
		return nil, fmt.Errorf("%w: the token is for audiences %q, expected %q", ErrReview, st.Audiences, r.audience)
	}
	ns, sa, ok := parseSubject(st.User.Username)
	if !ok {
		return nil, fmt.Errorf("%w: %q is not a service account", ErrReview, st.User.Username)
	}
	id := &Identity{Namespace: ns, ServiceAccount: sa, ServiceAccountUID: st.User.UID, Subject: st.User.Username}
	if v := st.User.Extra[podNameExtra]; len(v) == 1 {
		id.Pod = v[0]
	}
	if v := st.User.Extra[podUIDExtra]; len(v) == 1 {
		id.PodUID = v[0]
	}
	return id, nil
}

func parseSubject(s string) (ns, sa string, ok bool) {
	rest, found := strings.CutPrefix(s, "system:serviceaccount:")
	if !found {
		return "", "", false
	}
	ns, sa, ok = strings.Cut(rest, ":")
	return ns, sa, ok && ns != "" && sa != ""
}
