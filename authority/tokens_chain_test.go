package authority_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
)

// listedTokens answers the IDs ListTokens lists for cluster.
func listedTokens(t *testing.T, e *authoritytest.Env, cluster string) []string {
	t.Helper()
	toks, _, err := e.Authority.ListTokens(e.Ctx, cluster, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tok := range toks {
		ids = append(ids, tok.ID)
	}
	return ids
}

// hasAdminRecord reports whether the store keeps the record of
// administrator token id (valid, expired or a tombstone).
func hasAdminRecord(t *testing.T, e *authoritytest.Env, id string) bool {
	t.Helper()
	all, err := e.Authority.AdminTokens(e.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(all, func(i authority.AdminTokenInfo) bool { return i.ID == id })
}

// TestEnrollmentTokensGoWithTheAdministratorTokenThatMadeThem: an
// enrollment token records the administrator tokens it was made through
// and never outlives its maker, so a stolen administrator token's
// revocation (with the tokens made through it, the default) takes the
// enrollment tokens minted with it too, however many administrator tokens
// in between; one revoked alone (--keep-made) leaves them. A revoked one is
// refused with which administrator token took it, and no longer listed.
func TestEnrollmentTokensGoWithTheAdministratorTokenThatMadeThem(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders"})
	start := e.Clock.Now()
	_, root, rootRec := adminToken(t, e, system, "root", 0)
	_, mid, midRec := adminToken(t, e, root, "mid", 12*time.Hour)

	// Made with the 12-hour token: never past its expiry.
	midBearer, midTok, err := e.Authority.CreateToken(e.Ctx, mid, "orders", "taskmanager", authority.MaxTokenTTL, 100)
	if err != nil {
		t.Fatal(err)
	}
	if want := start.Add(12 * time.Hour); !midTok.Expires.Equal(want) || !slices.Equal(midTok.MadeWith, []string{rootRec.ID, midRec.ID}) {
		t.Fatalf("enrollment token made with a 12-hour administrator token: expires %v, made with %v; want %v and [%s %s]", midTok.Expires, midTok.MadeWith, want, rootRec.ID, midRec.ID)
	}
	rootBearer, rootTok, err := e.Authority.CreateToken(e.Ctx, root, "orders", "taskmanager", time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := start.Add(time.Hour); !rootTok.Expires.Equal(want) || !slices.Equal(rootTok.MadeWith, []string{rootRec.ID}) {
		t.Fatalf("enrollment token made with a lasting administrator token: expires %v, made with %v; want %v and [%s]", rootTok.Expires, rootTok.MadeWith, want, rootRec.ID)
	}
	// Made offline (a system actor): no chain to go with.
	_, sysTok, err := e.Authority.CreateToken(e.Ctx, system, "orders", "taskmanager", time.Hour, 1)
	if err != nil || len(sysTok.MadeWith) != 0 {
		t.Fatalf("enrollment token made by the system: made with %v (%v), want none", sysTok.MadeWith, err)
	}

	// Revoked alone, mid leaves the enrollment token it made.
	revokeAdmin(t, e, root, midRec.ID, authority.RevokeAdminOptions{KeepMade: true})
	if _, err := authenticate(e, midBearer); err != nil {
		t.Fatalf("the enrollment token of an administrator token revoked alone: %v, want it still valid", err)
	}

	// Revoked with what was made through it, root takes every enrollment
	// token made with it or with mid, and nothing else.
	revokeAdmin(t, e, system, rootRec.ID, authority.RevokeAdminOptions{})
	for name, bearer := range map[string]string{"made with mid": midBearer, "made with root": rootBearer} {
		_, err := authenticate(e, bearer)
		if !errors.Is(err, authority.ErrUnauthenticated) || !strings.Contains(err.Error(), "was made through administrator token "+rootRec.ID+", revoked with the tokens made through it") {
			t.Errorf("enrollment token %s after root was revoked with its made tokens: %v, want it refused naming root", name, err)
		}
	}
	if ids := listedTokens(t, e, "orders"); !slices.Equal(ids, []string{sysTok.ID}) {
		t.Errorf("listed after the revocation: %v, want only the system's token %s", ids, sysTok.ID)
	}
}

// TestATombstoneStaysWhileEnrollmentTokensItRefusesMayLive: an
// administrator token's tombstone is what refuses the enrollment tokens
// made through it, so it is not pruned while one of them may still be
// valid (an enrollment token lives at most MaxTokenTTL), even when no
// administrator token names it any more; after that it goes.
func TestATombstoneStaysWhileEnrollmentTokensItRefusesMayLive(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders"})
	_, keeper, _ := adminToken(t, e, system, "keeper", 0)
	_, stolen, stolenRec := adminToken(t, e, system, "stolen", 0)
	bearer, _, err := e.Authority.CreateToken(e.Ctx, stolen, "orders", "jobmanager", authority.MaxTokenTTL, 1)
	if err != nil {
		t.Fatal(err)
	}
	revokeAdmin(t, e, keeper, stolenRec.ID, authority.RevokeAdminOptions{})
	tombstone := func() bool { return hasAdminRecord(t, e, stolenRec.ID) }
	// Each administrator token made prunes what can go. The day of grace
	// keeps a replica whose clock runs ahead from pruning what the others
	// still judge by.
	e.Clock.Add(authority.MaxTokenTTL - time.Hour)
	adminToken(t, e, keeper, "later", 0)
	if !tombstone() {
		t.Fatal("the tombstone was pruned while the enrollment token made through it is still unexpired")
	}
	if _, err := authenticate(e, bearer); !errors.Is(err, authority.ErrUnauthenticated) || !strings.Contains(err.Error(), stolenRec.ID) {
		t.Fatalf("the enrollment token of the revoked administrator token, a month on: %v, want it refused naming %s", err, stolenRec.ID)
	}
	e.Clock.Add(2 * time.Hour)
	adminToken(t, e, keeper, "an-hour-past", 0)
	if !tombstone() {
		t.Fatal("the tombstone was pruned an hour after the enrollment tokens it refuses expired, within the day of grace")
	}
	e.Clock.Add(24 * time.Hour)
	adminToken(t, e, keeper, "a-day-past", 0)
	if tombstone() {
		t.Error("the tombstone outlived every enrollment token it could refuse, and the grace")
	}

	// A token that expires takes its tombstone with it a day after its
	// expiry: nothing made through it outlives it.
	_, short, shortRec := adminToken(t, e, keeper, "ci-job", time.Hour)
	if _, _, err := e.Authority.CreateToken(e.Ctx, short, "orders", "jobmanager", authority.MaxTokenTTL, 1); err != nil {
		t.Fatal(err)
	}
	revokeAdmin(t, e, keeper, shortRec.ID, authority.RevokeAdminOptions{})
	e.Clock.Add(time.Hour + 25*time.Hour)
	adminToken(t, e, keeper, "after-the-job", 0)
	if hasAdminRecord(t, e, shortRec.ID) {
		t.Error("a revoked one-hour token's tombstone is kept past a day after its expiry, although nothing made through it outlives it")
	}
}

// TestATokenRevokedAloneThenWithItsMadeTokensKeepsRefusing: an
// administrator token revoked alone (--keep-made) leaves the tokens made
// through it; a month later a token it made mints an enrollment token; then
// the first is revoked again, with its made tokens. The enrollment token is
// refused, and stays refused as the records are pruned: the tombstone is
// kept from the second revocation on, not the first.
func TestATokenRevokedAloneThenWithItsMadeTokensKeepsRefusing(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders"})
	_, keeper, _ := adminToken(t, e, system, "keeper", 0)
	_, first, firstRec := adminToken(t, e, keeper, "first", 0)
	_, child, _ := adminToken(t, e, first, "child", 0)
	revokeAdmin(t, e, keeper, firstRec.ID, authority.RevokeAdminOptions{KeepMade: true})
	e.Clock.Add(40 * 24 * time.Hour)
	bearer, _, err := e.Authority.CreateToken(e.Ctx, child, "orders", "taskmanager", authority.MaxTokenTTL, 1)
	if err != nil {
		t.Fatal(err)
	}
	revokeAdmin(t, e, keeper, firstRec.ID, authority.RevokeAdminOptions{})
	for _, days := range []int{0, 10, 20} {
		e.Clock.Add(time.Hour + time.Duration(days)*24*time.Hour)
		adminToken(t, e, keeper, "prune", 0) // each prunes what can go
		if _, err := authenticate(e, bearer); !errors.Is(err, authority.ErrUnauthenticated) {
			t.Fatalf("the enrollment token made through the twice-revoked token, some %d days on: %v, want it refused", days, err)
		}
	}
}

// TestABakeAuthenticatedBeforeItsMakersRevocationIsRefusedAtItsCommit: a
// bake authenticated with an enrollment token, whose maker is revoked with
// its made tokens while the bake's key is made, is refused when it would
// commit: it spends no use and records nothing.
func TestABakeAuthenticatedBeforeItsMakersRevocationIsRefusedAtItsCommit(t *testing.T) {
	t.Parallel()
	keys := &fencingKeys{}
	e := authoritytest.New(t, authoritytest.WithKeyPool(keys))
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders"})
	_, keeper, _ := adminToken(t, e, system, "keeper", 0)
	_, maker, makerRec := adminToken(t, e, keeper, "maker", 0)
	bearer, _, err := e.Authority.CreateToken(e.Ctx, maker, "orders", "taskmanager", time.Hour, 2)
	if err != nil {
		t.Fatal(err)
	}
	actor, err := authenticate(e, bearer)
	if err != nil {
		t.Fatal(err)
	}
	keys.fence = func() { // while the key is made, after the authentication
		if _, err := e.Authority.RevokeAdminToken(e.Ctx, keeper, makerRec.ID, authority.RevokeAdminOptions{}); err != nil {
			t.Error(err)
		}
	}
	_, err = e.Authority.Bake(e.Ctx, actor, authority.EnrollRequest{Cluster: "orders", Role: "taskmanager", Holder: "tm-0"})
	if !errors.Is(err, authority.ErrUnauthenticated) || !strings.Contains(err.Error(), makerRec.ID) {
		t.Fatalf("a bake whose token's maker was revoked meanwhile: %v, want it refused naming %s", err, makerRec.ID)
	}
	if hs, err := e.Authority.ListHolders(e.Ctx, "orders", false); err != nil || len(hs) != 0 {
		t.Fatalf("after the refused bake the cluster has holders %v (%v), want none", hs, err)
	}
}
