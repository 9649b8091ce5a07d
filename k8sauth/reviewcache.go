package k8sauth

import (
	"crypto/sha256"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// DefaultReviewCacheSize bounds how many accepted tokens a Reviewer
// remembers at once; the oldest goes first.
const DefaultReviewCacheSize = 8192

// reviewCache remembers, for a short time, the tokens the API server has
// accepted, so that one pod's requests close together (init asks for its
// key type, then enrolls; a pod refused by a rate limit retries) cost the
// API server one TokenReview, not one each. kube-apiserver does the same
// for the webhook tokens it reviews (--authentication-token-webhook-cache-ttl,
// two minutes by default). The price: a token of a pod deleted since its
// last review is still accepted until its answer expires.
//
// Only accepted tokens are kept, by their SHA-256 (never the token), each
// until the earlier of its TTL and the token's own exp. A refused or
// unanswered token is asked about again every time.
type reviewCache struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu    sync.Mutex
	byKey map[[sha256.Size]byte]cachedReview
	order []cacheRef // insertion order: TTLs are equal, so also expiry order but for exp
}

type cachedReview struct {
	id    Identity
	until time.Time
}

type cacheRef struct {
	key   [sha256.Size]byte
	until time.Time
}

func newReviewCache(ttl time.Duration, size int, now func() time.Time) *reviewCache {
	if ttl <= 0 {
		return nil
	}
	if size <= 0 {
		size = DefaultReviewCacheSize
	}
	if now == nil {
		now = time.Now
	}
	return &reviewCache{ttl: ttl, max: size, now: now, byKey: make(map[[sha256.Size]byte]cachedReview)}
}

// get returns the identity the API server vouched for raw, while that
// answer holds.
func (c *reviewCache) get(raw string) (*Identity, bool) {
	if c == nil {
		return nil, false
	}
	key := sha256.Sum256([]byte(raw))
	now := c.now()
	c.mu.Lock()
	e, ok := c.byKey[key]
	c.mu.Unlock()
	if !ok || !now.Before(e.until) {
		return nil, false
	}
	id := e.id
	return &id, true
}

// put remembers that the API server accepted raw, whose claims (read
// unverified, unverifiedClaims) are cl, as id. A token whose exp cannot be
// read, or has passed (or its maximum age), is not kept.
func (c *reviewCache) put(raw string, id *Identity, cl *claims) {
	if c == nil || cl == nil || cl.Expiry == nil {
		return
	}
	now := c.now()
	until := now.Add(c.ttl)
	// Never past the token's exp, nor past the age Review takes it to.
	last := cl.Expiry.Time()
	if cl.IssuedAt != nil {
		if aged := lastAccepted(cl.IssuedAt.Time(), DefaultMaxAge, DefaultLeeway); aged.Before(last) {
			last = aged
		}
	}
	if last.Before(until) {
		until = now.Add(last.Sub(now))
	}
	if !now.Before(until) {
		return
	}
	key := sha256.Sum256([]byte(raw))
	c.mu.Lock()
	defer c.mu.Unlock()
	// Drop what has expired, then the oldest while full.
	for len(c.order) > 0 && (!now.Before(c.order[0].until) || len(c.byKey) >= c.max) {
		c.drop(c.order[0])
		c.order = c.order[1:]
	}
	c.byKey[key] = cachedReview{id: *id, until: until}
	c.order = append(c.order, cacheRef{key: key, until: until})
}

// drop forgets ref's entry unless the key was stored again since.
func (c *reviewCache) drop(ref cacheRef) {
	if e, ok := c.byKey[ref.key]; ok && e.until.Equal(ref.until) {
		delete(c.byKey, ref.key)
	}
}

// unverifiedClaims reads the claims of a token for the API server to judge
// (or that it has just accepted): they are read without a key (this server
// may have no JWKS), so they may only refuse, or bound how long an answer
// is kept. nil when raw is no JWS with claims.
func unverifiedClaims(raw string) *claims {
	jws, err := jose.ParseSignedCompact(raw, reviewAlgs)
	if err != nil {
		return nil
	}
	c, err := parseClaims(jws.UnsafePayloadWithoutVerification())
	if err != nil {
		return nil
	}
	return c
}
