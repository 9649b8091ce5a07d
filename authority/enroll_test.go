package authority_test

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/issuer"
	"github.com/flinkpki/flinkpki/store"
)

// TestBakeReturnsAServerMadeKeyThatTalksToEnrolledHolders covers bake: the
// key comes back once, matches the leaf, is of the cluster's key type, and
// the baked credentials complete mutual TLS with an enrolled holder.
func TestBakeReturnsAServerMadeKeyThatTalksToEnrolledHolders(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "b1", KeyType: "ecdsa-p384"})
	iss, err := e.Authority.Bake(e.Ctx, admin, authority.EnrollRequest{Cluster: "b1", Role: "taskmanager", Holder: "image-1"})
	if err != nil {
		t.Fatalf("bake: %v", err)
	}
	if iss.Key == nil {
		t.Fatal("bake returned no key")
	}
	// The trail tells the keys the server made from those it never saw.
	if got := wantAudit(t, e, "b1", "bake", "ok", "admin:test"); got.Details["holder"] != "image-1" {
		t.Errorf("the bake's audit entry names holder %q, want image-1", got.Details["holder"])
	}
	if kt, err := ca.KeyTypeOf(iss.Key.Public()); err != nil || kt != ca.KeyTypeECDSAP384 || iss.KeyType != "ecdsa-p384" {
		t.Errorf("baked key is %s (%v), reported as %s; want ecdsa-p384", kt, err, iss.KeyType)
	}
	baked := authoritytest.NewCreds(iss.Key, iss, e.Clock.Now)
	if pub, ok := baked.Leaf().PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(iss.Key.Public()) {
		t.Errorf("the baked leaf does not certify the returned key")
	}
	mustTalk(t, baked, e.Enroll("b1", "jobmanager", "jm-0"))
	wantAudit(t, e, "b1", "enroll", "ok", "admin:test")
}

// TestEnrollRefusesRequestsThatCannotBeSigned covers refusals that happen
// before signing: each is the right sentinel error, writes no holder, and
// is audited as denied.
func TestEnrollRefusesRequestsThatCannotBeSigned(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "v1"})
	_, rsaCSR, err := authoritytest.NewCSR("rsa-2048", "jm-0")
	if err != nil {
		t.Fatal(err)
	}
	_, goodCSR, err := authoritytest.NewCSR("ecdsa-p256", "jm-0")
	if err != nil {
		t.Fatal(err)
	}
	badSig := slices.Clone(goodCSR)
	badSig[len(badSig)-3] ^= 0xff
	tests := []struct {
		name    string
		cluster string
		req     authority.EnrollRequest
		actor   authority.Actor
		want    error
	}{
		{"a key of another type than the cluster's is refused", "v1",
			authority.EnrollRequest{Cluster: "v1", Role: "jobmanager", Holder: "jm-0", CSR: rsaCSR}, admin, authority.ErrInvalid},
		{"an unknown cluster is refused", "nope",
			authority.EnrollRequest{Cluster: "nope", Role: "jobmanager", Holder: "jm-0", CSR: goodCSR}, admin, authority.ErrNotFound},
		{"a missing holder name is refused", "v1",
			authority.EnrollRequest{Cluster: "v1", Role: "jobmanager", CSR: goodCSR}, admin, authority.ErrInvalid},
		{"an anonymous caller is refused", "v1",
			authority.EnrollRequest{Cluster: "v1", Role: "jobmanager", Holder: "jm-0", CSR: goodCSR}, authority.Actor{}, authority.ErrUnauthenticated},
		{"a Kubernetes service account that is not bound is refused", "v1",
			authority.EnrollRequest{Cluster: "v1", Role: "jobmanager", Holder: "jm-0", CSR: goodCSR},
			authority.Actor{Kind: authority.ActorK8s, Namespace: "flink", ServiceAccount: "jm", Pod: "jm-0"}, authority.ErrDenied},
		// The CSR's signature is checked only for a caller the cluster
		// admits, so that any pod cannot make the server verify costly ones.
		{"an unbound caller's CSR is not even checked", "v1",
			authority.EnrollRequest{Cluster: "v1", Role: "jobmanager", Holder: "jm-0", CSR: badSig},
			authority.Actor{Kind: authority.ActorK8s, Namespace: "flink", ServiceAccount: "jm", Pod: "jm-0"}, authority.ErrDenied},
		{"an admitted caller's broken CSR is refused", "v1",
			authority.EnrollRequest{Cluster: "v1", Role: "jobmanager", Holder: "jm-0", CSR: badSig}, admin, issuer.ErrBadCSR},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Authority.Enroll(e.Ctx, tt.actor, tt.req)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if n := holderCount(t, e, "v1"); n != 0 {
				t.Errorf("a refused enrollment wrote %d holders", n)
			}
			wantAudit(t, e, tt.cluster, "enroll", "denied", tt.actor.String())
		})
	}
	if _, err := e.Authority.Enroll(e.Ctx, admin, authority.EnrollRequest{Cluster: "v1", Role: "jobmanager", Holder: "jm-0", CSR: goodCSR}); err != nil {
		t.Errorf("the same request with a good CSR and holder fails: %v", err)
	}
}

