package authority

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/flinkpki/flinkpki/issuer"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/token"
)

// Enrollment tokens: made by an administrator for one cluster and role,
// spent by init and bake, listed and revoked. Only their hashes are stored.

// Bounds of an enrollment token's lifetime and use count: tokens are for pod
// start and image builds, not standing credentials, and a token must not
// have expired by the time its maker reads it.
const (
	DefaultTokenTTL  = 15 * time.Minute
	MinTokenTTL      = time.Second
	MaxTokenTTL      = 30 * 24 * time.Hour
	DefaultTokenUses = 1
	MaxTokenUses     = 100000
)

// errNotATokenID refuses a revocation whose ID is not one: it quotes
// nothing, because a person revoking a leaked token may paste the token.
var errNotATokenID = fmt.Errorf("%w: not a token ID: pass the ID that token list shows (26 characters, a-z and 2-7), not the token", ErrInvalid)

// CreateToken makes an enrollment token for one cluster and role. It returns
// the bearer string, which is shown once: only a hash is stored.
func (a *Authority) CreateToken(ctx context.Context, actor Actor, cluster, role string, ttl time.Duration, uses int) (string, *store.Token, error) {
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if uses == 0 {
		uses = DefaultTokenUses
	}
	r, err := issuer.ParseRole(role)
	switch {
	case err != nil:
		err = invalid(err)
	case ttl < MinTokenTTL || ttl > MaxTokenTTL:
		err = fmt.Errorf("%w: token TTL %s is out of range: use a value between %s and %s", ErrInvalid, ttl, MinTokenTTL, MaxTokenTTL)
	case uses < 0 || uses > MaxTokenUses:
		err = fmt.Errorf("%w: token use count %d is out of range: use 1 to %d", ErrInvalid, uses, MaxTokenUses)
	}
	if err != nil {
		return "", nil, a.Deny(ctx, actor, cluster, "token.create", "invalid", err)
	}
	tok, err := token.New(token.KindEnrollment, a.rand)
	if err != nil {
		return "", nil, err
	}
	now := a.now().UTC()
	rec := &store.Token{ID: tok.ID, Hash: token.Hash(tok.Secret), Cluster: cluster, Role: string(r),
		Created: now, Expires: now.Add(ttl), UsesLeft: uses}
	err = a.st.Update(ctx, func(tx *store.Txn) error {
		c, err := a.getCluster(tx, cluster)
		if err != nil {
			return err
		}
		rec.ClusterCreated = c.Created
		rec.Expires, rec.MadeWith = now.Add(ttl), nil
		if actor.Kind == ActorAdmin {
			// Like an administrator token, it records the chain it was
			// made through, and does not outlive its maker: revoking a
			// stolen administrator token takes the enrollment tokens
			// minted with it.
			maker, err := a.callerToken(tx, actor, now)
			if err != nil {
				return err
			}
			rec.MadeWith = append(slices.Clone(maker.MadeWith), maker.ID)
			if !maker.Expires.IsZero() && rec.Expires.After(maker.Expires) {
				rec.Expires = maker.Expires
			}
		}
		if err := a.pruneTokens(tx, now); err != nil {
			return err
		}
		if err := tx.PutToken(rec); err != nil {
			return err
		}
		return a.audit(tx, actor, cluster, "token.create", "ok", "", map[string]string{
			"token_id": rec.ID, "role": rec.Role, "uses": fmt.Sprint(uses), "expires": rec.Expires.Format(time.RFC3339)})
	})
	if err != nil {
		return "", nil, a.failed(ctx, actor, cluster, "token.create", err)
	}
	return tok.String(), rec, nil
}

