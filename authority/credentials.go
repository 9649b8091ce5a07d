package authority

import (
	"context"
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

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

// CreateAdminToken makes a new administrator token and stores its hash. The
// returned bearer string is shown once.
func (a *Authority) CreateAdminToken(ctx context.Context, actor Actor, name string) (string, error) {
	if err := checkTokenName(name); err != nil {
		return "", err
	}
	t, err := token.New(token.KindAdmin, a.rand)
	if err != nil {
		return "", err
	}
	err = a.st.Update(ctx, func(tx *store.Txn) error {
		if err := tx.PutAdminToken(&store.AdminToken{ID: t.ID, Hash: token.Hash(t.Secret), Name: name, Created: a.now().UTC()}); err != nil {
			return err
		}
		return a.audit(tx, actor, "", "admin_token.create", "ok", "", map[string]string{"token_id": t.ID, "name": name})
	})
	if err != nil {
		return "", err
	}
	return t.String(), nil
}

// AdminTokens lists the administrator tokens (IDs, names, creation times;
// only hashes of their secrets are stored).
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
// further request, and audits it; a refusal (an unknown ID) changes nothing.
func (a *Authority) RevokeAdminToken(ctx context.Context, actor Actor, id string) error {
	if !token.ValidID(id) {
		return a.Deny(ctx, actor, "", "admin_token.revoke", "invalid", errNotATokenID)
	}
	err := a.st.Update(ctx, func(tx *store.Txn) error {
		t, err := tx.AdminToken(id)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("administrator token %q %w (flinkpki admin list-tokens)", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if err := tx.DeleteAdminToken(id); err != nil {
			return err
		}
		return a.audit(tx, actor, "", "admin_token.revoke", "ok", "", map[string]string{"token_id": id, "name": t.Name})
	})
	if err != nil {
		return a.Deny(ctx, actor, "", "admin_token.revoke", ReasonOf(err), err)
	}
	return nil
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