// TestALiveHolderNameIsNotTakenOverByAnotherRole: a JobManager and a
// TaskManager that both default to their host's name would share one holder
// record, the second replacing the first while its leaf is still in use,
// and the rotation checks would no longer see what the first trusts. The
// second is refused and nothing changes; the same role may enroll again (a
// restart), and the name is free once the first leaf expired or it was
// released.
func TestALiveHolderNameIsNotTakenOverByAnotherRole(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "h1", CAValidity: 400 * day, LeafValidity: 30 * day})
	e.CreateCluster(authority.CreateClusterRequest{Name: "h2", CAValidity: 400 * day, LeafValidity: 30 * day})
	e.Enroll("h1", "jobmanager", "vm")
	before := holderSummary(t, e, "h1")
	_, err := e.EnrollAs(admin, "h1", "taskmanager", "vm")
	if !errors.Is(err, authority.ErrInvalid) || !strings.Contains(err.Error(), `holder "vm" of cluster "h1" is a live jobmanager`) {
		t.Fatalf("a taskmanager named like a live jobmanager: %v, want a refusal naming the jobmanager", err)
	}
	if got := lastAudit(t, e, "h1"); got.Action != "enroll" || got.Outcome != "denied" {
		t.Errorf("the refusal is audited as %s/%s, want enroll/denied", got.Action, got.Outcome)
	}
	if after := holderSummary(t, e, "h1"); after != before {
		t.Errorf("a refused enrollment changed the holders:\n%s\n%s", before, after)
	}
	e.Enroll("h1", "jobmanager", "vm")  // a restart of the same process
	e.Enroll("h1", "rest-client", "vm") // another purpose is another record

	if _, err := e.Authority.ReleaseHolder(e.Ctx, admin, "h1", "vm", "internal"); err != nil {
		t.Fatal(err)
	}
	e.Enroll("h1", "taskmanager", "vm")

	e.Enroll("h2", "jobmanager", "vm")
	e.Clock.Add(30*day + time.Second)
	e.Enroll("h2", "taskmanager", "vm") // the jobmanager's leaf has expired
}