// ListTokens returns up to limit live enrollment tokens (all when limit is
// 0) of cluster, or of every cluster when cluster is "", in ID order after
// the ID after, and the ID to pass as after for the next page ("" on the
// last). Expired and used-up tokens are left out: they open nothing and
// the next token create prunes them; so are those revoked with an
// administrator token they were made through. Only hashes of the secrets are
// stored, and they are not returned.
func (a *Authority) ListTokens(ctx context.Context, cluster, after string, limit int) ([]*store.Token, string, error) {
	now := a.now()
	var out []*store.Token
	next := ""
	err := a.st.View(ctx, func(tx *store.Txn) error {
		out, next = nil, ""
		if cluster != "" {
			if _, err := a.getCluster(tx, cluster); err != nil {
				return err
			}
		}
		return tx.ForEachTokenAfter(after, func(t *store.Token) (bool, error) {
			if (cluster != "" && t.Cluster != cluster) || spent(t, now) {
				return true, nil
			}
			if m, err := revokedWith(t.MadeWith, adminTokenIn(tx)); err != nil || m != nil {
				return err == nil, err // revoked with its maker: it opens nothing
			}
			if limit > 0 && len(out) == limit {
				next = out[len(out)-1].ID
				return false, nil
			}
			c := *t
			c.Hash = nil
			out = append(out, &c)
			return true, nil
		})
	})
	return out, next, err
}

// RevokeToken deletes an enrollment token, so it enrolls nothing from now
// on, and audits it (token.revoke); a refusal (an unknown or already spent
// ID) changes nothing. Credentials it already paid for stay valid: their
// holders are live until their leaves expire or are released.
func (a *Authority) RevokeToken(ctx context.Context, actor Actor, id string) (cluster string, err error) {
	if !token.ValidID(id) {
		// Never quote it: what was pasted may be the token itself.
		return "", a.Deny(ctx, actor, "", "token.revoke", "invalid", errNotATokenID)
	}
	err = a.st.Update(ctx, func(tx *store.Txn) error {
		t, err := tx.Token(id)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("enrollment token %q %w: it never existed, was used up, expired and was pruned, or was revoked (flinkpki token list)", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		cluster = t.Cluster
		if err := tx.DeleteToken(id); err != nil {
			return err
		}
		return a.audit(tx, actor, t.Cluster, "token.revoke", "ok", "", map[string]string{
			"token_id": id, "role": t.Role, "uses_left": strconv.Itoa(t.UsesLeft), "expires": t.Expires.UTC().Format(time.RFC3339)})
	})
	if err != nil {
		return "", a.failed(ctx, actor, cluster, "token.revoke", err)
	}
	return cluster, nil
}

// spent reports whether a token can enroll no more: expired or used up.
func spent(t *store.Token, now time.Time) bool { return !t.Expires.After(now) || t.UsesLeft <= 0 }

// madeThroughRevoked refuses enrollment token t, read in tx, when an
// administrator token it was made through was revoked with the tokens made
// through it; redacted names t.
func madeThroughRevoked(tx *store.Txn, t *store.Token, redacted string) error {
	m, err := revokedWith(t.MadeWith, adminTokenIn(tx))
	if err != nil || m == nil {
		return err
	}
	return fmt.Errorf("%w: enrollment token %s was made through administrator token %s, revoked with the tokens made through it at %s: create a new one with flinkpki token create",
		ErrUnauthenticated, redacted, m.ID, revokedMadeAt(m).UTC().Format(time.RFC3339))
}

// pruneTokensPerCreate bounds the expired tokens one token create deletes,
// so its transaction stays under etcd's --max-txn-ops however many expired
// since the last create; the next creates delete the rest.
const pruneTokensPerCreate = 64

// pruneTokens deletes expired tokens, so the token bucket stays small.
func (a *Authority) pruneTokens(tx *store.Txn, now time.Time) error {
	var dead []string
	err := tx.ForEachToken(func(t *store.Token) (bool, error) {
		if spent(t, now) {
			dead = append(dead, t.ID)
		}
		return len(dead) < pruneTokensPerCreate, nil
	})
	if err != nil {
		return err
	}
	for _, id := range dead {
		if err := tx.DeleteToken(id); err != nil {
			return err
		}
	}
	return nil
}
