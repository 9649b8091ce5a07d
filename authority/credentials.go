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

// Bounds of an administrator token's lifetime, when it has one.
const (
	MinAdminTokenTTL = time.Minute
	MaxAdminTokenTTL = 10 * 365 * 24 * time.Hour
)

// CreateAdminToken makes a new administrator token and stores its hash. The
// returned bearer string is shown once. ttl 0 makes a token that does not
// expire, unless actor is an administrator token that does: a token never
// outlives the one it was made with, so a short-lived token cannot mint a
// lasting one.
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
			maker, err := tx.AdminToken(actor.ID)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("%w: administrator token %s was revoked", ErrUnauthenticated, actor.ID)
			}
			if err != nil {
				return err
			}
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
// further request, with every token made with it, and with theirs (unless
// keepMade): a stolen token's revocation takes what was minted with it too.
// It answers the IDs revoked, the named one first, and audits each. An
// administrator token may not revoke, online, the last ones that have not
// expired: nobody could call the server after (bootstrap makes a new one
// offline). A refusal (an unknown ID) changes nothing.
func (a *Authority) RevokeAdminToken(ctx context.Context, actor Actor, id string, keepMade bool) ([]string, error) {
	if !token.ValidID(id) {
		return nil, a.Deny(ctx, actor, "", "admin_token.revoke", "invalid", errNotATokenID)
	}
	var revoked []string
	err := a.st.Update(ctx, func(tx *store.Txn) error {
		root, err := tx.AdminToken(id)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("administrator token %q %w (flinkpki admin token list)", id, ErrNotFound)
		}
		if err != nil {
			return err
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
			gone = madeWith(all, root)
		}
		if actor.Kind == ActorAdmin {
			now := a.now()
			left := 0
			for _, t := range all {
				if !slices.ContainsFunc(gone, func(g *store.AdminToken) bool { return g.ID == t.ID }) && (t.Expires.IsZero() || t.Expires.After(now)) {
					left++
				}
			}
			if left == 0 {
				made := ""
				if len(gone) > 1 {
					made = fmt.Sprintf(" (with the %d made with it)", len(gone)-1)
				}
				return fmt.Errorf("%w: revoking administrator token %s%s leaves none that has not expired: create another first (flinkpki admin token create)", ErrLastAdmin, id, made)
			}
		}
		revoked = revoked[:0]
		for _, t := range gone {
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
			revoked = append(revoked, t.ID)
		}
		return nil
	})
	if err != nil {
		return nil, a.Deny(ctx, actor, "", "admin_token.revoke", ReasonOf(err), err)
	}
	return revoked, nil
}

// madeWith answers root and every token made with it, directly or through
// others, in breadth-first order.
func madeWith(all []*store.AdminToken, root *store.AdminToken) []*store.AdminToken {
	out := []*store.AdminToken{root}
	for i := 0; i < len(out); i++ {
		maker := Actor{Kind: ActorAdmin, ID: out[i].ID}.String()
		for _, t := range all {
			if t.CreatedBy == maker && t.ID != root.ID {
				out = append(out, t)
			}
		}
	}
	return out
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