// TestAPodOfAnotherNamespaceDoesNotTakeOverALiveHolder: a pod's holder
// name is its pod name, and a cluster bound to service accounts of two
// namespaces may see two pods of one name (two Flink deployments named
// alike). Were the second to supersede the first's record, the rotation
// checks would no longer see the first pod: here it enrolled before the
// next CA was prepared and trusts only the active one, so activation must
// stay refused while it lives. The second pod is refused, audited, and
// nothing changes; an enrollment token cannot take the name either; the
// first may enroll again (a restart), and the name is free once the first
// pod's record is released.
func TestAPodOfAnotherNamespaceDoesNotTakeOverALiveHolder(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	prod := store.K8sBinding{Namespace: "prod", ServiceAccount: "flink"}
	staging := store.K8sBinding{Namespace: "staging", ServiceAccount: "flink"}
	e.CreateCluster(authority.CreateClusterRequest{Name: "ns1", K8sBindings: []store.K8sBinding{prod, staging}, CAValidity: 400 * day, LeafValidity: 30 * day})
	inProd := authority.Actor{Kind: authority.ActorK8s, Namespace: "prod", ServiceAccount: "flink", Pod: "analytics-taskmanager-1-1"}
	inStaging := inProd
	inStaging.Namespace = "staging"
	if _, err := e.EnrollAs(inProd, "ns1", "taskmanager", ""); err != nil {
		t.Fatal(err)
	}
	if err := e.Authority.Prepare(e.Ctx, admin, "ns1", "internal"); err != nil {
		t.Fatal(err)
	}
	before := holderSummary(t, e, "ns1")

	_, err := e.EnrollAs(inStaging, "ns1", "taskmanager", "")
	if !errors.Is(err, authority.ErrDenied) || !strings.Contains(err.Error(), `holder "analytics-taskmanager-1-1" of cluster "ns1" is a live pod of namespace "prod"`) {
		t.Fatalf("a pod of namespace staging named like a live pod of prod: %v, want a refusal naming the other namespace", err)
	}
	wantAudit(t, e, "ns1", "enroll", "denied", inStaging.String())
	if after := holderSummary(t, e, "ns1"); after != before {
		t.Errorf("a refused enrollment changed the holders:\n%s\n%s", before, after)
	}
	if err := e.Authority.Activate(e.Ctx, admin, "ns1", "internal", false); !errors.Is(err, ca.ErrBlocked) {
		t.Errorf("activate while the prod pod trusts only the active CA: %v, want it blocked", err)
	}

	// Nor does an enrollment token of that role take the pod's name.
	_, tokenActor := newToken(t, e, "ns1", "taskmanager", time.Hour, 1)
	if _, err := e.EnrollAs(tokenActor, "ns1", "taskmanager", "analytics-taskmanager-1-1"); !errors.Is(err, authority.ErrDenied) || !strings.Contains(err.Error(), "an enrollment token cannot take a pod's name") {
		t.Errorf("an enrollment token taking the live pod's name: %v, want it denied", err)
	}
	if after := holderSummary(t, e, "ns1"); after != before {
		t.Errorf("a refused enrollment changed the holders:\n%s\n%s", before, after)
	}
	if _, err := e.EnrollAs(inProd, "ns1", "taskmanager", ""); err != nil { // a restart
		t.Errorf("the prod pod enrolling again: %v", err)
	}
	if _, err := e.Authority.ReleaseHolder(e.Ctx, admin, "ns1", "analytics-taskmanager-1-1", "internal"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.EnrollAs(inStaging, "ns1", "taskmanager", ""); err != nil {
		t.Errorf("the staging pod once the name was released: %v", err)
	}
}

// TestDifferentRolesEnrollingUnderOneNameAtOnceNeverBothPass: a JobManager
// and a TaskManager that start together on one host enroll under its name
// at the same instant, each reading "no live holder" before either
// commits. The commit expects the record as read, so one of them is
// refused and the record keeps the other's role.
func TestDifferentRolesEnrollingUnderOneNameAtOnceNeverBothPass(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "race", CAValidity: 400 * day, LeafValidity: 30 * day})
	const names = 40
	type outcome struct {
		name, role string
		err        error
	}
	out := make(chan outcome, 2*names)
	var start sync.WaitGroup
	start.Add(1)
	for i := range names {
		for _, role := range []string{"jobmanager", "taskmanager"} {
			go func() {
				name := fmt.Sprintf("host-%d", i)
				_, csr, err := authoritytest.NewCSR(string(ca.DefaultKeyType), name)
				if err == nil {
					start.Wait()
					_, err = e.Authority.Enroll(e.Ctx, admin, authority.EnrollRequest{Cluster: "race", Role: role, Holder: name, CSR: csr})
				}
				out <- outcome{name, role, err}
			}()
		}
	}
	start.Done()
	passed := map[string][]string{}
	for range 2 * names {
		o := <-out
		switch {
		case o.err == nil:
			passed[o.name] = append(passed[o.name], o.role)
		case !errors.Is(o.err, authority.ErrInvalid) || !strings.Contains(o.err.Error(), "is a live"):
			t.Errorf("%s %s: %v, want success or the live-holder refusal", o.role, o.name, o.err)
		}
	}
	hs, err := e.Authority.ListHolders(e.Ctx, "race", false)
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[string]string{}
	for _, h := range hs {
		recorded[h.Name] = h.Role
	}
	for i := range names {
		name := fmt.Sprintf("host-%d", i)
		if roles := passed[name]; len(roles) != 1 {
			t.Errorf("%s: %d enrollments passed (%v), want exactly one", name, len(roles), roles)
		} else if recorded[name] != roles[0] {
			t.Errorf("%s: the %s passed but the record says %q", name, roles[0], recorded[name])
		}
	}
}

