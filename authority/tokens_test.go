package authority_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/bolt"
	"github.com/flinkpki/flinkpki/token"
)

// newToken makes an enrollment token and authenticates it, as the api
// package does for each request.
func newToken(t testing.TB, e *authoritytest.Env, cluster, role string, ttl time.Duration, uses int) (string, authority.Actor) {
	t.Helper()
	bearer, _, err := e.Authority.CreateToken(e.Ctx, system, cluster, role, ttl, uses)
	if err != nil {
		t.Fatalf("create token for %s/%s: %v", cluster, role, err)
	}
	actor, err := authenticate(e, bearer)
	if err != nil {
		t.Fatalf("authenticate a new token: %v", err)
	}
	return bearer, actor
}

func authenticate(e *authoritytest.Env, bearer string) (authority.Actor, error) {
	p, err := token.Parse(bearer)
	if err != nil {
		return authority.Actor{}, err
	}
	return e.Authority.Authenticate(e.Ctx, p)
}

func holderCount(t testing.TB, e *authoritytest.Env, cluster string) int {
	t.Helper()
	hs, err := e.Authority.ListHolders(e.Ctx, cluster, true)
	if err != nil {
		t.Fatalf("list holders of %q: %v", cluster, err)
	}
	return len(hs)
}

func twoClusters(t testing.TB) *authoritytest.Env {
	t.Helper()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "e1"})
	e.CreateCluster(authority.CreateClusterRequest{Name: "e2"})
	return e
}

// TestTokenTTLsOutsideTheStatedRangeAreRefused: the server's own message
// says 1s to 30 days, so a token that would expire on creation (1ns) is
// refused like one that would outlive 30 days; zero means the default.
func TestTokenTTLsOutsideTheStatedRangeAreRefused(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders"})
	tests := []struct {
		name string
		ttl  time.Duration
		ok   bool
		want time.Duration // the lifetime of an accepted token
	}{
		{"a nanosecond is refused", time.Nanosecond, false, 0},
		{"just under a second is refused", authority.MinTokenTTL - 1, false, 0},
		{"a negative TTL is refused", -time.Second, false, 0},
		{"just over the maximum is refused", authority.MaxTokenTTL + 1, false, 0},
		{"the minimum is accepted", authority.MinTokenTTL, true, authority.MinTokenTTL},
		{"the maximum is accepted", authority.MaxTokenTTL, true, authority.MaxTokenTTL},
		{"zero means the default", 0, true, authority.DefaultTokenTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, rec, err := e.Authority.CreateToken(e.Ctx, system, "orders", "taskmanager", tt.ttl, 1)
			if !tt.ok {
				if !errors.Is(err, authority.ErrInvalid) || !strings.Contains(err.Error(), "use a value between 1s and") {
					t.Fatalf("TTL %s: got %v, want ErrInvalid naming the range", tt.ttl, err)
				}
				if got := lastAudit(t, e, "orders"); got.Action != "token.create" || got.Outcome != "denied" {
					t.Errorf("refusal audited as %s/%s, want token.create/denied", got.Action, got.Outcome)
				}
				return
			}
			if err != nil {
				t.Fatalf("TTL %s: %v", tt.ttl, err)
			}
			if got := rec.Expires.Sub(rec.Created); got != tt.want {
				t.Errorf("TTL %s: token lives %s, want %s", tt.ttl, got, tt.want)
			}
		})
	}
}

