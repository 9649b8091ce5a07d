// Administrator tokens: made (offline by bootstrap, online with another
// administrator token), listed, revoked with the tokens made through them,
// and pruned once they can never matter again. Authenticate, in
// credentials.go, takes them.

package authority

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/token"
)

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
			maker, err := a.callerToken(tx, actor, now)
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
		if _, err := tx.AdminToken(t.ID); err == nil {
			return fmt.Errorf("%w: the new token's ID is taken: make it again", ErrConflict)
		}
		// Offline (bootstrap, the way back) the bound does not apply.
		pruned, err := a.pruneAdminTokens(tx, now, actor.Kind == ActorAdmin)
		if err != nil {
			return err
		}
		if err := tx.PutAdminToken(rec); err != nil {
			return err
		}
		details := map[string]string{"token_id": t.ID, "name": name}
		if !rec.Expires.IsZero() {
			details["expires"] = rec.Expires.Format(time.RFC3339)
		}
		if pruned > 0 {
			details["pruned"] = strconv.Itoa(pruned)
		}
		return a.audit(tx, actor, "", "admin_token.create", "ok", "", details)
	})
	if err != nil {
		return "", nil, a.failed(ctx, actor, "", "admin_token.create", err)
	}
	out := *rec
	out.Hash = nil
	return t.String(), &out, nil
}

// MaxAdminTokens bounds the administrator token records a server keeps
// (valid tokens, and revoked ones that valid tokens were made through), so
// that their listing stays one answer.
const MaxAdminTokens = 1000

// pruneAdminTokensPerCreate bounds the dead records one create deletes.
const pruneAdminTokensPerCreate = 64

// adminTokenPruneGrace is how long an expired token's record stays: a
// replica whose clock runs ahead must not delete, for good, a token that
// the others still take.
const adminTokenPruneGrace = 24 * time.Hour

// pruneAdminTokens deletes, before a token is made, up to
// pruneAdminTokensPerCreate records that can never matter again, and
// (bounded) refuses the new token when MaxAdminTokens records would remain
// after every such record were gone. Dead for good: a token expired for
// adminTokenPruneGrace (every token made through it has expired too, as
// none outlives its maker), a token made through one revoked with its made
// tokens, and a revoked token that no record left names in its chain. A
// tombstone that a record names stays: deleting it would revive that
// record.
func (a *Authority) pruneAdminTokens(tx *store.Txn, now time.Time, bounded bool) (int, error) {
	all, err := tx.AdminTokens()
	if err != nil {
		return 0, err
	}
	// The plan lists every record that can go, in an order whose every
	// prefix is safe: the dead that are no tombstone first, then each
	// tombstone once every record naming it is in the plan before it.
	var plan []*store.AdminToken
	planned := map[string]bool{}
	for _, i := range adminTokenStates(all, now) {
		if i.Revoked.IsZero() && (i.State == AdminTokenRevokedWith || (i.State == AdminTokenExpired && !i.Expires.After(now.Add(-adminTokenPruneGrace)))) {
			plan, planned[i.ID] = append(plan, i.AdminToken), true
		}
	}
	named := map[string]int{} // ID → records not planned that name it
	byID := make(map[string]*store.AdminToken, len(all))
	for _, t := range all {
		byID[t.ID] = t
		if !planned[t.ID] {
			for _, m := range t.MadeWith {
				named[m]++
			}
		}
	}
	// A tombstone no administrator token names goes, once no enrollment
	// token made through it can be live (enrollment tokens name their
	// chain too, but are not read here).
	gone := func(t *store.AdminToken) bool {
		return !t.Revoked.IsZero() && !now.Before(enrollmentChainEnd(t))
	}
	var work []*store.AdminToken
	for _, t := range all {
		if !planned[t.ID] && gone(t) && named[t.ID] == 0 {
			work = append(work, t)
		}
	}
	for len(work) > 0 {
		t := work[0]
		work = work[1:]
		plan, planned[t.ID] = append(plan, t), true
		for _, m := range t.MadeWith {
			if named[m]--; named[m] == 0 {
				if r := byID[m]; r != nil && !planned[m] && gone(r) {
					work = append(work, r)
				}
			}
		}
	}
	if left := len(all) - len(plan); bounded && left >= MaxAdminTokens {
		return 0, fmt.Errorf("%w: this server keeps %d administrator token records (valid tokens, and revoked ones that valid tokens, or enrollment tokens still unexpired, were made through), the most it keeps: revoke tokens no one uses, with the tokens made through them (flinkpki admin token list, revoke); a revoked token's record goes a day after the tokens made through it expire", ErrInvalid, left)
	}
	plan = plan[:min(len(plan), pruneAdminTokensPerCreate)]
	for _, t := range plan {
		if err := tx.DeleteAdminToken(t.ID); err != nil {
			return 0, err
		}
	}
	return len(plan), nil
}