func holderSummary(t *testing.T, e *authoritytest.Env, cluster string) string {
	t.Helper()
	hs, err := e.Authority.ListHolders(e.Ctx, cluster, true)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, h := range hs {
		fmt.Fprintf(&b, "%s %s %s %s %s; ", h.Purpose, h.Name, h.Role, h.Serial, h.NotAfter)
	}
	return b.String()
}

// TestLifecycleStepsOutOfOrderAreAuditedAsSuch: activating with nothing
// prepared, retiring with nothing retiring, or preparing during a rotation
// are ordinary refusals, not server faults ("error").
func TestLifecycleStepsOutOfOrderAreAuditedAsSuch(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "o1"})
	steps := []func() error{
		func() error { return e.Authority.Activate(e.Ctx, admin, "o1", "internal", false) },
		func() error { return e.Authority.Retire(e.Ctx, admin, "o1", "internal", false) },
		func() error { return e.Authority.Prepare(e.Ctx, admin, "o1", "internal") },
		func() error { return e.Authority.Prepare(e.Ctx, admin, "o1", "internal") },
	}
	for i, step := range steps {
		err := step()
		if i == 2 {
			if err != nil {
				t.Fatalf("prepare: %v", err)
			}
			continue
		}
		if got := authority.ReasonOf(err); got != "failed_precondition" {
			t.Errorf("step %d: %v has reason %q, want failed_precondition", i, err, got)
		}
		if a := lastAudit(t, e, "o1"); a.Outcome != "denied" || a.Details["reason"] != "failed_precondition" {
			t.Errorf("step %d audited as %s/%v, want denied/failed_precondition", i, a.Outcome, a.Details)
		}
	}
}

// countingKeys makes bake's keys on demand and counts them.
type countingKeys struct {
	mu sync.Mutex
	n  int
}

func (k *countingKeys) Key(_ context.Context, kt ca.KeyType) (crypto.Signer, error) {
	k.mu.Lock()
	k.n++
	k.mu.Unlock()
	return kt.GenerateKey(nil)
}
func (k *countingKeys) Touch() {}
func (k *countingKeys) made() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.n
}

// TestBakeDecidesWhoMayBakeBeforeAKeyIsMade: an RSA key costs up to a
// second of a core, so a refused bake must not take or make one. Tokens of
// another cluster or role, a pod's service-account token (a pod makes its
// own key: init), an unknown role and a name held by a live holder of
// another role, and requests issue would refuse (a bad IP address or DNS
// name, host names on a REST client) are each refused, audited, and take
// no key; an administrator's bake takes exactly one.
func TestBakeDecidesWhoMayBakeBeforeAKeyIsMade(t *testing.T) {
	t.Parallel()
	keys := &countingKeys{}
	e := authoritytest.New(t, authoritytest.WithKeyPool(keys))
	e.CreateCluster(authority.CreateClusterRequest{Name: "k1", K8sBindings: []store.K8sBinding{flinkSA}})
	e.CreateCluster(authority.CreateClusterRequest{Name: "k2"})
	e.Enroll("k1", "jobmanager", "vm")
	pod := authority.Actor{Kind: authority.ActorK8s, Namespace: "flink", ServiceAccount: "flink", Pod: "tm-0"}
	for _, tt := range []struct {
		name  string
		actor authority.Actor
		req   authority.EnrollRequest
		want  error
	}{
		{"a token for another cluster", authority.Actor{Kind: authority.ActorEnrollment, ID: "t1", TokenCluster: "k2", TokenRole: "taskmanager"},
			authority.EnrollRequest{Cluster: "k1", Role: "taskmanager", Holder: "img"}, authority.ErrDenied},
		{"a token for another role", authority.Actor{Kind: authority.ActorEnrollment, ID: "t2", TokenCluster: "k1", TokenRole: "jobmanager"},
			authority.EnrollRequest{Cluster: "k1", Role: "taskmanager", Holder: "img"}, authority.ErrDenied},
		{"a bound pod's service-account token", pod,
			authority.EnrollRequest{Cluster: "k1", Role: "taskmanager", Holder: "tm-0"}, authority.ErrDenied},
		{"an unknown role", admin,
			authority.EnrollRequest{Cluster: "k1", Role: "historyserver", Holder: "img"}, authority.ErrInvalid},
		{"the name of a live holder of another role", admin,
			authority.EnrollRequest{Cluster: "k1", Role: "taskmanager", Holder: "vm"}, authority.ErrInvalid},
		{"an address that is no IP address", admin,
			authority.EnrollRequest{Cluster: "k1", Role: "taskmanager", Holder: "img", IPs: []string{"nope"}}, authority.ErrInvalid},
		{"a DNS name no certificate may carry", admin,
			authority.EnrollRequest{Cluster: "k1", Role: "taskmanager", Holder: "img", DNSNames: []string{"*.bad"}}, issuer.ErrInvalidRequest},
		{"host names on a REST client", admin,
			authority.EnrollRequest{Cluster: "k1", Role: "rest-client", Holder: "img", DNSNames: []string{"ops.example"}}, issuer.ErrInvalidRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := holderSummary(t, e, "k1")
			if _, err := e.Authority.Bake(e.Ctx, tt.actor, tt.req); !errors.Is(err, tt.want) {
				t.Fatalf("bake: %v, want %v", err, tt.want)
			}
			if n := keys.made(); n != 0 {
				t.Errorf("a refused bake took %d key(s)", n)
			}
			if after := holderSummary(t, e, "k1"); after != before {
				t.Errorf("a refused bake changed the holders:\n%s\n%s", before, after)
			}
			wantAudit(t, e, "k1", "bake", "denied", tt.actor.String())
		})
	}
	if _, err := e.Authority.Bake(e.Ctx, admin, authority.EnrollRequest{Cluster: "k1", Role: "taskmanager", Holder: "img"}); err != nil {
		t.Fatal(err)
	}
	if n := keys.made(); n != 1 {
		t.Errorf("an administrator's bake took %d keys, want 1", n)
	}
}

