package authority_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/store"
)

// adminToken makes an administrator token as actor and authenticates it,
// answering its bearer string, its actor and its record.
func adminToken(t *testing.T, e *authoritytest.Env, actor authority.Actor, name string, ttl time.Duration) (string, authority.Actor, *store.AdminToken) {
	t.Helper()
	bearer, rec, err := e.Authority.CreateAdminToken(e.Ctx, actor, name, ttl)
	if err != nil {
		t.Fatalf("create administrator token %q: %v", name, err)
	}
	if rec.Hash != nil {
		t.Fatalf("CreateAdminToken answered the secret's hash")
	}
	a, err := authenticate(e, bearer)
	if err != nil {
		t.Fatalf("authenticate the new administrator token %q: %v", name, err)
	}
	if a.Kind != authority.ActorAdmin || a.ID != rec.ID {
		t.Fatalf("the token %q authenticates as %v; want admin:%s", name, a, rec.ID)
	}
	return bearer, a, rec
}

// TestAdministratorTokensExpireAndNeverOutliveTheirMaker: a token with a
// TTL authenticates until it expires, then is refused with when it did and
// what to do; a token made with an expiring token expires no later than
// it, whatever was asked (no short-lived token mints a lasting one); a TTL
// out of range is refused and audited, making nothing.
func TestAdministratorTokensExpireAndNeverOutliveTheirMaker(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	start := e.Clock.Now()
	bearer, short, rec := adminToken(t, e, system, "break-glass", 2*time.Hour)
	if want := start.Add(2 * time.Hour); !rec.Expires.Equal(want) || rec.CreatedBy != "system:test" {
		t.Fatalf("token record: expires %v, made by %q; want %v and system:test", rec.Expires, rec.CreatedBy, want)
	}
	_, _, forever := adminToken(t, e, system, "ops", 0)
	if !forever.Expires.IsZero() {
		t.Fatalf("a token made with TTL 0 expires at %v; want never", forever.Expires)
	}

	// Made with the two-hour token: never past its expiry.
	for _, ttl := range []time.Duration{0, 3 * time.Hour, 365 * 24 * time.Hour} {
		_, _, child := adminToken(t, e, short, "minted", ttl)
		if !child.Expires.Equal(rec.Expires) || child.CreatedBy != "admin:"+rec.ID {
			t.Errorf("TTL %s with a token expiring at %v: expires %v, made by %q; want the maker's expiry and admin:%s", ttl, rec.Expires, child.Expires, child.CreatedBy, rec.ID)
		}
	}
	_, _, child := adminToken(t, e, short, "minted", time.Hour)
	if want := start.Add(time.Hour); !child.Expires.Equal(want) {
		t.Errorf("TTL 1h with a token expiring later: expires %v; want %v", child.Expires, want)
	}

	before := len(e.Audit(""))
	for _, ttl := range []time.Duration{-time.Hour, 30 * time.Second, authority.MaxAdminTokenTTL + time.Hour} {
		if tok, got, err := e.Authority.CreateAdminToken(e.Ctx, system, "bad", ttl); !errors.Is(err, authority.ErrInvalid) || tok != "" || got != nil {
			t.Errorf("TTL %s: %q, %v, %v; want ErrInvalid and no token", ttl, tok, got, err)
		}
	}
	trail := e.Audit("")
	if len(trail) != before+3 || trail[len(trail)-1].Action != "admin_token.create" || trail[len(trail)-1].Outcome == "ok" {
		t.Errorf("refused creations: %d new audit entries, last %+v; want 3 refusals", len(trail)-before, trail[len(trail)-1])
	}
	toks, err := e.Authority.AdminTokens(e.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != 6 {
		t.Errorf("%d administrator tokens stored; want 6 (the refusals made none)", len(toks))
	}

	e.Clock.Add(2*time.Hour - time.Second)
	if _, err := authenticate(e, bearer); err != nil {
		t.Fatalf("a second before its expiry: %v", err)
	}
	e.Clock.Add(time.Second)
	_, err = authenticate(e, bearer)
	if !errors.Is(err, authority.ErrUnauthenticated) || !strings.Contains(err.Error(), "expired at "+rec.Expires.Format(time.RFC3339)) || !strings.Contains(err.Error(), "admin token create") {
		t.Fatalf("at its expiry: %v; want ErrUnauthenticated saying when and what to do", err)
	}
	if strings.Contains(err.Error(), strings.SplitN(bearer, "_", 3)[2]) {
		t.Fatalf("the refusal names the secret: %v", err)
	}
}

// TestRevokingAnAdministratorTokenRevokesWhatWasMadeWithIt: revocation
// takes the tokens made with the token, and theirs, each audited with the
// token whose revocation took it; --keep-made takes the one alone; other
// branches stay; a token revoked cannot make tokens (it was checked a moment
// before, in a request already under way).
func TestRevokingAnAdministratorTokenRevokesWhatWasMadeWithIt(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	_, root, _ := adminToken(t, e, system, "root", 0)
	_, alice, aliceRec := adminToken(t, e, root, "alice", 0)
	aliceCI, _, aliceCIRec := adminToken(t, e, alice, "alice-ci", 0)
	_, ciChild, ciChildRec := adminToken(t, e, alice, "alice-2", 0)
	grandBearer, _, grand := adminToken(t, e, ciChild, "alice-2-job", 0)
	bobBearer, bob, bobRec := adminToken(t, e, root, "bob", 0)

	ids, err := e.Authority.RevokeAdminToken(e.Ctx, root, aliceRec.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{aliceRec.ID, aliceCIRec.ID, ciChildRec.ID, grand.ID}
	if !slices.Equal(ids[:1], want[:1]) || !sameSet(ids, want) {
		t.Fatalf("revoked %v; want alice first, then what was made with her token: %v", ids, want)
	}
	for _, b := range []string{aliceCI, grandBearer} {
		if _, err := authenticate(e, b); !errors.Is(err, authority.ErrUnauthenticated) {
			t.Errorf("a token made with a revoked one still authenticates: %v", err)
		}
	}
	if _, err := authenticate(e, bobBearer); err != nil {
		t.Errorf("another branch was revoked too: %v", err)
	}
	made := 0
	for _, a := range e.Audit("") {
		if a.Action == "admin_token.revoke" && a.Outcome == "ok" {
			if id := a.Details["token_id"]; id != aliceRec.ID {
				made++
				if a.Details["made_with"] != aliceRec.ID {
					t.Errorf("revocation of %s audited without made_with %s: %v", id, aliceRec.ID, a.Details)
				}
			}
		}
	}
	if made != 3 {
		t.Errorf("%d revocations audited as made with alice's token; want 3", made)
	}
	if _, _, err := e.Authority.CreateAdminToken(e.Ctx, alice, "late", 0); !errors.Is(err, authority.ErrUnauthenticated) {
		t.Errorf("a revoked token made a token: %v", err)
	}

	_, _, bobCI := adminToken(t, e, bob, "bob-ci", 0)
	ids, err = e.Authority.RevokeAdminToken(e.Ctx, root, bobRec.ID, true)
	if err != nil || !slices.Equal(ids, []string{bobRec.ID}) {
		t.Fatalf("revoke bob keeping what was made: %v, %v; want bob alone", ids, err)
	}
	toks, err := e.Authority.AdminTokens(e.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, tk := range toks {
		left = append(left, tk.Name)
	}
	if !sameSet(left, []string{"root", "bob-ci"}) {
		t.Errorf("tokens left: %v; want root and bob-ci", left)
	}
	_ = bobCI
}

// TestTheLastAdministratorTokenIsNotRevokedOnline: an administrator may not
// revoke, through the server, the last administrator tokens that have not
// expired (expired ones do not count): nobody could call the server after.
// The refusal changes nothing and is audited. Offline (a stopped server's
// store, where bootstrap can make a new one) it is allowed.
func TestTheLastAdministratorTokenIsNotRevokedOnline(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	_, root, rootRec := adminToken(t, e, system, "root", 0)
	_, _, old := adminToken(t, e, system, "old", time.Hour)
	_, _, child := adminToken(t, e, root, "child", 0)
	e.Clock.Add(time.Hour)

	for _, keep := range []bool{false, true} {
		target := rootRec.ID
		if keep {
			// root's child alone would leave root.
			target = child.ID
		}
		ids, err := e.Authority.RevokeAdminToken(e.Ctx, root, target, keep)
		if keep {
			if err != nil {
				t.Fatalf("revoke the child, root left: %v", err)
			}
			continue
		}
		if !errors.Is(err, authority.ErrLastAdmin) || ids != nil || !strings.Contains(err.Error(), "with the 1 made with it") || !strings.Contains(err.Error(), "admin token create") {
			t.Fatalf("revoke root and its child, only an expired token left: %v, %v; want ErrLastAdmin saying what to do", ids, err)
		}
		toks, _ := e.Authority.AdminTokens(e.Ctx)
		if len(toks) != 3 {
			t.Fatalf("the refusal changed the tokens: %d left", len(toks))
		}
		last := e.Audit("")[len(e.Audit(""))-1]
		if last.Action != "admin_token.revoke" || last.Outcome != "denied" || last.Details["reason"] != "failed_precondition" {
			t.Errorf("refusal audited as %+v", last)
		}
	}
	if _, err := e.Authority.RevokeAdminToken(e.Ctx, root, rootRec.ID, false); !errors.Is(err, authority.ErrLastAdmin) {
		t.Fatalf("revoke the last one: %v; want ErrLastAdmin", err)
	}
	ids, err := e.Authority.RevokeAdminToken(e.Ctx, system, rootRec.ID, false)
	if err != nil || !slices.Equal(ids, []string{rootRec.ID}) {
		t.Fatalf("offline revocation of the last token: %v, %v", ids, err)
	}
	_ = old
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