// enrollmentChainEnd is when the last enrollment token that tombstone t
// refuses has expired: each was made before t was revoked with its made
// tokens (nothing is made through a token revoked so), lives at most
// MaxTokenTTL, and never outlives t. One revoked alone is kept as long
// after its revocation, so that it can still be revoked with its made
// tokens. The grace keeps a replica whose clock runs ahead from deleting
// what the others still judge by.
func enrollmentChainEnd(t *store.AdminToken) time.Time {
	end := revokedMadeAt(t).Add(MaxTokenTTL)
	if !t.Expires.IsZero() && t.Expires.Before(end) {
		end = t.Expires
	}
	return end.Add(adminTokenPruneGrace)
}

// revokedMadeAt is when tombstone t was revoked with its made tokens, or
// revoked at all when it was not, or is a record from before flinkpki
// recorded the time apart.
func revokedMadeAt(t *store.AdminToken) time.Time {
	if t.RevokedMadeAt.After(t.Revoked) {
		return t.RevokedMadeAt
	}
	return t.Revoked
}

// callerToken is the record of the administrator token actor called with,
// read in tx: it may have been revoked, or have expired, since the request
// was authenticated.
func (a *Authority) callerToken(tx *store.Txn, actor Actor, now time.Time) (*store.AdminToken, error) {
	rec, err := tx.AdminToken(actor.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: administrator token %s is unknown (revoked, or expired and pruned)", ErrUnauthenticated, actor.ID)
	}
	if err != nil {
		return nil, err
	}
	if why, err := unusable(tx, rec, now); err != nil || why != "" {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: administrator token %s %s", ErrUnauthenticated, actor.ID, why)
	}
	return rec, nil
}

// unusable says why an administrator token record can no longer be used
// ("was revoked at ...", "was made through ...", "expired at ..."), or ""
// when it can.
func unusable(tx *store.Txn, rec *store.AdminToken, now time.Time) (string, error) {
	state, by, err := judgeAdminToken(rec, now, adminTokenIn(tx))
	switch {
	case err != nil:
		return "", err
	case state == AdminTokenRevoked:
		return "was revoked at " + rec.Revoked.UTC().Format(time.RFC3339), nil
	case state == AdminTokenRevokedWith:
		return fmt.Sprintf("was made through administrator token %s, revoked at %s with the tokens made through it", by.ID, by.Revoked.UTC().Format(time.RFC3339)), nil
	case state == AdminTokenExpired:
		return "expired at " + rec.Expires.UTC().Format(time.RFC3339), nil
	}
	return "", nil
}

// judgeAdminToken is the one test of whether an administrator token record
// can be used at now: its state and, for AdminTokenRevokedWith, the token
// whose revocation took it. maker reads a record of its chain (nil for one
// that is gone, which revokes nothing).
func judgeAdminToken(t *store.AdminToken, now time.Time, maker func(id string) (*store.AdminToken, error)) (string, *store.AdminToken, error) {
	if !t.Revoked.IsZero() {
		return AdminTokenRevoked, nil, nil
	}
	if m, err := revokedWith(t.MadeWith, maker); err != nil {
		return "", nil, err
	} else if m != nil {
		return AdminTokenRevokedWith, m, nil
	}
	if !t.Expires.IsZero() && !t.Expires.After(now) {
		return AdminTokenExpired, nil, nil
	}
	return AdminTokenValid, nil, nil
}

// revokedWith answers the token of chain (administrator token IDs, read
// with maker, which answers nil for a record that is gone) that was revoked
// with the tokens made through it, or nil when none was. A record pruned
// since names no revocation: pruning keeps a tombstone while a token it
// refuses may live (pruneAdminTokens, enrollmentChainEnd).
func revokedWith(chain []string, maker func(id string) (*store.AdminToken, error)) (*store.AdminToken, error) {
	for _, id := range chain {
		m, err := maker(id)
		if err != nil {
			return nil, err
		}
		if m != nil && m.RevokedMade {
			return m, nil
		}
	}
	return nil, nil
}