// TestAPodMayNotObtainRESTClientMaterial: a REST client certificate lets
// its holder submit jobs, so a bound pod (which may run job code) gets the
// internal roles and the JobManager's REST server material, never a REST
// client certificate; an administrator still can.
func TestAPodMayNotObtainRESTClientMaterial(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "r1", K8sBindings: []store.K8sBinding{flinkSA}})
	pod := authority.Actor{Kind: authority.ActorK8s, Namespace: "flink", ServiceAccount: "flink", Pod: "jm-0"}
	_, err := e.EnrollAs(pod, "r1", "rest-client", "jm-0")
	if !errors.Is(err, authority.ErrDenied) || !strings.Contains(err.Error(), "token create --cluster r1 --role rest-client") {
		t.Fatalf("a pod asking for rest-client material: %v, want a refusal that says who hands it out", err)
	}
	wantAudit(t, e, "r1", "enroll", "denied", pod.String())
	if n := holderCount(t, e, "r1"); n != 0 {
		t.Errorf("the refusal wrote %d holders", n)
	}
	if _, err := e.Authority.KeyType(e.Ctx, pod, "r1", "rest-client", "jm-0"); !errors.Is(err, authority.ErrDenied) {
		t.Errorf("the key-type probe for rest-client as a pod: %v, want it denied too", err)
	}
	if _, err := e.EnrollAs(pod, "r1", "jobmanager", "jm-0"); err != nil {
		t.Errorf("the pod's own jobmanager enrollment: %v", err)
	}
	e.Enroll("r1", "rest-client", "ops")
}

// gatedKeys is a key source whose first key waits for release, so a test
// can hold one bake after it was authorised and took its key.
type gatedKeys struct {
	countingKeys
	taken, release chan struct{}
	once           sync.Once
}

func (k *gatedKeys) Key(ctx context.Context, kt ca.KeyType) (crypto.Signer, error) {
	first := false
	k.once.Do(func() { first = true })
	if first {
		close(k.taken)
		<-k.release
	}
	return k.countingKeys.Key(ctx, kt)
}

