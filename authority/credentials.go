package authority

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/token"
)

// Authenticate resolves a flinkpki bearer token (administrator or
// enrollment) to its actor. The secret is compared in constant time against
// the stored hash. An enrollment token's use is spent later, in the
// transaction of the issuance it pays for.
func (a *Authority) Authenticate(ctx context.Context, t token.Parsed) (Actor, error) {
	var actor Actor
	err := a.st.View(ctx, func(tx *store.Txn) error {
		switch t.Kind {
		case token.KindAdmin:
			rec, err := tx.AdminToken(t.ID)
			if errors.Is(err, store.ErrNotFound) || (err == nil && !token.Verify(rec.Hash, t.Secret)) {
				return fmt.Errorf("%w: unknown administrator token %s", ErrUnauthenticated, t.Redacted())
			}
			if err != nil {
				return err
			}
			if !rec.Expires.IsZero() && !rec.Expires.After(a.now()) {
				return fmt.Errorf("%w: administrator token %s expired at %s: get a new one from another administrator (flinkpki admin token create) or with flinkpki admin bootstrap", ErrUnauthenticated, t.Redacted(), rec.Expires.UTC().Format(time.RFC3339))
			}
			actor = Actor{Kind: ActorAdmin, ID: rec.ID}
		case token.KindEnrollment:
			rec, err := tx.Token(t.ID)
			if errors.Is(err, store.ErrNotFound) || (err == nil && !token.Verify(rec.Hash, t.Secret)) {
				return fmt.Errorf("%w: unknown, used-up, expired or revoked enrollment token %s: create a new one with flinkpki token create", ErrUnauthenticated, t.Redacted())
			}
			if err != nil {
				return err
			}
			if !rec.Expires.After(a.now()) {
				return fmt.Errorf("%w: enrollment token %s expired at %s: create a new one with flinkpki token create", ErrUnauthenticated, t.Redacted(), rec.Expires.Format("2006-01-02T15:04:05Z07:00"))
			}
			if rec.UsesLeft <= 0 {
				return fmt.Errorf("%w: enrollment token %s was used up", ErrUnauthenticated, t.Redacted())
			}
			actor = Actor{Kind: ActorEnrollment, ID: rec.ID, TokenCluster: rec.Cluster, TokenRole: rec.Role, TokenClusterCreated: rec.ClusterCreated}
		default:
			return fmt.Errorf("%w: unknown token kind", ErrUnauthenticated)
		}
		return nil
	})
	return actor, err
}

// Bounds of an administrator token's lifetime, when it has one, and of the
// chain of tokens it may be made through.
const (
	MinAdminTokenTTL = time.Minute
	MaxAdminTokenTTL = 10 * 365 * 24 * time.Hour
	// MaxAdminTokenChain bounds MadeWith: a token made through more
	// tokens than this is refused (people, their jobs and a break-glass
	// token need a few).
	MaxAdminTokenChain = 16
)

// CreateAdminToken makes a new administrator token and stores its hash. The
// returned bearer string is shown once. ttl 0 makes a token that does not
// expire, unless actor is an administrator token that does: a token never
// outlives the one it was made with, so a short-lived token cannot mint a
// lasting one. A token made with another records the chain it was made
// through (store.AdminToken.MadeWith).
func (a *Authority) CreateAdminToken(ctx context.Context, actor Actor, name string, ttl time.Duration) (string, *store.AdminToken, error) {
	if err := checkTokenName(name); err != nil {
		return "", nil, a.Deny(ctx, actor, "", "admin_token.create", "invalid", err)
	}
	if ttl != 0 && (ttl < MinAdminTokenTTL || ttl > MaxAdminTokenTTL) {
		err := fmt.Errorf("%w: administrator token TTL %s is out of range: use %s to %s, or 0 for a token that does not expire", ErrInvalid, ttl, MinAdminTokenTTL, ca.FormatDuration(MaxAdminTokenTTL))
		return "", nil, a.Deny(ctx, actor, "", "admin_token.create", "invalid", err)
	}
	t, err := token.New(token.KindAdmin, a.rand)
	if err != nil {
		return "", nil, err
	}
	var rec *store.AdminToken
	err = a.st.Update(ctx, func(tx *store.Txn) error {
		now := a.now().UTC()
		rec = &store.AdminToken{ID: t.ID, Hash: token.Hash(t.Secret), Name: name, Created: now, CreatedBy: actor.String()}
		if ttl != 0 {
			rec.Expires = now.Add(ttl)
		}
		if actor.Kind == ActorAdmin {
			maker, err := a.callerToken(tx, actor)
			if err != nil {
				return err
			}
			if len(maker.MadeWith) >= MaxAdminTokenChain {
				return fmt.Errorf("%w: administrator token %s was made through %d others, the most a token may be: make this one with a token nearer the first", ErrInvalid, maker.ID, len(maker.MadeWith))
			}
			rec.MadeWith = append(slices.Clone(maker.MadeWith), maker.ID)
			if !maker.Expires.IsZero() && (rec.Expires.IsZero() || rec.Expires.After(maker.Expires)) {
				rec.Expires = maker.Expires
			}
		}
		if err := tx.PutAdminToken(rec); err != nil {
			return err
		}
		details := map[string]string{"token_id": t.ID, "name": name}
		if !rec.Expires.IsZero() {
			details["expires"] = rec.Expires.Format(time.RFC3339)
		}
		return a.audit(tx, actor, "", "admin_token.create", "ok", "", details)
	})
	if err != nil {
		return "", nil, a.Deny(ctx, actor, "", "admin_token.create", ReasonOf(err), err)
	}
	out := *rec
	out.Hash = nil
	return t.String(), &out, nil
}