// adminTokenIn reads administrator token id in tx for revokedWith: nil,
// without an error, when its record is gone.
func adminTokenIn(tx *store.Txn) func(id string) (*store.AdminToken, error) {
	return func(id string) (*store.AdminToken, error) {
		m, err := tx.AdminToken(id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		return m, err
	}
}

// Administrator token states, as AdminTokens reports them.
const (
	AdminTokenValid       = "valid"
	AdminTokenExpired     = "expired"
	AdminTokenRevoked     = "revoked"
	AdminTokenRevokedWith = "revoked_with_maker" // made through a token revoked with its made tokens
)

// AdminTokenInfo is an administrator token as listed: its record, without
// the hash, and its state.
type AdminTokenInfo struct {
	*store.AdminToken
	State string
	// RevokedWith names the token whose revocation took this one, for
	// AdminTokenRevokedWith.
	RevokedWith string
}

// adminTokenStates judges every token of all at now (judgeAdminToken).
func adminTokenStates(all []*store.AdminToken, now time.Time) []AdminTokenInfo {
	byID := make(map[string]*store.AdminToken, len(all))
	for _, t := range all {
		byID[t.ID] = t
	}
	maker := func(id string) (*store.AdminToken, error) { return byID[id], nil }
	out := make([]AdminTokenInfo, 0, len(all))
	for _, t := range all {
		state, by, _ := judgeAdminToken(t, now, maker)
		i := AdminTokenInfo{AdminToken: t, State: state}
		if by != nil {
			i.RevokedWith = by.ID
		}
		out = append(out, i)
	}
	return out
}

// AdminTokens lists the administrator tokens (IDs, names, creation and
// expiry times, who made them, their state; only hashes of their secrets
// are stored, and none is returned), revoked ones included.
func (a *Authority) AdminTokens(ctx context.Context) ([]AdminTokenInfo, error) {
	var all []*store.AdminToken
	err := a.st.View(ctx, func(tx *store.Txn) (err error) {
		all, err = tx.AdminTokens()
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, t := range all {
		t.Hash = nil
	}
	return adminTokenStates(all, a.now()), nil
}

// RevokeAdminOptions are the choices of RevokeAdminToken.
type RevokeAdminOptions struct {
	// KeepMade revokes the named token alone: the tokens made through it
	// stay valid.
	KeepMade bool
	// Force revokes even where no token would be left as long-lived as the
	// longest valid now.
	Force bool
}

// RevokeAdminToken revokes an administrator token, so it authenticates no
// further request, and with it every token made through it (unless
// keepMade): a stolen token's revocation takes what was minted with it,
// however many tokens in between, and whatever was revoked alone in
// between, since the chain a token was made through never changes. It is
// one small write: the token's record stays as a tombstone, without its
// hash, which the tokens made through it are judged by (Authenticate). A
// token revoked alone may be revoked again, with its made tokens. It
// answers the IDs revoked, the named one first, and audits the revocation
// once, naming how many it took.
//
// An administrator does not, online, shorten how long the installation can
// be administered by accident: unless opts.Force, the revocation must leave
// a token that lasts as long as the longest-lived of those valid now (one
// that does not expire, if any does not). Since no token outlives the one
// it was made with, tokens that all expire can never make a lasting one,
// and once they have expired only an offline bootstrap makes another. Force
// is for a stolen token that is the longest-lived (audited as forced).
// Offline (actor not an administrator) it is not checked. A refusal
// changes nothing.
func (a *Authority) RevokeAdminToken(ctx context.Context, actor Actor, id string, opts RevokeAdminOptions) ([]string, error) {
	keepMade := opts.KeepMade
	if !token.ValidID(id) {
		return nil, a.Deny(ctx, actor, "", "admin_token.revoke", "invalid", errNotATokenID)
	}
	var revoked []string
	err := a.st.Update(ctx, func(tx *store.Txn) error {
		revoked = nil
		now := a.now()
		root, err := a.revocableAdminToken(tx, actor, id, keepMade, now)
		if err != nil {
			return err
		}
		valid, gone, err := adminRevocation(tx, root, keepMade, now)
		if err != nil {
			return err
		}
		details := map[string]string{"token_id": id, "name": root.Name}
		if actor.Kind == ActorAdmin {
			if err := checkAdminHorizon(valid, gone, id, keepMade); err != nil {
				if !opts.Force {
					return err
				}
				details["forced"] = "true"
			}
		}
		if root.Revoked.IsZero() {
			root.Revoked = now.UTC()
		}
		root.Hash, root.RevokedMade = nil, !keepMade
		if !keepMade {
			root.RevokedMadeAt = now.UTC()
		}
		if err := tx.PutAdminToken(root); err != nil {
			return err
		}
		revoked = []string{id}
		for _, t := range gone {
			if t.ID != id {
				revoked = append(revoked, t.ID)
			}
		}
		if keepMade {
			details["keep_made"] = "true"
		} else {
			details["made"] = strconv.Itoa(len(revoked) - 1)
			if n := len(revoked) - 1; n > 0 {
				details["made_ids"] = strings.Join(revoked[1:min(len(revoked), 1+MaxListedHolders)], ",")
			}
		}
		return a.audit(tx, actor, "", "admin_token.revoke", "ok", "", details)
	})
	if err != nil {
		return nil, a.failed(ctx, actor, "", "admin_token.revoke", err)
	}
	return revoked, nil
}

// revocableAdminToken reads the administrator token id that a revocation
// names. It refuses a revocation that would change nothing (the token was
// revoked with its made tokens already, or at all when keepMade: one
// revoked alone may be revoked again with them), and an administrator
// whose own token no longer authenticates.
func (a *Authority) revocableAdminToken(tx *store.Txn, actor Actor, id string, keepMade bool, now time.Time) (*store.AdminToken, error) {
	root, err := tx.AdminToken(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("administrator token %q %w (flinkpki admin token list)", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if !root.Revoked.IsZero() && (root.RevokedMade || keepMade) {
		return nil, marked{fmt.Errorf("administrator token %q was revoked at %s already", id, root.Revoked.UTC().Format(time.RFC3339)), ErrNotFound}
	}
	if actor.Kind == ActorAdmin {
		if _, err := a.callerToken(tx, actor, now); err != nil {
			return nil, err
		}
	}
	return root, nil
}

// adminRevocation answers the administrator tokens valid now, and those
// the revocation of root takes: root unless it was revoked
// alone before (an expired root too), and, unless keepMade, every token
// made through it. checkAdminHorizon judges what the valid ones leave
// without those.
func adminRevocation(tx *store.Txn, root *store.AdminToken, keepMade bool, now time.Time) (valid, gone []*store.AdminToken, err error) {
	all, err := tx.AdminTokens()
	if err != nil {
		return nil, nil, err
	}
	for _, i := range adminTokenStates(all, now) {
		if i.State == AdminTokenValid {
			valid = append(valid, i.AdminToken)
		}
	}
	if root.Revoked.IsZero() {
		gone = append(gone, root)
	}
	if !keepMade {
		for _, t := range valid {
			if slices.Contains(t.MadeWith, root.ID) {
				gone = append(gone, t)
			}
		}
	}
	return valid, gone, nil
}

// checkAdminHorizon refuses a revocation, by an administrator, that leaves
// no valid token as long-lived as the longest-lived of those valid now.
func checkAdminHorizon(valid, gone []*store.AdminToken, id string, keepMade bool) error {
	forever := time.Unix(1<<62, 0)
	last := func(skip func(*store.AdminToken) bool) time.Time {
		var h time.Time
		for _, t := range valid {
			if skip(t) {
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
	before := last(func(*store.AdminToken) bool { return false })
	after := last(func(t *store.AdminToken) bool {
		return slices.ContainsFunc(gone, func(g *store.AdminToken) bool { return g.ID == t.ID })
	})
	if !after.Before(before) {
		return nil
	}
	made, n := "", 0
	for _, g := range gone {
		if g.ID != id { // the named one is in gone unless it was revoked alone before
			n++
		}
	}
	if n > 0 {
		made = fmt.Sprintf(" with the %d made through it", n)
	}
	left := "leaves no administrator token"
	if !after.IsZero() {
		left = "leaves only administrator tokens that expire by " + after.UTC().Format(time.RFC3339)
	}
	instead := ""
	if keepMade {
		instead = fmt.Sprintf(", or first make a replacement with %s itself (flinkpki admin token create --ttl 0)", id)
	}
	return fmt.Errorf("%w: revoking administrator token %s%s %s, and no token outlives the one that made it, so afterwards only an offline flinkpki admin bootstrap would make another: pass --force to revoke it anyway (a stolen token must go)%s", ErrLastAdmin, id, made, left, instead)
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