// TestAOneUseTokenBakesOneKeyAtATime: a token's use is spent when a bake
// commits, after its key was taken or made, so every concurrent bake of a
// one-use token passed the authorisation and cost a key (up to a second
// of a core for RSA), all but one refused at the commit. A second bake
// while the first is in flight is now refused before it takes a key; once
// the first has committed, the token is used up.
func TestAOneUseTokenBakesOneKeyAtATime(t *testing.T) {
	t.Parallel()
	keys := &gatedKeys{taken: make(chan struct{}), release: make(chan struct{})}
	e := authoritytest.New(t, authoritytest.WithKeyPool(keys))
	e.CreateCluster(authority.CreateClusterRequest{Name: "b1"})
	_, actor := newToken(t, e, "b1", "taskmanager", time.Hour, 1)
	first := make(chan error, 1)
	go func() {
		_, err := e.Authority.Bake(e.Ctx, actor, authority.EnrollRequest{Cluster: "b1", Role: "taskmanager", Holder: "img-1"})
		first <- err
	}()
	<-keys.taken
	for i := range 5 {
		_, err := e.Authority.Bake(e.Ctx, actor, authority.EnrollRequest{Cluster: "b1", Role: "taskmanager", Holder: fmt.Sprintf("img-%d", i+2)})
		if !errors.Is(err, authority.ErrBusy) || !strings.Contains(err.Error(), "has 1 use(s) left and as many bakes in flight") {
			t.Fatalf("bake %d while the one use is in flight: %v, want it refused as busy", i+2, err)
		}
	}
	close(keys.release)
	if err := <-first; err != nil {
		t.Fatalf("the first bake: %v", err)
	}
	if _, err := e.Authority.Bake(e.Ctx, actor, authority.EnrollRequest{Cluster: "b1", Role: "taskmanager", Holder: "img-9"}); !errors.Is(err, authority.ErrUnauthenticated) {
		t.Fatalf("a bake after the one use: %v, want the token used up", err)
	}
	if n := keys.made(); n != 1 {
		t.Errorf("%d keys were made for a one-use token, want 1", n)
	}
}

// TestStatusAndAuditNameAtMostMaxListedHoldersBlockers: with many live
// holders blocking a step, the status (and so every lifecycle answer)
// named them all, and a forced step's audit entry listed them all: at tens
// of thousands of holders the answer outgrew a gRPC message and the entry
// etcd's request limit. Both now name the first MaxListedHolders, sorted,
// and count them all.
func TestStatusAndAuditNameAtMostMaxListedHoldersBlockers(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "many", CAValidity: 400 * day, LeafValidity: 30 * day})
	const n = authority.MaxListedHolders + 50
	for i := range n {
		e.Enroll("many", "taskmanager", fmt.Sprintf("tm-%03d", i))
	}
	if err := e.Authority.Prepare(e.Ctx, admin, "many", "internal"); err != nil {
		t.Fatal(err)
	}
	st, err := e.Authority.Status(e.Ctx, "many")
	if err != nil {
		t.Fatal(err)
	}
	var internal authority.LineageStatus
	for _, l := range st.Lineages {
		if l.Purpose == "internal" {
			internal = l
		}
	}
	if len(internal.Blockers) != authority.MaxListedHolders || internal.BlockersTotal != n ||
		internal.Blockers[0] != "tm-000" || internal.Blockers[authority.MaxListedHolders-1] != fmt.Sprintf("tm-%03d", authority.MaxListedHolders-1) {
		t.Fatalf("blockers: %d named (%s .. %s), total %d; want the first %d of %d, sorted",
			len(internal.Blockers), internal.Blockers[0], internal.Blockers[len(internal.Blockers)-1], internal.BlockersTotal, authority.MaxListedHolders, n)
	}
	if err := e.Authority.Activate(e.Ctx, admin, "many", "internal", true); err != nil {
		t.Fatal(err)
	}
	got := lastAudit(t, e, "many")
	if got.Outcome != "forced" || len(strings.Split(got.Details["overridden_blockers"], ",")) != authority.MaxListedHolders ||
		got.Details["overridden_blockers_total"] != fmt.Sprint(n) {
		t.Errorf("the forced activation's entry: %s, %d names, total %q; want %d names and the total %d",
			got.Outcome, len(strings.Split(got.Details["overridden_blockers"], ",")), got.Details["overridden_blockers_total"], authority.MaxListedHolders, n)
	}
}