// TestEnrollmentTokensAreScopedToTheirClusterAndRole covers refusals of a
// valid token used out of scope: each names the scope, writes no holder,
// spends no use, and is audited as denied with the token as actor.
func TestEnrollmentTokensAreScopedToTheirClusterAndRole(t *testing.T) {
	t.Parallel()
	e := twoClusters(t)
	_, actor := newToken(t, e, "e2", "taskmanager", 0, 1)
	tests := []struct {
		name, cluster, role string
		want                string
	}{
		{"a token of another cluster is refused", "e1", "taskmanager", `token is for cluster "e2", not "e1"`},
		{"a token of another role is refused", "e2", "jobmanager", "token is for role taskmanager, not jobmanager"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.EnrollAs(actor, tt.cluster, tt.role, "pod-1")
			if !errors.Is(err, authority.ErrDenied) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrDenied saying %q", err, tt.want)
			}
			if n := holderCount(t, e, tt.cluster); n != 0 {
				t.Errorf("a refused enrollment wrote %d holders", n)
			}
			wantAudit(t, e, tt.cluster, "enroll", "denied", "enrollment-token:"+actor.ID)
		})
	}
	// The refusals spent nothing: the token still works, in scope.
	if _, err := e.EnrollAs(actor, "e2", "taskmanager", "pod-1"); err != nil {
		t.Fatalf("enroll in scope after refusals: %v", err)
	}
	wantAudit(t, e, "e2", "enroll", "ok", "enrollment-token:"+actor.ID)
}

// TestAOneUseTokenWorksOnce covers spending: the second use fails at
// authentication, and a request authenticated before the use was spent
// fails when it tries to spend it again.
func TestAOneUseTokenWorksOnce(t *testing.T) {
	t.Parallel()
	e := twoClusters(t)
	bearer, actor := newToken(t, e, "e1", "jobmanager", 0, 1)
	if _, err := e.EnrollAs(actor, "e1", "jobmanager", "jm-0"); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if _, err := authenticate(e, bearer); !errors.Is(err, authority.ErrUnauthenticated) {
		t.Errorf("authenticate a spent token: got %v, want ErrUnauthenticated", err)
	}
	if _, err := e.EnrollAs(actor, "e1", "jobmanager", "jm-1"); !errors.Is(err, authority.ErrUnauthenticated) {
		t.Errorf("second use with a stale actor: got %v, want ErrUnauthenticated", err)
	}
	if n := holderCount(t, e, "e1"); n != 1 {
		t.Errorf("%d holders after one good and one spent use, want 1", n)
	}
}

// TestAnExpiredTokenIsRefused advances the fake clock past a token's TTL:
// authentication fails, and so does an issuance authenticated just before.
func TestAnExpiredTokenIsRefused(t *testing.T) {
	t.Parallel()
	e := twoClusters(t)
	bearer, actor := newToken(t, e, "e1", "taskmanager", time.Minute, 5)
	e.Clock.Add(time.Minute)
	_, err := authenticate(e, bearer)
	if !errors.Is(err, authority.ErrUnauthenticated) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("authenticate an expired token: got %v, want ErrUnauthenticated saying it expired", err)
	}
	if _, err := e.EnrollAs(actor, "e1", "taskmanager", "tm-0"); !errors.Is(err, authority.ErrUnauthenticated) {
		t.Errorf("enroll with a token that expired after authentication: got %v, want ErrUnauthenticated", err)
	}
	if n := holderCount(t, e, "e1"); n != 0 {
		t.Errorf("a refused enrollment wrote %d holders", n)
	}
}

// TestConcurrentUsesOfAOneUseTokenYieldExactlyOneIssuance races twenty
// enrollments on one single-use token: exactly one wins, the rest are
// refused as unauthenticated and audited, and only the winner is recorded.
func TestConcurrentUsesOfAOneUseTokenYieldExactlyOneIssuance(t *testing.T) {
	t.Parallel()
	e := twoClusters(t)
	bearer, _ := newToken(t, e, "e1", "taskmanager", 0, 1)
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			actor, err := authenticate(e, bearer)
			if err == nil {
				_, err = e.EnrollAs(actor, "e1", "taskmanager", fmt.Sprintf("tm-%d", i))
			}
			errs[i] = err
		})
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, authority.ErrUnauthenticated):
			t.Errorf("use %d: got %v, want success or ErrUnauthenticated", i, err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d concurrent uses of a one-use token succeeded, want exactly 1", ok, n)
	}
	if got := holderCount(t, e, "e1"); got != 1 {
		t.Errorf("%d holders recorded, want 1", got)
	}
	issued := 0
	for _, a := range e.Audit("e1") {
		if a.Action == "enroll" && a.Outcome == "ok" {
			issued++
		}
	}
	if issued != 1 {
		t.Errorf("%d successful enrollments audited, want 1", issued)
	}
}

