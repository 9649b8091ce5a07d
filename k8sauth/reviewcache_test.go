package k8sauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"

	"github.com/flinkpki/flinkpki/k8sauth/k8stest"
	jose "github.com/go-jose/go-jose/v4"
)

// fakeClock is a settable clock for the cache.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestReviewCacheKeepsAnAnswerForItsTTL(t *testing.T) {
	iss := k8stest.NewECIssuer(t, testIssuer)
	clk := &fakeClock{t: time.Now().Truncate(time.Second)} // exp has whole seconds
	c := newReviewCache(10*time.Second, 0, clk.now)
	claims := validClaims()
	claims.IssuedAt = clk.t.Add(-time.Minute) // the fixtures' iat is months before the cache's clock
	claims.Expiry = clk.t.Add(time.Hour)
	tok := iss.Mint(claims)
	id := &Identity{Namespace: "flink-orders", ServiceAccount: "flink", Pod: "orders-jobmanager-0"}

	if _, ok := c.get(tok); ok {
		t.Fatal("an empty cache answered")
	}
	c.put(tok, id, unverifiedClaims(tok))
	got, ok := c.get(tok)
	if !ok || *got != *id {
		t.Fatalf("get after put = %+v, %v; want %+v", got, ok, id)
	}
	got.Pod = "changed"
	if again, _ := c.get(tok); again.Pod != id.Pod {
		t.Error("a caller's change to the answer reached the cache")
	}
	claims.Pod = "orders-taskmanager-1"
	if _, ok := c.get(iss.Mint(claims)); ok {
		t.Error("another token got the first one's answer")
	}
	clk.advance(10*time.Second - time.Millisecond)
	if _, ok := c.get(tok); !ok {
		t.Error("the answer went before its TTL")
	}
	clk.advance(time.Millisecond)
	if _, ok := c.get(tok); ok {
		t.Error("the answer outlived its TTL")
	}
}

func TestReviewCacheNeverOutlivesTheToken(t *testing.T) {
	iss := k8stest.NewECIssuer(t, testIssuer)
	clk := &fakeClock{t: time.Now().Truncate(time.Second)} // exp has whole seconds
	c := newReviewCache(10*time.Second, 0, clk.now)
	id := &Identity{Namespace: "flink-orders", ServiceAccount: "flink"}

	claims := validClaims()
	claims.IssuedAt = clk.t.Add(-time.Minute) // the fixtures' iat is months before the cache's clock
	claims.Expiry = clk.t.Add(3 * time.Second)
	soon := iss.Mint(claims)
	c.put(soon, id, unverifiedClaims(soon))
	clk.advance(3*time.Second - time.Millisecond)
	if _, ok := c.get(soon); !ok {
		t.Error("the answer went before the token's exp")
	}
	clk.advance(time.Millisecond)
	if _, ok := c.get(soon); ok {
		t.Error("the answer outlived the token's exp")
	}

	claims.Expiry = clk.t.Add(-time.Second)
	expired := iss.Mint(claims)
	c.put(expired, id, unverifiedClaims(expired))
	for name, tok := range map[string]string{"an expired token": expired, "a token that is no JWS": "not-a-jwt", "a token without exp": iss.Sign([]byte(`{"sub":"system:serviceaccount:flink-orders:flink"}`))} {
		c.put(tok, id, unverifiedClaims(tok))
		if _, ok := c.get(tok); ok {
			t.Errorf("%s was kept", name)
		}
	}
	if n := c.size(); n != 1 {
		t.Errorf("the cache holds %d answers, want only the first", n)
	}
}

// TestReviewCacheNeverOutlivesTheTokensMaximumAge: an answer is not kept
// past the age Review takes a token to (DefaultMaxAge after its iat), even
// when the token's exp and the TTL are later.
func TestReviewCacheNeverOutlivesTheTokensMaximumAge(t *testing.T) {
	iss := k8stest.NewECIssuer(t, testIssuer)
	clk := &fakeClock{t: time.Now().Truncate(time.Second)}
	c := newReviewCache(10*time.Second, 0, clk.now)
	claims := validClaims()
	claims.IssuedAt = clk.t.Add(-DefaultMaxAge - DefaultLeeway + 3*time.Second)
	claims.Expiry = clk.t.Add(time.Hour)
	tok := iss.Mint(claims)
	c.put(tok, &Identity{Pod: "orders-jobmanager-0"}, unverifiedClaims(tok))
	if _, ok := c.get(tok); !ok {
		t.Fatal("the answer was not kept")
	}
	clk.advance(4 * time.Second)
	if _, ok := c.get(tok); ok {
		t.Error("the answer outlived the token's maximum age")
	}
}