// TestRequestsPastWhatExistsAreRefusedAsSuch: a verification part that
// starts past the trail's last entry is the caller's mistake, not entries
// removed from the trail (it was reported as tampering); a release for a
// purpose that does not exist says so (it said the holder was not found).
func TestRequestsPastWhatExistsAreRefusedAsSuch(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "p1"})
	e.Enroll("p1", "taskmanager", "tm-0")
	whole, err := e.Authority.VerifyAudit(e.Ctx)
	if err != nil || whole.FirstBad != 0 {
		t.Fatalf("the whole trail: %+v, %v", whole, err)
	}
	if r, err := e.Authority.VerifyAuditPart(e.Ctx, whole.LastSeq, whole.LastHash, 10); err != nil || r.FirstBad != 0 {
		t.Errorf("a part starting at the last entry: %+v, %v; want intact", r, err)
	}
	if _, err := e.Authority.VerifyAuditPart(e.Ctx, whole.LastSeq+1000, "", 10); !errors.Is(err, authority.ErrInvalid) || !strings.Contains(err.Error(), "nothing follows entry") {
		t.Errorf("a part past the end: %v, want it refused as invalid", err)
	}
	if _, err := e.Authority.ReleaseHolder(e.Ctx, admin, "p1", "tm-0", "internl"); !errors.Is(err, authority.ErrInvalid) || !strings.Contains(err.Error(), `purpose "internl": use internal or rest`) {
		t.Errorf("a release for purpose internl: %v, want the purpose refused", err)
	}
	if n := holderCount(t, e, "p1"); n != 1 {
		t.Errorf("the refused release changed the holders: %d", n)
	}
}

// TestAnIssuanceSaysWhenItReplacesAnotherProcesssLiveRecord: an issuance
// under the name of a live holder of the same role supersedes it, which
// is right for a process starting again; but a token's or an image's
// holder name may be another process's too (two TaskManagers on one host,
// pods of an earlier image), which the rotation checks would then no
// longer see. The issuance answers the record it replaced, and audits it;
// a pod replacing its own record, or an expired record, is not reported.
func TestAnIssuanceSaysWhenItReplacesAnotherProcesssLiveRecord(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	prod := store.K8sBinding{Namespace: "prod", ServiceAccount: "flink"}
	e.CreateCluster(authority.CreateClusterRequest{Name: "sup", K8sBindings: []store.K8sBinding{prod}, CAValidity: 400 * day, LeafValidity: 30 * day})
	enroll := func(actor authority.Actor, holder string) *authority.Issued {
		t.Helper()
		_, csr, err := authoritytest.NewCSR(string(ca.DefaultKeyType), holder)
		if err != nil {
			t.Fatal(err)
		}
		iss, err := e.Authority.Enroll(e.Ctx, actor, authority.EnrollRequest{Cluster: "sup", Role: "taskmanager", Holder: holder, CSR: csr})
		if err != nil {
			t.Fatal(err)
		}
		return iss
	}
	_, tok := newToken(t, e, "sup", "taskmanager", time.Hour, 10)

	first := enroll(tok, "vm-1")
	if first.Superseded != nil {
		t.Fatalf("a first issuance reports it superseded %+v", first.Superseded)
	}
	second := enroll(tok, "vm-1")
	if s := second.Superseded; s == nil || s.Serial != first.Chain[0].SerialNumber.Text(16) || !s.NotAfter.Equal(first.NotAfter) || s.Actor != tok.String() {
		t.Fatalf("a second issuance under a live token holder's name reports %+v, want the first's serial, expiry and actor", s)
	}
	a := wantAudit(t, e, "sup", "enroll", "ok", tok.String())
	if a.Details["superseded_serial"] != second.Superseded.Serial || a.Details["superseded_actor"] != tok.String() || a.Details["superseded_until"] == "" {
		t.Errorf("the issuance's audit entry does not name what it superseded: %v", a.Details)
	}

	// An administrator taking a live pod's name is reported too.
	pod := authority.Actor{Kind: authority.ActorK8s, Namespace: "prod", ServiceAccount: "flink", Pod: "tm-0"}
	enroll(pod, "")
	if s := enroll(pod, "").Superseded; s != nil {
		t.Errorf("a pod enrolling again under its own name reports it superseded %+v", s)
	}
	if s := enroll(admin, "tm-0").Superseded; s == nil || s.Actor != pod.String() {
		t.Errorf("an administrator taking the live pod's name reports %+v, want the pod's record", s)
	}

	// An expired record is no process's any more.
	e.Clock.Add(31 * day)
	_, fresh := newToken(t, e, "sup", "taskmanager", time.Hour, 1) // tok expired too
	if s := enroll(fresh, "vm-1").Superseded; s != nil {
		t.Errorf("an issuance under an expired holder's name reports it superseded %+v", s)
	}
}
