package authority_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/internal/etcdtest"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/etcd"
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

	ids, err := e.Authority.RevokeAdminToken(e.Ctx, root, aliceRec.ID, authority.RevokeAdminOptions{})
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
	// One audit entry for the revocation, naming what it took.
	var entries []*store.AuditEntry
	for _, a := range e.Audit("") {
		if a.Action == "admin_token.revoke" && a.Outcome == "ok" {
			entries = append(entries, a)
		}
	}
	if len(entries) != 1 || entries[0].Details["token_id"] != aliceRec.ID || entries[0].Details["made"] != "3" || !sameSet(strings.Split(entries[0].Details["made_ids"], ","), want[1:]) {
		t.Errorf("the revocation is audited as %+v; want one entry for alice's token, made=3 naming the three", entries)
	}
	if _, _, err := e.Authority.CreateAdminToken(e.Ctx, alice, "late", 0); !errors.Is(err, authority.ErrUnauthenticated) {
		t.Errorf("a revoked token made a token: %v", err)
	}

	_, _, bobCI := adminToken(t, e, bob, "bob-ci", 0)
	ids, err = e.Authority.RevokeAdminToken(e.Ctx, root, bobRec.ID, authority.RevokeAdminOptions{KeepMade: true})
	if err != nil || !slices.Equal(ids, []string{bobRec.ID}) {
		t.Fatalf("revoke bob keeping what was made: %v, %v; want bob alone", ids, err)
	}
	toks, err := e.Authority.AdminTokens(e.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Revoked tokens are listed as such, with the tokens made through a
	// token revoked with them.
	var left []string
	states := map[string]string{}
	for _, tk := range toks {
		if tk.Hash != nil {
			t.Errorf("AdminTokens answered the hash of %s", tk.Name)
		}
		states[tk.Name] = tk.State
		if tk.State == authority.AdminTokenValid {
			left = append(left, tk.Name)
		}
	}
	if !sameSet(left, []string{"root", "bob-ci"}) {
		t.Errorf("valid tokens: %v; want root and bob-ci", left)
	}
	if states["alice"] != authority.AdminTokenRevoked || states["bob"] != authority.AdminTokenRevoked || states["alice-2-job"] != authority.AdminTokenRevokedWith {
		t.Errorf("states %v; want alice and bob revoked, alice-2-job revoked with its maker", states)
	}
	_ = bobCI
}

