package authority_test

import (
	"errors"
	"fmt"
	"maps"
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

// revokeAdmin revokes administrator token id as by, with opts, and fails
// the test when it cannot.
func revokeAdmin(t *testing.T, e *authoritytest.Env, by authority.Actor, id string, opts authority.RevokeAdminOptions) {
	t.Helper()
	if _, err := e.Authority.RevokeAdminToken(e.Ctx, by, id, opts); err != nil {
		t.Fatalf("revoke administrator token %s: %v", id, err)
	}
}

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
	aliceBearer, alice, aliceRec := adminToken(t, e, root, "alice", 0)
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
	// A revoked token's ID with a made-up secret tells no more than an ID
	// that never existed: the tombstone keeps no hash to check it against.
	id := aliceRec.ID
	secret := aliceBearer[strings.LastIndex(aliceBearer, "_")+1:]
	forged := strings.Replace(aliceBearer, secret, strings.Repeat("A", len(secret)), 1)
	unknown := strings.Replace(forged, id, strings.Repeat("a", len(id)), 1)
	_, errForged := authenticate(e, forged)
	_, errUnknown := authenticate(e, unknown)
	if errForged == nil || errUnknown == nil ||
		strings.ReplaceAll(errForged.Error(), id, "ID") != strings.ReplaceAll(errUnknown.Error(), strings.Repeat("a", len(id)), "ID") {
		t.Errorf("a revoked token's ID with a made-up secret is answered %q, an unknown ID %q: want the same", errForged, errUnknown)
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

	// Revoked tokens are listed as such, with the tokens made through a
	// token revoked with them, and no hash.
	states := func() map[string]string {
		t.Helper()
		toks, err := e.Authority.AdminTokens(e.Ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, tk := range toks {
			if tk.Hash != nil {
				t.Errorf("AdminTokens answered the hash of %s", tk.Name)
			}
			m[tk.Name] = tk.State
		}
		return m
	}
	want2 := map[string]string{"root": "valid", "bob": "valid", "alice": "revoked", "alice-ci": "revoked_with_maker", "alice-2": "revoked_with_maker", "alice-2-job": "revoked_with_maker"}
	if got := states(); !maps.Equal(got, want2) {
		t.Errorf("states %v; want %v", got, want2)
	}

	// The next token made prunes what can never matter again: the tokens
	// made through alice's (audited as pruned). Alice's tombstone stays
	// while an enrollment token made through it may still be valid (a
	// month: TestATombstoneStaysWhileEnrollmentTokensItRefusesMayLive).
	// Bob's tombstone, revoked alone, stays while bob-ci names it.
	_, _, _ = adminToken(t, e, bob, "bob-ci", 0)
	if last := e.Audit("")[len(e.Audit(""))-1]; last.Action != "admin_token.create" || last.Details["pruned"] != "3" {
		t.Errorf("the create after the revocation is audited as %+v; want pruned=3", last)
	}
	ids, err = e.Authority.RevokeAdminToken(e.Ctx, root, bobRec.ID, authority.RevokeAdminOptions{KeepMade: true})
	if err != nil || !slices.Equal(ids, []string{bobRec.ID}) {
		t.Fatalf("revoke bob keeping what was made: %v, %v; want bob alone", ids, err)
	}
	_, _, _ = adminToken(t, e, root, "later", 0)
	want3 := map[string]string{"root": "valid", "alice": "revoked", "bob": "revoked", "bob-ci": "valid", "later": "valid"}
	if got := states(); !maps.Equal(got, want3) {
		t.Errorf("states %v; want %v", got, want3)
	}
	// Revoked again, with what it made: bob-ci goes at the next create;
	// the tombstones, once no enrollment token they refuse can be valid.
	revokeAdmin(t, e, root, bobRec.ID, authority.RevokeAdminOptions{})
	_, _, _ = adminToken(t, e, root, "last", 0)
	want4 := map[string]string{"root": "valid", "alice": "revoked", "bob": "revoked", "later": "valid", "last": "valid"}
	if got := states(); !maps.Equal(got, want4) {
		t.Errorf("states %v; want %v", got, want4)
	}
	e.Clock.Add(authority.MaxTokenTTL + 25*time.Hour)
	_, _, _ = adminToken(t, e, root, "a-month-on", 0)
	want5 := map[string]string{"root": "valid", "later": "valid", "last": "valid", "a-month-on": "valid"}
	if got := states(); !maps.Equal(got, want5) {
		t.Errorf("a month on: states %v; want %v", got, want5)
	}
}

// TestPruningNeverRevivesATokenMadeThroughARevokedOne: a create prunes at
// most pruneAdminTokensPerCreate dead records; when there are more, a
// tombstone goes only after every record naming it, so a pass cut short
// never leaves a token whose revoked maker is gone (which would make it
// valid again). Token IDs are random, so where the tombstone sorts among
// the records varies: five installations make a pass that would reach it
// early all but certain.
func TestPruningNeverRevivesATokenMadeThroughARevokedOne(t *testing.T) {
	t.Parallel()
	for inst := range 5 {
		e := authoritytest.New(t)
		_, keeper, _ := adminToken(t, e, system, "keeper", 0)
		_, r, rRec := adminToken(t, e, system, "r", 0)
		var bearers []string
		for i := range 100 {
			b, _, _ := adminToken(t, e, r, fmt.Sprintf("m-%d", i), 0)
			bearers = append(bearers, b)
		}
		revokeAdmin(t, e, keeper, rRec.ID, authority.RevokeAdminOptions{})
		for round := range 3 {
			adminToken(t, e, keeper, fmt.Sprintf("after-%d", round), 0)
			toks, err := e.Authority.AdminTokens(e.Ctx)
			if err != nil {
				t.Fatal(err)
			}
			made, tombstone := 0, false
			for _, tk := range toks {
				if strings.HasPrefix(tk.Name, "m-") {
					made++
				}
				tombstone = tombstone || tk.ID == rRec.ID
			}
			if made > 0 && !tombstone {
				t.Fatalf("installation %d, prune %d: %d tokens made through the revoked one are left, its tombstone is not", inst, round+1, made)
			}
			for _, b := range bearers {
				if _, err := authenticate(e, b); !errors.Is(err, authority.ErrUnauthenticated) {
					t.Fatalf("installation %d, prune %d: a token made through the revoked one authenticates: %v", inst, round+1, err)
				}
			}
		}
		// The tombstone stays while an enrollment token made through it may
		// be valid.
		e.Clock.Add(authority.MaxTokenTTL + 25*time.Hour)
		adminToken(t, e, keeper, "a-month-on", 0)
		toks, err := e.Authority.AdminTokens(e.Ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(toks) != 5 {
			t.Errorf("installation %d: %d records after four prunes, a month apart; want the keeper and its four", inst, len(toks))
		}
	}
}

// TestAdministratorTokensAreBounded: a server keeps at most MaxAdminTokens
// administrator token records that can still matter (valid tokens, and
// revoked ones valid tokens were made through), so their listing stays one
// answer; past that a token made online is refused, audited, until some
// are revoked. Offline bootstrap, the way back, is not bounded.
func TestAdministratorTokensAreBounded(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	_, admin, _ := adminToken(t, e, system, "admin", 0)
	var last *store.AdminToken
	for i := range authority.MaxAdminTokens - 1 {
		_, rec, err := e.Authority.CreateAdminToken(e.Ctx, system, fmt.Sprintf("t-%d", i), time.Hour)
		if err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
		last = rec
	}
	if _, _, err := e.Authority.CreateAdminToken(e.Ctx, admin, "one-too-many", 0); !errors.Is(err, authority.ErrInvalid) || !strings.Contains(err.Error(), "the most it keeps") {
		t.Fatalf("a token past the bound: %v", err)
	}
	if trail := e.Audit(""); trail[len(trail)-1].Action != "admin_token.create" || trail[len(trail)-1].Outcome != "denied" {
		t.Errorf("the refusal is audited as %+v", trail[len(trail)-1])
	}
	if _, _, err := e.Authority.CreateAdminToken(e.Ctx, system, "bootstrap", 0); err != nil {
		t.Fatalf("offline bootstrap past the bound: %v", err)
	}
	revokeAdmin(t, e, admin, last.ID, authority.RevokeAdminOptions{})
	_, _, err := e.Authority.CreateAdminToken(e.Ctx, admin, "still-full", 0)
	if !errors.Is(err, authority.ErrInvalid) {
		t.Fatalf("one revoked of 1,001 records: %v; want still refused", err)
	}
	// Expired tokens go a day after their expiry (a replica whose clock
	// runs ahead must not delete what the others still take), and with
	// them the room.
	e.Clock.Add(time.Hour + 25*time.Hour)
	if _, _, err := e.Authority.CreateAdminToken(e.Ctx, admin, "room-again", 0); err != nil {
		t.Fatalf("after the expired tokens' grace: %v", err)
	}
}

// TestAClockAheadDeletesNoTokenTheOthersStillTake: records of expired
// tokens are pruned a day after their expiry, so a create on a replica (or
// an admin bootstrap from a laptop) whose clock runs up to a day ahead
// deletes no token the servers still take.
func TestAClockAheadDeletesNoTokenTheOthersStillTake(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	bearer, _, _ := adminToken(t, e, system, "ci", 12*time.Hour)
	e.Clock.Add(24 * time.Hour) // the laptop
	if _, _, err := e.Authority.CreateAdminToken(e.Ctx, system, "break-glass", 0); err != nil {
		t.Fatal(err)
	}
	e.Clock.Add(-24 * time.Hour) // the servers
	if _, err := authenticate(e, bearer); err != nil {
		t.Fatalf("a token valid for 12 more hours on the servers: %v", err)
	}
}

// TestPruningKeepsEveryNamedTombstone: 1,000 valid tokens each made
// through 16 tokens revoked alone: no tombstone can go, and a create (here
// offline, as the bound refuses one online) keeps them all. Its time is
// logged, not asserted: the pruning counts the records naming each
// tombstone once (it compared every tombstone with every record, 4 s here,
// in the write transaction that blocks every other write on bbolt; about
// 60 ms since).
func TestPruningKeepsEveryNamedTombstone(t *testing.T) {
	e := authoritytest.New(t)
	now := e.Clock.Now().UTC()
	id := func(i int) string { return fmt.Sprintf("%026d", i) }
	n := 0
	err := e.Store.Update(e.Ctx, func(tx *store.Txn) error {
		for leaf := range authority.MaxAdminTokens {
			var chain []string
			for range authority.MaxAdminTokenChain {
				tid := id(n)
				n++
				if err := tx.PutAdminToken(&store.AdminToken{ID: tid, Name: "tombstone", Created: now, MadeWith: slices.Clone(chain), Revoked: now}); err != nil {
					return err
				}
				chain = append(chain, tid)
			}
			lid := id(n)
			n++
			if err := tx.PutAdminToken(&store.AdminToken{ID: lid, Hash: []byte("x"), Name: fmt.Sprintf("leaf%d", leaf), Created: now, MadeWith: chain}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, _, err := e.Authority.CreateAdminToken(e.Ctx, system, "one-more", 0); err != nil {
		t.Fatal(err)
	}
	t.Logf("one create over %d records took %s", n, time.Since(start))
	toks, err := e.Authority.AdminTokens(e.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) != n+1 {
		t.Errorf("%d records after the create; want all %d kept and the new one", len(toks), n)
	}
}

// TestRevokingManyTokensOnEtcdIsOneSmallWrite: a token through which more
// tokens were made than one etcd transaction may write (--max-txn-ops, 128
// by default) is revoked in one transaction that writes its tombstone and
// one audit entry: every token made through it is refused from then on.
func TestRevokingManyTokensOnEtcdIsOneSmallWrite(t *testing.T) {
	c := etcdtest.New(t, 1, "--max-txn-ops", "128")
	e := authoritytest.New(t, onEtcd(c, etcd.Config{Prefix: "/tokens/"}))
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