// callerToken is the record of the administrator token actor called with,
// read in tx: it may have been revoked, or have expired, since the request
// was authenticated.
func (a *Authority) callerToken(tx *store.Txn, actor Actor) (*store.AdminToken, error) {
	rec, err := tx.AdminToken(actor.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: administrator token %s was revoked", ErrUnauthenticated, actor.ID)
	}
	if err != nil {
		return nil, err
	}
	if !rec.Expires.IsZero() && !rec.Expires.After(a.now()) {
		return nil, fmt.Errorf("%w: administrator token %s expired at %s", ErrUnauthenticated, actor.ID, rec.Expires.UTC().Format(time.RFC3339))
	}
	return rec, nil
}

// AdminTokens lists the administrator tokens (IDs, names, creation and
// expiry times, who made them; only hashes of their secrets are stored).
func (a *Authority) AdminTokens(ctx context.Context) ([]*store.AdminToken, error) {
	var out []*store.AdminToken
	err := a.st.View(ctx, func(tx *store.Txn) error {
		out = nil
		return tx.ForEachAdminToken(func(t *store.AdminToken) (bool, error) {
			t.Hash = nil
			out = append(out, t)
			return true, nil
		})
	})
	return out, err
}

// RevokeAdminToken deletes an administrator token, so it authenticates no
// further request, with every token made through it (unless keepMade): a
// stolen token's revocation takes what was minted with it, however many
// tokens in between. It answers the IDs revoked, the named one first, and
// audits each (made_with naming the named one).
//
// An administrator may not, online, shorten how long the installation can
// be administered: the revocation must leave a token that lasts as long as
// the longest-lived of those valid now (one that does not expire, if any
// does not). Since no token outlives the one it was made with, tokens that
// all expire can never make a lasting one, and once they have expired only
// an offline bootstrap makes another. Offline (actor not an administrator)
// it is allowed. A refusal changes nothing.
//
// Where the backend bounds a transaction's writes (etcd), a large cascade
// goes in several transactions, the tokens made through the named one
// first, deepest first, the named one last: one that stops part-way leaves
// the named token valid and nothing orphaned, and the same call again
// finishes it.
func (a *Authority) RevokeAdminToken(ctx context.Context, actor Actor, id string, keepMade bool) ([]string, error) {
	if !token.ValidID(id) {
		return nil, a.Deny(ctx, actor, "", "admin_token.revoke", "invalid", errNotATokenID)
	}
	perTxn := 0 // tokens per transaction; 0: all at once
	if l := a.st.MaxWritesPerTxn(); l > 0 {
		perTxn = max(1, (l-2)/2) // a deletion and an audit entry each, and the audit head
	}
	var revoked []string
	for first := true; ; first = false {
		var part []string
		done := false
		err := a.st.Update(ctx, func(tx *store.Txn) error {
			part, done = part[:0], false
			root, err := tx.AdminToken(id)
			if errors.Is(err, store.ErrNotFound) {
				if !first {
					done = true // revoked meanwhile, by another call
					return nil
				}
				return fmt.Errorf("administrator token %q %w (flinkpki admin token list)", id, ErrNotFound)
			}
			if err != nil {
				return err
			}
			if actor.Kind == ActorAdmin {
				if _, err := a.callerToken(tx, actor); err != nil {
					return err
				}
			}
			var all []*store.AdminToken
			if err := tx.ForEachAdminToken(func(t *store.AdminToken) (bool, error) {
				all = append(all, t)
				return true, nil
			}); err != nil {
				return err
			}
			gone := []*store.AdminToken{root}
			if !keepMade {
				gone = append(gone, madeThrough(all, root.ID)...)
			}
			if actor.Kind == ActorAdmin {
				if err := a.checkAdminHorizon(all, gone, root.ID); err != nil {
					return err
				}
			}
			// The named token goes last, with the transaction that takes
			// what is left of the tokens made through it.
			take := gone[1:]
			if perTxn > 0 && len(take) >= perTxn {
				take = take[len(take)-perTxn:] // the deepest
			} else {
				take, done = gone, true
			}
			for _, t := range take {
				if err := tx.DeleteAdminToken(t.ID); err != nil {
					return err
				}
				details := map[string]string{"token_id": t.ID, "name": t.Name}
				if t != root {
					details["made_with"] = root.ID
				}
				if err := a.audit(tx, actor, "", "admin_token.revoke", "ok", "", details); err != nil {
					return err
				}
				part = append(part, t.ID)
			}
			return nil
		})
		if err != nil {
			if len(revoked) > 0 {
				err = fmt.Errorf("%w (revoked %d of the tokens made through it, deepest first, before: run the revocation again to finish it)", err, len(revoked))
			}
			return nil, a.Deny(ctx, actor, "", "admin_token.revoke", ReasonOf(err), err)
		}
		revoked = append(revoked, part...)
		if done {
			break
		}
	}
	// The named token first, then the others in the order they went.
	if i := slices.Index(revoked, id); i > 0 {
		revoked = append(append([]string{id}, revoked[:i]...), revoked[i+1:]...)
	}
	return revoked, nil
}

