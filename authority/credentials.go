package authority

import (
	"context"
	"errors"
	"fmt"

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
			// A revoked token's record keeps no hash to check the secret
			// against: whoever names its ID, which is no secret, learns no
			// more than for an ID that never existed.
			if err == nil && (!rec.Revoked.IsZero() || !token.Verify(rec.Hash, t.Secret)) {
				err = store.ErrNotFound
			}
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("%w: unknown administrator token %s, or one that was revoked: get a new one from another administrator (flinkpki admin token create), or with flinkpki admin bootstrap if none is left", ErrUnauthenticated, t.Redacted())
			}
			if err != nil {
				return err
			}
			if why, err := unusable(tx, rec, a.now()); err != nil || why != "" {
				if err != nil {
					return err
				}
				return fmt.Errorf("%w: administrator token %s %s: get a new one from another administrator (flinkpki admin token create), or with flinkpki admin bootstrap if none is left", ErrUnauthenticated, t.Redacted(), why)
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
			if err := madeThroughRevoked(tx, rec, t.Redacted()); err != nil {
				return err
			}
			actor = Actor{Kind: ActorEnrollment, ID: rec.ID, TokenCluster: rec.Cluster, TokenRole: rec.Role, TokenClusterCreated: rec.ClusterCreated}
		default:
			return fmt.Errorf("%w: unknown token kind", ErrUnauthenticated)
		}
		return nil
	})
	return actor, err
}