// TestAnOnlineRevocationDoesNotShortenHowLongTheServerCanBeAdministeredUnlessForced:
// no token outlives the one it was made with, so once only expiring tokens
// are left, nothing but an offline bootstrap makes a lasting one. Through
// the server, a revocation that leaves no token as long-lived as the
// longest valid now is refused unless forced: not the last token that does
// not expire (with what was made through it, or alone), not with a token
// that has seconds left (which would then lock everyone out), and, where
// all tokens expire, not the one that expires last. Expired tokens count
// for nothing. The refusal says what to do, changes nothing and is
// audited; forced, the revocation is audited as forced; offline it is not
// checked. A thief whose token is the last that does not expire (it
// revoked the break-glass token, which it may, as its own lasts as long)
// is revoked with force.
func TestAnOnlineRevocationDoesNotShortenHowLongTheServerCanBeAdministeredUnlessForced(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	_, root, rootRec := adminToken(t, e, system, "root", 0)
	_, _, old := adminToken(t, e, system, "old", time.Hour)
	_, short, _ := adminToken(t, e, root, "short", time.Minute)
	_, _, child := adminToken(t, e, root, "child", 0)
	e.Clock.Add(30 * time.Second)

	revoke := func(who authority.Actor, id string, opts authority.RevokeAdminOptions) ([]string, error) {
		return e.Authority.RevokeAdminToken(e.Ctx, who, id, opts)
	}
	refused := func(who authority.Actor, id string, opts authority.RevokeAdminOptions, want string) {
		t.Helper()
		before, _ := e.Authority.AdminTokens(e.Ctx)
		ids, err := revoke(who, id, opts)
		if !errors.Is(err, authority.ErrLastAdmin) || ids != nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "pass --force to revoke it anyway") {
			t.Fatalf("revoke %s (%+v): %v, %v; want ErrLastAdmin saying %q and --force", id, opts, ids, err, want)
		}
		after, _ := e.Authority.AdminTokens(e.Ctx)
		for i := range after {
			if after[i].State != before[i].State {
				t.Fatalf("the refusal changed %s: %s, then %s", after[i].Name, before[i].State, after[i].State)
			}
		}
		last := e.Audit("")[len(e.Audit(""))-1]
		if last.Action != "admin_token.revoke" || last.Outcome != "denied" || last.Details["reason"] != "failed_precondition" {
			t.Errorf("refusal audited as %+v", last)
		}
	}
	// root and child do not expire; short has 30 s left, old half an hour.
	refused(short, rootRec.ID, authority.RevokeAdminOptions{}, "with the 2 made through it leaves only administrator tokens that expire by")
	if _, err := revoke(short, rootRec.ID, authority.RevokeAdminOptions{KeepMade: true}); err != nil {
		t.Fatalf("revoke root alone, child (no expiry) left: %v", err)
	}
	refused(short, child.ID, authority.RevokeAdminOptions{KeepMade: true}, "or first make a replacement with "+child.ID+" itself")
	e.Clock.Add(time.Hour) // short and old have expired
	if _, err := revoke(short, old.ID, authority.RevokeAdminOptions{}); !errors.Is(err, authority.ErrUnauthenticated) {
		t.Fatalf("a call with an expired token: %v; want ErrUnauthenticated", err)
	}
	_, second, _ := adminToken(t, e, system, "bootstrap-2", 0)
	ids, err := revoke(second, child.ID, authority.RevokeAdminOptions{})
	if err != nil || !slices.Equal(ids, []string{child.ID}) {
		t.Fatalf("revoke child with another token that does not expire left: %v, %v", ids, err)
	}
	refused(second, second.ID, authority.RevokeAdminOptions{}, "leaves no administrator token")
	ids, err = e.Authority.RevokeAdminToken(e.Ctx, system, second.ID, authority.RevokeAdminOptions{})
	if err != nil || !slices.Equal(ids, []string{second.ID}) {
		t.Fatalf("offline revocation of the last token: %v, %v", ids, err)
	}

	// Where every token expires, the one that expires last stays.
	f := authoritytest.New(t)
	_, a, aRec := adminToken(t, f, system, "a", 48*time.Hour)
	_, _, bRec := adminToken(t, f, system, "b", 24*time.Hour)
	if _, err := f.Authority.RevokeAdminToken(f.Ctx, a, bRec.ID, authority.RevokeAdminOptions{}); err != nil {
		t.Fatalf("revoke the token that expires first: %v", err)
	}
	if _, err := f.Authority.RevokeAdminToken(f.Ctx, a, aRec.ID, authority.RevokeAdminOptions{}); !errors.Is(err, authority.ErrLastAdmin) || !strings.Contains(err.Error(), "leaves no administrator token") {
		t.Fatalf("revoke the token that expires last: %v", err)
	}

	// The thief: boot makes break-glass (no expiry), which makes alice
	// (90 days); boot also made a CI token, which is stolen. boot is
	// revoked alone, as the deploy README says. The thief revokes
	// break-glass alone (its own token lasts as long), and alice can then
	// revoke the thief only with force.
	g := authoritytest.New(t)
	_, boot, bootRec := adminToken(t, g, system, "boot", 0)
	_, breakGlass, bgRec := adminToken(t, g, boot, "break-glass", 0)
	_, alice, _ := adminToken(t, g, breakGlass, "alice", 90*24*time.Hour)
	stolenBearer, thief, stolenRec := adminToken(t, g, boot, "ci", 0)
	if _, err := g.Authority.RevokeAdminToken(g.Ctx, alice, bootRec.ID, authority.RevokeAdminOptions{KeepMade: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Authority.RevokeAdminToken(g.Ctx, thief, bgRec.ID, authority.RevokeAdminOptions{KeepMade: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Authority.RevokeAdminToken(g.Ctx, alice, stolenRec.ID, authority.RevokeAdminOptions{}); !errors.Is(err, authority.ErrLastAdmin) {
		t.Fatalf("revoke the thief without force: %v; want ErrLastAdmin", err)
	}
	if _, err := g.Authority.RevokeAdminToken(g.Ctx, alice, stolenRec.ID, authority.RevokeAdminOptions{Force: true}); err != nil {
		t.Fatalf("revoke the thief with force: %v", err)
	}
	if _, err := authenticate(g, stolenBearer); !errors.Is(err, authority.ErrUnauthenticated) {
		t.Fatalf("the stolen token still authenticates: %v", err)
	}
	trail := g.Audit("")
	if last := trail[len(trail)-1]; last.Action != "admin_token.revoke" || last.Outcome != "ok" || last.Details["forced"] != "true" {
		t.Errorf("the forced revocation is audited as %+v", last)
	}
}

// TestAStolenTokensChainCannotDodgeItsRevocation: a token made through
// several others is revoked with any of them, even after one in between
// was revoked alone (by the token it made, say): X made with the stolen R,
// Y made with X, Y revokes X keeping what X made, and R's revocation still
// takes Y. A chain deeper than MaxAdminTokenChain is refused; a token that
// was revoked, or has expired, since its request was authenticated makes
// nothing.
func TestAStolenTokensChainCannotDodgeItsRevocation(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	_, keeper, _ := adminToken(t, e, system, "keeper", 0)
	_, r, rRec := adminToken(t, e, system, "stolen", 0)
	_, x, xRec := adminToken(t, e, r, "x", 0)
	yBearer, y, yRec := adminToken(t, e, x, "y", 0)
	if !slices.Equal(yRec.MadeWith, []string{rRec.ID, xRec.ID}) {
		t.Fatalf("y made through %v; want [%s %s]", yRec.MadeWith, rRec.ID, xRec.ID)
	}
	if ids, err := e.Authority.RevokeAdminToken(e.Ctx, y, xRec.ID, authority.RevokeAdminOptions{KeepMade: true}); err != nil || !slices.Equal(ids, []string{xRec.ID}) {
		t.Fatalf("y revokes x alone: %v, %v", ids, err)
	}
	ids, err := e.Authority.RevokeAdminToken(e.Ctx, keeper, rRec.ID, authority.RevokeAdminOptions{})
	if err != nil || !slices.Equal(ids, []string{rRec.ID, yRec.ID}) {
		t.Fatalf("revoke the stolen token: %v, %v; want it and y", ids, err)
	}
	if _, err := authenticate(e, yBearer); !errors.Is(err, authority.ErrUnauthenticated) {
		t.Fatalf("y still authenticates: %v", err)
	}
	if _, err := e.Authority.RevokeAdminToken(e.Ctx, keeper, rRec.ID, authority.RevokeAdminOptions{}); !errors.Is(err, authority.ErrNotFound) || !strings.Contains(err.Error(), "was revoked at") {
		t.Fatalf("revoke the stolen token again: %v; want already revoked", err)
	}

	// A token revoked alone (by a token made through it, laundering its
	// made tokens) is revoked again with them: the chains never change.
	_, r2, r2Rec := adminToken(t, e, keeper, "stolen-2", 0)
	z1Bearer, z1, _ := adminToken(t, e, r2, "z1", 0)
	z2Bearer, _, z2Rec := adminToken(t, e, z1, "z2", 0)
	if _, err := e.Authority.RevokeAdminToken(e.Ctx, z1, r2Rec.ID, authority.RevokeAdminOptions{KeepMade: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := authenticate(e, z2Bearer); err != nil {
		t.Fatalf("a token made through one revoked alone: %v; want it valid", err)
	}
	ids, err = e.Authority.RevokeAdminToken(e.Ctx, keeper, r2Rec.ID, authority.RevokeAdminOptions{})
	if err != nil || ids[0] != r2Rec.ID || !sameSet(ids[1:], []string{z1.ID, z2Rec.ID}) {
		t.Fatalf("revoke the token revoked alone again, with what it made: %v, %v", ids, err)
	}
	for _, b := range []string{z1Bearer, z2Bearer} {
		if _, err := authenticate(e, b); !errors.Is(err, authority.ErrUnauthenticated) {
			t.Errorf("a token made through %s still authenticates: %v", r2Rec.ID, err)
		}
	}

	// The chain's bound.
	maker := keeper
	for i := range authority.MaxAdminTokenChain {
		_, next, rec := adminToken(t, e, maker, fmt.Sprintf("link-%d", i), 0)
		if len(rec.MadeWith) != i+1 {
			t.Fatalf("link %d made through %d tokens", i, len(rec.MadeWith))
		}
		maker = next
	}
	if _, _, err := e.Authority.CreateAdminToken(e.Ctx, maker, "too-deep", 0); !errors.Is(err, authority.ErrInvalid) || !strings.Contains(err.Error(), "nearer the first") {
		t.Fatalf("a token past the chain's bound: %v", err)
	}

	// Revoked or expired since its request was authenticated.
	if _, _, err := e.Authority.CreateAdminToken(e.Ctx, x, "late", 0); !errors.Is(err, authority.ErrUnauthenticated) {
		t.Errorf("a revoked token made a token: %v", err)
	}
	_, brief, _ := adminToken(t, e, keeper, "brief", time.Minute)
	e.Clock.Add(time.Minute)
	if tok, rec, err := e.Authority.CreateAdminToken(e.Ctx, brief, "born-expired", 0); !errors.Is(err, authority.ErrUnauthenticated) || tok != "" || rec != nil {
		t.Errorf("a token that has expired made one: %q, %+v, %v", tok, rec, err)
	}
}

// TestRevokingManyTokensOnEtcdIsOneSmallWrite: a token through which more
// tokens were made than one etcd transaction may write (--max-txn-ops, 128
// by default) is revoked in one transaction that writes its tombstone and
// one audit entry: every token made through it is refused from then on.
func TestRevokingManyTokensOnEtcdIsOneSmallWrite(t *testing.T) {
	c := etcdtest.New(t, 1, "--max-txn-ops", "128")
	e := authoritytest.New(t, authoritytest.WithBackend(func(ctx context.Context) (store.Backend, error) {
		return etcd.Open(ctx, etcd.Config{Endpoints: c.Endpoints(), Prefix: "/tokens/"})
	}))
	_, keeper, _ := adminToken(t, e, system, "keeper", 0)
	_, r, rRec := adminToken(t, e, system, "prolific", 0)
	want := []string{rRec.ID}
	var bearers []string
	maker := r
	for i := range 130 {
		b, next, rec := adminToken(t, e, maker, fmt.Sprintf("m-%d", i), 0)
		want, bearers = append(want, rec.ID), append(bearers, b)
		if i%40 == 39 {
			maker = next // a few levels deep
		}
	}
	ids, err := e.Authority.RevokeAdminToken(e.Ctx, keeper, rRec.ID, authority.RevokeAdminOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ids[0] != rRec.ID || !sameSet(ids, want) {
		t.Fatalf("revoked %d tokens, first %s; want the %d, the named one first", len(ids), ids[0], len(want))
	}
	for _, b := range bearers {
		if _, err := authenticate(e, b); !errors.Is(err, authority.ErrUnauthenticated) || !strings.Contains(err.Error(), "was made through administrator token "+rRec.ID) {
			t.Fatalf("a token made through the revoked one: %v", err)
		}
	}
	toks, err := e.Authority.AdminTokens(e.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	valid := 0
	for _, tk := range toks {
		if tk.State == authority.AdminTokenValid {
			valid++
		}
	}
	if valid != 1 {
		t.Fatalf("%d valid tokens left; want the keeper", valid)
	}
	revocations := 0
	for _, a := range e.Audit("") {
		if a.Action == "admin_token.revoke" && a.Outcome == "ok" {
			revocations++
			if a.Details["made"] != "130" {
				t.Errorf("the revocation audits made=%s; want 130", a.Details["made"])
			}
		}
	}
	if revocations != 1 {
		t.Errorf("%d revocations audited; want 1", revocations)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