func TestReviewCacheIsBounded(t *testing.T) {
	iss := k8stest.NewECIssuer(t, testIssuer)
	clk := &fakeClock{t: time.Now().Truncate(time.Second)} // exp has whole seconds
	c := newReviewCache(10*time.Second, 3, clk.now)
	claims := validClaims()
	claims.IssuedAt = clk.t.Add(-time.Minute) // the fixtures' iat is months before the cache's clock
	claims.Expiry = clk.t.Add(time.Hour)
	var toks []string
	for _, pod := range []string{"a", "b", "c", "d"} {
		claims.Pod = pod
		toks = append(toks, iss.Mint(claims))
		c.put(toks[len(toks)-1], &Identity{Pod: pod}, unverifiedClaims(toks[len(toks)-1]))
		clk.advance(time.Second)
	}
	if n := c.size(); n != 3 {
		t.Errorf("the cache holds %d answers, want its bound of 3", n)
	}
	if _, ok := c.get(toks[0]); ok {
		t.Error("the oldest answer stayed past the bound")
	}
	for _, tok := range toks[1:] {
		if _, ok := c.get(tok); !ok {
			t.Error("a newer answer went in place of the oldest")
		}
	}
	// An answer stored again outlives its first entry's turn to go.
	c = newReviewCache(10*time.Second, 10, clk.now)
	c.put(toks[1], &Identity{Pod: "b"}, unverifiedClaims(toks[1]))
	clk.advance(5 * time.Second)
	c.put(toks[1], &Identity{Pod: "b"}, unverifiedClaims(toks[1]))
	clk.advance(6 * time.Second) // the first entry has expired, the second holds
	c.put(toks[2], &Identity{Pod: "c"}, unverifiedClaims(toks[2]))
	if _, ok := c.get(toks[1]); !ok {
		t.Error("an answer stored again went with its first entry")
	}
	if n := c.size(); n != 2 {
		t.Errorf("the cache holds %d answers, want 2", n)
	}

	off := newReviewCache(0, 0, nil)
	off.put(toks[1], &Identity{}, unverifiedClaims(toks[1]))
	if _, ok := off.get(toks[1]); ok || off.size() != 0 {
		t.Error("a cache with no TTL kept an answer")
	}
}

// TestReviewerKeepsOnlyAcceptedTokens asks a fake API server: an accepted
// token is answered from the cache afterwards, a refused one is asked
// about again every time.
func TestReviewerKeepsOnlyAcceptedTokens(t *testing.T) {
	iss := k8stest.NewECIssuer(t, testIssuer)
	claims := validClaims()
	claims.IssuedAt, claims.Expiry = time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	good := iss.Mint(claims)
	bad := iss.Mint(k8stest.Claims{Namespace: "x", ServiceAccount: "y", Expiry: time.Now().Add(time.Hour)})
	var calls atomic.Int32
	r := newReviewer(t, func(tok string) bool { calls.Add(1); return tok == good })

	if _, ok := r.Cached(good); ok {
		t.Fatal("a token never reviewed was answered from the cache")
	}
	id, err := r.Review(context.Background(), good)
	if err != nil {
		t.Fatal(err)
	}
	cached, ok := r.Cached(good)
	if !ok || *cached != *id || cached.Pod != "orders-jobmanager-0" {
		t.Errorf("Cached after an accepted review = %+v, %v; want %+v", cached, ok, id)
	}
	for range 2 {
		if _, err := r.Review(context.Background(), bad); err == nil {
			t.Fatal("the refused token was accepted")
		}
		if _, ok := r.Cached(bad); ok {
			t.Fatal("a refused token was kept")
		}
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("the API server was asked %d times, want 3 (the good token once, the refused one each time)", n)
	}
}