// madeThrough answers the tokens made through the token id, directly or
// through others, shallowest first.
func madeThrough(all []*store.AdminToken, id string) []*store.AdminToken {
	var out []*store.AdminToken
	for _, t := range all {
		if slices.Contains(t.MadeWith, id) {
			out = append(out, t)
		}
	}
	slices.SortStableFunc(out, func(p, q *store.AdminToken) int { return len(p.MadeWith) - len(q.MadeWith) })
	return out
}

// checkAdminHorizon refuses a revocation, by an administrator, that leaves
// no token valid as long as the longest-lived of those valid now.
func (a *Authority) checkAdminHorizon(all, gone []*store.AdminToken, id string) error {
	now := a.now()
	forever := time.Unix(1<<62, 0)
	last := func(ts []*store.AdminToken, skip func(*store.AdminToken) bool) time.Time {
		var h time.Time
		for _, t := range ts {
			if skip(t) || (!t.Expires.IsZero() && !t.Expires.After(now)) {
				continue
			}
			e := t.Expires
			if e.IsZero() {
				e = forever
			}
			if e.After(h) {
				h = e
			}
		}
		return h
	}
	isGone := func(t *store.AdminToken) bool {
		return slices.ContainsFunc(gone, func(g *store.AdminToken) bool { return g.ID == t.ID })
	}
	before := last(all, func(*store.AdminToken) bool { return false })
	after := last(all, isGone)
	if !after.Before(before) {
		return nil
	}
	made := ""
	if len(gone) > 1 {
		made = fmt.Sprintf(" with the %d made through it", len(gone)-1)
	}
	left := "no administrator token would be left"
	if !after.IsZero() {
		left = "the administrator tokens left would all expire by " + after.UTC().Format(time.RFC3339)
	}
	need := "one that does not expire"
	if !before.Equal(forever) {
		need = "one that expires no earlier than " + before.UTC().Format(time.RFC3339)
	}
	return fmt.Errorf("%w: revoking administrator token %s%s: %s, and no token outlives the one it is made with, so only an offline bootstrap could make another; first make %s (flinkpki admin token create), or revoke it offline (flinkpki admin revoke-token)", ErrLastAdmin, id, made, left, need)
}

// MaxTokenNameLen bounds an administrator token's label.
const MaxTokenNameLen = 64

// checkTokenName refuses a label that would not read as one in the audit
// trail: empty, longer than MaxTokenNameLen, or holding spaces or characters
// that do not print.
func checkTokenName(name string) error {
	if name == "" || utf8.RuneCountInString(name) > MaxTokenNameLen {
		return fmt.Errorf("%w: token name %q must be 1 to %d characters", ErrInvalid, name, MaxTokenNameLen)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("%w: token name %q holds a space or a character that does not print: use letters, digits and punctuation", ErrInvalid, name)
		}
	}
	return nil
}