// TestATokenCreatePrunesABoundedNumberOfExpiredTokens: expired tokens are
// deleted when tokens are created, at most 64 per create, so that a create
// after many expirations stays one small transaction (etcd's --max-txn-ops
// is 128 by default); the following creates delete the rest.
func TestATokenCreatePrunesABoundedNumberOfExpiredTokens(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "e1"})
	for range 150 {
		if _, _, err := e.Authority.CreateToken(e.Ctx, system, "e1", "taskmanager", time.Minute, 1); err != nil {
			t.Fatal(err)
		}
	}
	e.Clock.Add(2 * time.Minute)
	stored := func() int {
		n := 0
		if err := e.Store.View(e.Ctx, func(tx *store.Txn) error {
			return tx.ForEachToken(func(*store.Token) (bool, error) { n++; return true, nil })
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var got []int
	for range 4 {
		if _, _, err := e.Authority.CreateToken(e.Ctx, system, "e1", "taskmanager", time.Hour, 1); err != nil {
			t.Fatal(err)
		}
		got = append(got, stored())
	}
	// 150 expired: 86 left and 1 new, 22 and 2, 0 and 3, 0 and 4.
	if fmt.Sprint(got) != "[87 24 3 4]" {
		t.Fatalf("tokens stored after each create: %v, want [87 24 3 4]", got)
	}
}

// TestAdministratorTokenNamesMustReadAsOneLabel: the name is shown in the
// audit trail, so an empty one, a long one, or one with a newline, a space
// or a terminal escape is refused and no token is made.
func TestAdministratorTokenNamesMustReadAsOneLabel(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	for _, name := range []string{"", strings.Repeat("a", authority.MaxTokenNameLen+1), "ops\nadmin:root", "ops team", "ops\x1b[2K"} {
		if tok, _, err := e.Authority.CreateAdminToken(e.Ctx, system, name, 0); !errors.Is(err, authority.ErrInvalid) || tok != "" {
			t.Errorf("CreateAdminToken(%q) = %q, %v; want ErrInvalid and no token", name, tok, err)
		}
	}
	for _, name := range []string{"admin", "ops-team@example.com", strings.Repeat("b", authority.MaxTokenNameLen)} {
		if _, _, err := e.Authority.CreateAdminToken(e.Ctx, system, name, 0); err != nil {
			t.Errorf("CreateAdminToken(%q) = %v", name, err)
		}
	}
}

// TestListTokensPagesLiveTokensWithoutSecrets: token list shows what can
// still enroll, page by page in ID order, filtered by cluster, with no
// hash; expired and used-up tokens are left out.
func TestListTokensPagesLiveTokensWithoutSecrets(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "lt1"})
	e.CreateCluster(authority.CreateClusterRequest{Name: "lt2"})
	live := map[string]string{} // ID → cluster
	for i := range 5 {
		cluster := []string{"lt1", "lt2"}[i%2]
		_, rec, err := e.Authority.CreateToken(e.Ctx, system, cluster, "taskmanager", time.Hour, 2)
		if err != nil {
			t.Fatal(err)
		}
		live[rec.ID] = cluster
	}
	_, short, err := e.Authority.CreateToken(e.Ctx, system, "lt1", "taskmanager", time.Minute, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, spent := newToken(t, e, "lt2", "jobmanager", time.Hour, 1)
	if _, err := e.EnrollAs(spent, "lt2", "jobmanager", "jm-0"); err != nil {
		t.Fatal(err)
	}
	e.Clock.Add(2 * time.Minute) // short expires

	var got []string
	after := ""
	for pages := 0; ; pages++ {
		toks, next, err := e.Authority.ListTokens(e.Ctx, "", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if pages > 5 || len(toks) > 2 {
			t.Fatalf("page %d has %d tokens (limit 2)", pages, len(toks))
		}
		for _, tk := range toks {
			if len(tk.Hash) != 0 {
				t.Errorf("token %s is listed with its hash", tk.ID)
			}
			got = append(got, tk.ID)
		}
		if after = next; after == "" {
			break
		}
	}
	if len(got) != len(live) {
		t.Fatalf("listed %v, want the %d live tokens %v (not %s, expired, nor the used-up one)", got, len(live), live, short.ID)
	}
	for i, id := range got {
		if _, ok := live[id]; !ok {
			t.Errorf("listed %s, which cannot enroll", id)
		}
		if i > 0 && got[i-1] >= id {
			t.Errorf("not in ID order: %v", got)
		}
	}
	lt1, _, err := e.Authority.ListTokens(e.Ctx, "lt1", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range lt1 {
		if tk.Cluster != "lt1" {
			t.Errorf("--cluster lt1 lists a token of %s", tk.Cluster)
		}
	}
	if len(lt1) != 3 {
		t.Errorf("lt1 has %d live tokens listed, want 3", len(lt1))
	}
	if _, _, err := e.Authority.ListTokens(e.Ctx, "nope", "", 0); !errors.Is(err, authority.ErrNotFound) {
		t.Errorf("an unknown cluster: %v, want ErrNotFound", err)
	}
}

// TestATokenOpensOnlyTheClusterItWasMadeFor: deleting a cluster revokes
// its tokens, but one made while the deletion ran (or on another replica)
// can survive it. Put back in the store after the cluster was deleted and
// created again under the same name, such a token opens nothing there,
// while a token of the new cluster does, and a record from before tokens
// named their cluster's incarnation still works.
func TestATokenOpensOnlyTheClusterItWasMadeFor(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "x"})
	bearer, _ := newToken(t, e, "x", "taskmanager", time.Hour, 5)
	p, err := token.Parse(bearer)
	if err != nil {
		t.Fatal(err)
	}
	var old *store.Token
	if err := e.Store.View(e.Ctx, func(tx *store.Txn) (err error) { old, err = tx.Token(p.ID); return err }); err != nil {
		t.Fatal(err)
	}
	if old.ClusterCreated.IsZero() {
		t.Fatal("a new token does not record its cluster's creation")
	}
	if err := e.Authority.DeleteCluster(e.Ctx, admin, "x"); err != nil {
		t.Fatal(err)
	}
	e.Clock.Add(time.Minute)
	e.CreateCluster(authority.CreateClusterRequest{Name: "x"})
	put := func(rec *store.Token) {
		if err := e.Store.Update(e.Ctx, func(tx *store.Txn) error { return tx.PutToken(rec) }); err != nil {
			t.Fatal(err)
		}
	}
	put(old) // the survivor of a deletion race

	actor, err := authenticate(e, bearer)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.EnrollAs(actor, "x", "taskmanager", "tm-0")
	if !errors.Is(err, authority.ErrDenied) || !strings.Contains(err.Error(), `made for an earlier cluster named "x"`) {
		t.Fatalf("the old cluster's token on the new one: %v, want it denied", err)
	}
	if n := holderCount(t, e, "x"); n != 0 {
		t.Errorf("the refusal wrote %d holders", n)
	}
	_, fresh := newToken(t, e, "x", "taskmanager", time.Hour, 1)
	if _, err := e.EnrollAs(fresh, "x", "taskmanager", "tm-0"); err != nil {
		t.Fatalf("a token of the new cluster: %v", err)
	}

	legacy := *old
	legacy.ClusterCreated = time.Time{}
	put(&legacy)
	if actor, err = authenticate(e, bearer); err != nil {
		t.Fatal(err)
	}
	if _, err := e.EnrollAs(actor, "x", "taskmanager", "tm-1"); err != nil {
		t.Errorf("a token record without its cluster's creation time: %v", err)
	}
}

// TestAScopedCallerCannotTellAMissingClusterFromAForbiddenOne: an
// enrollment token or a pod's service account asking for a cluster it may
// not use is denied in the same words whether that cluster exists or not,
// at the enrollment and at the key-type probe; with "not found" for one and
// "denied" for the other, any token could list the cluster names. An
// administrator still hears "not found".
func TestAScopedCallerCannotTellAMissingClusterFromAForbiddenOne(t *testing.T) {
	t.Parallel()
	e := twoClusters(t)
	_, token := newToken(t, e, "e2", "taskmanager", 0, 1)
	pod := authority.Actor{Kind: authority.ActorK8s, Namespace: "flink", ServiceAccount: "tm", Pod: "tm-0"}
	for _, actor := range []authority.Actor{token, pod} {
		var said []string
		for _, cluster := range []string{"e1", "ghost"} { // e1 exists; ghost does not
			_, err := e.EnrollAs(actor, cluster, "taskmanager", "tm-0")
			if !errors.Is(err, authority.ErrDenied) || errors.Is(err, authority.ErrNotFound) {
				t.Fatalf("%s enrolling in cluster %s: %v; want denied, as for any cluster it may not use", actor, cluster, err)
			}
			wantAudit(t, e, cluster, "enroll", "denied", actor.String())
			said = append(said, strings.ReplaceAll(err.Error(), cluster, "NAME"))
			_, err = e.Authority.KeyType(e.Ctx, actor, cluster, "taskmanager", "tm-0")
			if !errors.Is(err, authority.ErrDenied) || errors.Is(err, authority.ErrNotFound) {
				t.Fatalf("%s asking cluster %s for its key type: %v; want denied", actor, cluster, err)
			}
			wantAudit(t, e, cluster, "enroll.keytype", "denied", actor.String())
		}
		if said[0] != said[1] {
			t.Errorf("%s hears %q for an existing cluster and %q for a missing one", actor, said[0], said[1])
		}
	}
	if _, err := e.EnrollAs(admin, "ghost", "taskmanager", "tm-0"); !errors.Is(err, authority.ErrNotFound) {
		t.Errorf("an administrator asking for a missing cluster: %v, want not found", err)
	}
}

// TestAKnownTokenIDWithAnotherSecretIsRefused: a token's ID is not a
// secret (it is printed, listed and audited), so a caller who knows it and
// guesses a secret must be refused like an unknown token, for enrollment
// and administrator tokens alike; the real token still works after, its
// uses unspent. The store keeps only the secret's hash, never the secret.
func TestAKnownTokenIDWithAnotherSecretIsRefused(t *testing.T) {
	t.Parallel()
	e := twoClusters(t)
	enrollBearer, _ := newToken(t, e, "e1", "taskmanager", 0, 1)
	adminBearer, _, err := e.Authority.CreateAdminToken(e.Ctx, system, "ops", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, bearer := range []string{enrollBearer, adminBearer} {
		real, err := token.Parse(bearer)
		if err != nil {
			t.Fatal(err)
		}
		other, err := token.New(real.Kind, nil)
		if err != nil {
			t.Fatal(err)
		}
		forged := token.Parsed{Kind: real.Kind, ID: real.ID, Secret: other.Secret}
		if _, err := e.Authority.Authenticate(e.Ctx, forged); !errors.Is(err, authority.ErrUnauthenticated) {
			t.Errorf("%s with another secret: %v, want ErrUnauthenticated", real.Redacted(), err)
		} else if strings.Contains(err.Error(), other.Secret) {
			t.Errorf("the refusal repeats the secret it was given: %v", err)
		}
		if _, err := e.Authority.Authenticate(e.Ctx, real); err != nil {
			t.Errorf("%s after a forged try: %v", real.Redacted(), err)
		}
		var stored []byte
		if err := e.Store.View(e.Ctx, func(tx *store.Txn) error {
			if real.Kind == token.KindAdmin {
				rec, err := tx.AdminToken(real.ID)
				if err == nil {
					stored = rec.Hash
				}
				return err
			}
			rec, err := tx.Token(real.ID)
			if err == nil {
				stored = rec.Hash
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(stored, token.Hash(real.Secret)) || bytes.Contains(stored, []byte(real.Secret)) {
			t.Errorf("%s is stored as %x, want only the hash of its secret", real.Redacted(), stored)
		}
	}
	// The enrollment token's one use is still there.
	if _, err := e.EnrollAs(mustActor(t, e, enrollBearer), "e1", "taskmanager", "pod-1"); err != nil {
		t.Fatalf("the one-use token after the forged tries: %v", err)
	}
}

func mustActor(t *testing.T, e *authoritytest.Env, bearer string) authority.Actor {
	t.Helper()
	a, err := authenticate(e, bearer)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// lostAnswers is a real bbolt backend whose group commits, while armed,
// are made and then answered with ErrUnavailable: what a client of etcd
// sees when the member it sent a commit to hangs after the cluster took it.
type lostAnswers struct {
	store.Backend
	armed, lost *atomic.Bool // lost: the commit is not made either
}

func (b lostAnswers) Batch(ctx context.Context, fn func(store.Tx) error) error {
	if b.lost.Load() {
		return fmt.Errorf("%w: etcd at test: commit: context deadline exceeded", store.ErrUnavailable)
	}
	err := b.Backend.Batch(ctx, fn)
	if err == nil && b.armed.Load() {
		return fmt.Errorf("%w: etcd at test: commit: context deadline exceeded", store.ErrUnavailable)
	}
	return err
}

// TestAnIssuanceWhoseCommitWentUnansweredIsNotPaidTwice: when the store
// does not answer an issuance's commit but made it, the caller gets its
// leaf, not Unavailable: its retry would spend a second use of its token,
// and a one-use token would be used up with no leaf delivered. A commit
// that was not made stays Unavailable. (From this session's HA review.)
func TestAnIssuanceWhoseCommitWentUnansweredIsNotPaidTwice(t *testing.T) {
	t.Parallel()
	var armed, lost atomic.Bool
	path := filepath.Join(t.TempDir(), "flinkpki.db")
	e := authoritytest.New(t, authoritytest.WithBackend(func(context.Context) (store.Backend, error) {
		b, err := bolt.Open(path, bolt.Options{})
		return lostAnswers{b, &armed, &lost}, err
	}))
	e.CreateCluster(authority.CreateClusterRequest{Name: "e1"})
	_, actor := newToken(t, e, "e1", "taskmanager", 0, 1)
	lost.Store(true)
	if _, err := e.EnrollAs(actor, "e1", "taskmanager", "tm-0"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("an issuance whose commit was not made: %v, want ErrUnavailable", err)
	}
	lost.Store(false)
	if n := holderCount(t, e, "e1"); n != 0 {
		t.Fatalf("%d holders recorded by a commit that was not made", n)
	}
	armed.Store(true)
	if _, err := e.EnrollAs(actor, "e1", "taskmanager", "tm-0"); err != nil {
		t.Fatalf("an issuance committed but unanswered: %v, want the leaf", err)
	}
	armed.Store(false)
	if n := holderCount(t, e, "e1"); n != 1 {
		t.Errorf("%d holders recorded, want 1", n)
	}
	if _, err := e.EnrollAs(actor, "e1", "taskmanager", "tm-0"); !errors.Is(err, authority.ErrUnauthenticated) {
		t.Errorf("the one-use token after its one issuance: %v, want it used up", err)
	}
}