// newReviewer returns a Reviewer of a fake API server (real HTTPS on
// loopback) that answers every TokenReview with accept's verdict on the
// token, for the service account flink-orders/flink of pod
// orders-jobmanager-0.
func newReviewer(t *testing.T, accept func(token string) bool) *Reviewer {
	t.Helper()
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var tr authnv1.TokenReview
		if err := json.NewDecoder(r.Body).Decode(&tr); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if accept(tr.Spec.Token) {
			tr.Status = authnv1.TokenReviewStatus{Authenticated: true, Audiences: tr.Spec.Audiences, User: authnv1.UserInfo{
				Username: "system:serviceaccount:flink-orders:flink",
				Extra:    map[string]authnv1.ExtraValue{podNameExtra: {"orders-jobmanager-0"}},
			}}
		} else {
			tr.Status = authnv1.TokenReviewStatus{Error: "invalid bearer token"}
		}
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(&tr)
	}))
	t.Cleanup(ts.Close)
	dir := t.TempDir()
	caFile, tokFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "token")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644)
	os.WriteFile(tokFile, []byte("own"), 0o600)
	r, err := NewReviewer(ReviewerConfig{APIServer: ts.URL, CAFile: caFile, TokenFile: tokFile, CacheTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestReviewerHoldsTokensToTheOfflineMaximumAge: the API server accepts a
// projected token until its exp, a year on clusters that extend tokens;
// flinkpki takes none issued more than DefaultMaxAge ago, with TokenReview
// alone as with offline verification, without asking the API server,
// and keeps no answer for it.
func TestReviewerHoldsTokensToTheOfflineMaximumAge(t *testing.T) {
	iss := k8stest.NewECIssuer(t, testIssuer)
	old, fresh := validClaims(), validClaims()
	old.IssuedAt, old.Expiry = time.Now().Add(-DefaultMaxAge-DefaultLeeway-time.Minute), time.Now().Add(365*24*time.Hour)
	fresh.IssuedAt, fresh.Expiry = time.Now().Add(-DefaultMaxAge+time.Minute), time.Now().Add(365*24*time.Hour)
	copied, renewed := iss.Mint(old), iss.Mint(fresh)
	var asked atomic.Int32
	r := newReviewer(t, func(string) bool { asked.Add(1); return true })
	if _, err := r.Review(context.Background(), copied); !errors.Is(err, ErrExpired) || !strings.Contains(err.Error(), "old copy") {
		t.Errorf("a token issued %s ago was answered %v; want ErrExpired, naming an old copy", DefaultMaxAge+DefaultLeeway+time.Minute, err)
	}
	if asked.Load() != 0 {
		t.Errorf("the API server was asked about a token flinkpki refuses by its age alone")
	}
	if _, ok := r.Cached(copied); ok {
		t.Error("the refused token's answer was kept")
	}
	if _, err := r.Review(context.Background(), renewed); err != nil {
		t.Errorf("a token issued just within %s was refused: %v", DefaultMaxAge, err)
	}
	// Whatever the cluster signs with (this server has no JWKS to know),
	// and a token without iat, which no age bound would hold.
	p384Key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	es384 := signJWS(t, jose.ES384, p384Key, "k384", iss.Payload(old))
	if _, err := r.Review(context.Background(), es384); !errors.Is(err, ErrExpired) {
		t.Errorf("an ES384 token issued %s ago was answered %v; want ErrExpired", DefaultMaxAge+DefaultLeeway+time.Minute, err)
	}
	var claims map[string]any
	if err := json.Unmarshal(iss.Payload(fresh), &claims); err != nil {
		t.Fatal(err)
	}
	delete(claims, "iat")
	if _, err := r.Review(context.Background(), iss.Sign(jsonOf(t, claims))); !errors.Is(err, ErrClaims) {
		t.Errorf("a token without iat was answered %v; want ErrClaims", err)
	}
	if asked.Load() != 1 {
		t.Errorf("the API server was asked %d times; want once, for the renewed token only", asked.Load())
	}
}

// size is how many answers are held (expired ones until they are dropped).
func (c *reviewCache) size() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byKey)
}

// TestReviewerRefusesAnAPIServerInTheClear: a review carries the pod's
// token and the server's own, so the API server's URL must be https.
func TestReviewerRefusesAnAPIServerInTheClear(t *testing.T) {
	dir := t.TempDir()
	caFile, tokFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "token")
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	defer ts.Close()
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644)
	os.WriteFile(tokFile, []byte("own"), 0o600)
	for _, u := range []string{"http://127.0.0.1:6443", "127.0.0.1:6443", "https://", "ftp://api:21", "https://a b"} {
		r, err := NewReviewer(ReviewerConfig{APIServer: u, CAFile: caFile, TokenFile: tokFile})
		if !errors.Is(err, ErrConfig) || r != nil || !strings.Contains(err.Error(), "only https") {
			t.Errorf("API server %q: %v, want a configuration error asking for https", u, err)
		}
	}
	if _, err := NewReviewer(ReviewerConfig{APIServer: ts.URL, CAFile: caFile, TokenFile: tokFile}); err != nil {
		t.Errorf("an https API server was refused: %v", err)
	}
}

// TestReviewerFollowsNoRedirect: an API server (or something in its place)
// that answers a review with a redirect would have the pod's token sent on
// to wherever it points; the review is refused instead, and the other
// place never sees the token.
func TestReviewerFollowsNoRedirect(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(other.Close)
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/apis/authentication.k8s.io/v1/tokenreviews", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(ts.Close)
	dir := t.TempDir()
	caFile, tokFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "token")
	pool := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Certificate().Raw})...)
	if err := os.WriteFile(caFile, pool, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokFile, []byte("own"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := NewReviewer(ReviewerConfig{APIServer: ts.URL, CAFile: caFile, TokenFile: tokFile})
	if err != nil {
		t.Fatal(err)
	}
	iss := k8stest.NewECIssuer(t, testIssuer)
	c := validClaims()
	c.IssuedAt, c.NotBefore, c.Expiry = time.Now(), time.Now(), time.Now().Add(time.Hour)
	if _, err := r.Review(context.Background(), iss.Mint(c)); !errors.Is(err, ErrReview) || !strings.Contains(err.Error(), "HTTP 307") {
		t.Errorf("a review answered with a redirect: %v, want it refused naming HTTP 307", err)
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirect was followed: the other server got %d reviews", n)
	}
}
