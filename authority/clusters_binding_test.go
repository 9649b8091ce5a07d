package authority_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/store"
)

// flinkSA is the service account the Flink operator's Helm chart ships,
// the one many users would bind to every cluster.
var flinkSA = store.K8sBinding{Namespace: "flink", ServiceAccount: "flink"}

const flinkSATaken = `invalid request: Kubernetes service account flink/flink is already bound to cluster "a1": give each Flink cluster its own service account`

// TestCreateClusterRefusesABindingAnotherClusterHolds: one service
// account's token would enroll into both clusters, so the second create is
// refused, audited, and stores nothing.
func TestCreateClusterRefusesABindingAnotherClusterHolds(t *testing.T) {
	t.Parallel()
	other := store.K8sBinding{Namespace: "flink", ServiceAccount: "a2-flink"}
	tests := []struct {
		name     string
		bindings []store.K8sBinding
	}{
		{"the same binding alone is refused", []store.K8sBinding{flinkSA}},
		{"the same binding after a free one is refused", []store.K8sBinding{other, flinkSA}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := authoritytest.New(t)
			e.CreateCluster(authority.CreateClusterRequest{Name: "a1", K8sBindings: []store.K8sBinding{flinkSA}})
			_, err := e.Authority.CreateCluster(e.Ctx, admin, authority.CreateClusterRequest{Name: "a2", K8sBindings: tt.bindings})
			if !errors.Is(err, authority.ErrInvalid) {
				t.Fatalf("create a2 with a1's binding: got %v, want ErrInvalid", err)
			}
			if err.Error() != flinkSATaken {
				t.Errorf("the refusal says %q, want %q", err, flinkSATaken)
			}
			if _, gerr := e.Authority.GetCluster(e.Ctx, "a2"); !errors.Is(gerr, authority.ErrNotFound) {
				t.Errorf("the refused create left cluster a2: %v", gerr)
			}
			if cs, _, lerr := e.Authority.ListClusters(e.Ctx, "", 0); lerr != nil || len(cs) != 1 {
				t.Errorf("%d clusters after the refusal (%v), want only a1", len(cs), lerr)
			}
			got := wantAudit(t, e, "a2", "cluster.create", "denied", "admin:test")
			if got.Reason != err.Error() || got.Details["reason"] != "invalid" {
				t.Errorf("refusal audited with %q (%s), want the error and reason invalid", got.Reason, got.Details["reason"])
			}
		})
	}
}

// TestCreateClusterAcceptsBindingsNoOtherClusterHolds: only the pair of
// namespace and service account is exclusive, not either half of it.
func TestCreateClusterAcceptsBindingsNoOtherClusterHolds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		binding store.K8sBinding
	}{
		{"another service account in the same namespace is accepted", store.K8sBinding{Namespace: "flink", ServiceAccount: "a2-flink"}},
		{"the same service account name in another namespace is accepted", store.K8sBinding{Namespace: "flink-prod", ServiceAccount: "flink"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := authoritytest.New(t)
			e.CreateCluster(authority.CreateClusterRequest{Name: "a1", K8sBindings: []store.K8sBinding{flinkSA}})
			v := e.CreateCluster(authority.CreateClusterRequest{Name: "a2", K8sBindings: []store.K8sBinding{tt.binding}})
			if len(v.Cluster.K8sBindings) != 1 || !reflect.DeepEqual(v.Cluster.K8sBindings[0], tt.binding) {
				t.Errorf("a2 bound to %v, want %v", v.Cluster.K8sBindings, tt.binding)
			}
		})
	}
}

// TestDeletingAClusterFreesItsBinding: the binding belongs to a cluster
// only while it exists.
func TestDeletingAClusterFreesItsBinding(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "a1", K8sBindings: []store.K8sBinding{flinkSA}})
	req := authority.CreateClusterRequest{Name: "a2", K8sBindings: []store.K8sBinding{flinkSA}}
	if _, err := e.Authority.CreateCluster(e.Ctx, admin, req); !errors.Is(err, authority.ErrInvalid) {
		t.Fatalf("create a2 while a1 holds the binding: got %v, want ErrInvalid", err)
	}
	if err := e.Authority.DeleteCluster(e.Ctx, admin, "a1"); err != nil {
		t.Fatalf("delete a1: %v", err)
	}
	v := e.CreateCluster(req)
	if len(v.Cluster.K8sBindings) != 1 || !reflect.DeepEqual(v.Cluster.K8sBindings[0], flinkSA) {
		t.Errorf("a2 bound to %v, want %v", v.Cluster.K8sBindings, flinkSA)
	}
}

// TestConcurrentCreatesCannotBothTakeABinding holds one create between its
// first check and its commit (while it makes its CAs) and lets another
// create with the same binding commit meanwhile: the check inside the
// commit must then refuse the first.
func TestConcurrentCreatesCannotBothTakeABinding(t *testing.T) {
	t.Parallel()
	st, err := authoritytest.OpenStore(t.Context(), filepath.Join(t.TempDir(), "flinkpki.db"), make([]byte, store.KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	g := &gatedRand{entered: make(chan struct{}), release: make(chan struct{})}
	a, err := authority.New(authority.Config{Store: st, Rand: g})
	if err != nil {
		t.Fatal(err)
	}
	req := func(name string) authority.CreateClusterRequest {
		return authority.CreateClusterRequest{Name: name, K8sBindings: []store.K8sBinding{flinkSA}}
	}

	g.arm()
	first := make(chan error, 1)
	go func() {
		_, err := a.CreateCluster(t.Context(), admin, req("a2"))
		first <- err
	}()
	select {
	case <-g.entered: // a2 passed its first check and is making its CAs
	case err := <-first:
		t.Fatalf("create a2 ended before making its CAs: %v", err)
	}
	if _, err := a.CreateCluster(t.Context(), admin, req("a1")); err != nil {
		t.Fatalf("create a1 while a2 is held: %v", err)
	}
	close(g.release)
	err = <-first
	if !errors.Is(err, authority.ErrInvalid) || err.Error() != flinkSATaken {
		t.Fatalf("a2, committed after a1 took the binding: got %v, want %q", err, flinkSATaken)
	}
	if _, err := a.GetCluster(t.Context(), "a2"); !errors.Is(err, authority.ErrNotFound) {
		t.Errorf("the refused create left cluster a2: %v", err)
	}
}

// gatedRand is crypto/rand, except that once armed its next Read waits
// for release, so a test can hold one create while it makes its CAs.
type gatedRand struct {
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
}

func (g *gatedRand) arm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.armed = true
}

func (g *gatedRand) Read(p []byte) (int, error) {
	g.mu.Lock()
	hold := g.armed
	g.armed = false
	g.mu.Unlock()
	if hold {
		close(g.entered)
		<-g.release
	}
	return io.ReadFull(rand.Reader, p)
}

// TestABindingRemovedWhileAPodEnrollsStopsTheEnrollment: a pod's
// enrollment reads its service account's binding before signing; an
// administrator removes the binding while the leaf is being signed. The
// commit checks again, so the pod is refused and no holder is recorded, as
// a token revoked in that window is.
func TestABindingRemovedWhileAPodEnrollsStopsTheEnrollment(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	g := &gatedRand{entered: make(chan struct{}), release: make(chan struct{})}
	a, err := authority.New(authority.Config{Store: e.Store, Now: e.Clock.Now, Rand: g})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateCluster(t.Context(), admin, authority.CreateClusterRequest{Name: "b1", K8sBindings: []store.K8sBinding{flinkSA}}); err != nil {
		t.Fatal(err)
	}
	pod := authority.Actor{Kind: authority.ActorK8s, Namespace: flinkSA.Namespace, ServiceAccount: flinkSA.ServiceAccount, Pod: "b1-tm-1"}
	_, csr, err := authoritytest.NewCSR(string(ca.DefaultKeyType), "b1-tm-1")
	if err != nil {
		t.Fatal(err)
	}
	g.arm() // the next read of randomness is the leaf's serial, after the binding was read
	done := make(chan error, 1)
	go func() {
		_, err := a.Enroll(t.Context(), pod, authority.EnrollRequest{Cluster: "b1", Role: "taskmanager", CSR: csr})
		done <- err
	}()
	select {
	case <-g.entered:
	case err := <-done:
		t.Fatalf("the enrollment ended before signing: %v", err)
	}
	if _, err := a.UpdateCluster(t.Context(), admin, authority.UpdateClusterRequest{Name: "b1", RemoveK8sBindings: []store.K8sBinding{flinkSA}}); err != nil {
		t.Fatal(err)
	}
	close(g.release)
	if err := <-done; !errors.Is(err, authority.ErrDenied) || !strings.Contains(err.Error(), "is not bound to cluster") {
		t.Fatalf("an enrollment whose binding was removed before it committed: %v, want it denied as not bound", err)
	}
	hs, err := a.ListHolders(t.Context(), "b1", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 0 {
		t.Errorf("the refused enrollment recorded %d holders", len(hs))
	}
}

// TestABindingIsHeldOnceAndRemovedWhole: a cluster created with the same
// service account twice is refused (it was accepted, and a removal then
// took one copy, reported success, and left the account bound: its pods
// still enrolled). A cluster stored with a copy too many, by an earlier
// version, loses every copy on removal.
func TestABindingIsHeldOnceAndRemovedWhole(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	_, err := e.Authority.CreateCluster(e.Ctx, admin, authority.CreateClusterRequest{Name: "d1", K8sBindings: []store.K8sBinding{flinkSA, flinkSA}})
	if !errors.Is(err, authority.ErrInvalid) || !strings.Contains(err.Error(), "Kubernetes binding flink/flink is named twice") {
		t.Fatalf("a create naming one binding twice: %v, want it refused", err)
	}
	if _, err := e.Authority.GetCluster(e.Ctx, "d1"); !errors.Is(err, authority.ErrNotFound) {
		t.Fatalf("the refused create left cluster d1: %v", err)
	}

	e.CreateCluster(authority.CreateClusterRequest{Name: "d2", K8sBindings: []store.K8sBinding{flinkSA}})
	if err := e.Store.Update(e.Ctx, func(tx *store.Txn) error { // as an earlier version stored it
		c, err := tx.Cluster("d2")
		if err != nil {
			return err
		}
		c.K8sBindings = append(c.K8sBindings, flinkSA)
		return tx.PutCluster(c)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Authority.UpdateCluster(e.Ctx, admin, authority.UpdateClusterRequest{Name: "d2", RemoveK8sBindings: []store.K8sBinding{flinkSA}}); err != nil {
		t.Fatal(err)
	}
	v, err := e.Authority.GetCluster(e.Ctx, "d2")
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Cluster.K8sBindings) != 0 {
		t.Fatalf("after removing flink/flink the cluster is bound to %v", v.Cluster.K8sBindings)
	}
	pod := authority.Actor{Kind: authority.ActorK8s, Namespace: "flink", ServiceAccount: "flink", Pod: "d2-tm-0"}
	if _, err := e.EnrollAs(pod, "d2", "taskmanager", ""); !errors.Is(err, authority.ErrDenied) {
		t.Errorf("a pod of the removed service account enrolls: %v", err)
	}
}

// TestAClusterTakesABoundedNumberOfBindings: every creation and binding
// change reads every cluster's bindings, so one cluster takes at most
// MaxK8sBindings, at creation and by updates; a refused change stores
// nothing.
func TestAClusterTakesABoundedNumberOfBindings(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	bindings := func(prefix string, n int) []store.K8sBinding {
		var out []store.K8sBinding
		for i := range n {
			out = append(out, store.K8sBinding{Namespace: "ns", ServiceAccount: fmt.Sprintf("%s-%d", prefix, i)})
		}
		return out
	}
	_, err := e.Authority.CreateCluster(e.Ctx, admin, authority.CreateClusterRequest{Name: "many", K8sBindings: bindings("a", authority.MaxK8sBindings+1)})
	if !errors.Is(err, authority.ErrInvalid) || !strings.Contains(err.Error(), "at most 64") {
		t.Fatalf("a create with %d bindings: %v, want it refused", authority.MaxK8sBindings+1, err)
	}
	e.CreateCluster(authority.CreateClusterRequest{Name: "full", K8sBindings: bindings("b", authority.MaxK8sBindings)})
	_, err = e.Authority.UpdateCluster(e.Ctx, admin, authority.UpdateClusterRequest{Name: "full", AddK8sBindings: bindings("c", 1)})
	if !errors.Is(err, authority.ErrInvalid) || !strings.Contains(err.Error(), "would have 65") {
		t.Fatalf("a binding beyond the bound: %v, want it refused", err)
	}
	v, err := e.Authority.GetCluster(e.Ctx, "full")
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Cluster.K8sBindings) != authority.MaxK8sBindings {
		t.Fatalf("the refused update changed the bindings: %d", len(v.Cluster.K8sBindings))
	}
	// Removing one makes room for another in the same update.
	if _, err := e.Authority.UpdateCluster(e.Ctx, admin, authority.UpdateClusterRequest{Name: "full",
		RemoveK8sBindings: bindings("b", 1), AddK8sBindings: bindings("c", 1)}); err != nil {
		t.Fatalf("a swap within the bound: %v", err)
	}
}

// TestAClusterOverTheBindingBoundCanStillBeShrunkAndToggled (review): a
// cluster stored with more than MaxK8sBindings before the bound existed
// must still take a change that does not add bindings: removing one, or
// turning automatic rotation off. Today every such update is refused.
func TestAClusterOverTheBindingBoundCanStillBeShrunkAndToggled(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	var many []store.K8sBinding
	for i := range authority.MaxK8sBindings + 6 {
		many = append(many, store.K8sBinding{Namespace: "ns", ServiceAccount: fmt.Sprintf("old-%d", i)})
	}
	e.CreateCluster(authority.CreateClusterRequest{Name: "legacy"})
	// What an earlier version stored: more bindings than the bound.
	if err := e.Store.Update(e.Ctx, func(tx *store.Txn) error {
		c, err := tx.Cluster("legacy")
		if err != nil {
			return err
		}
		c.K8sBindings = many
		return tx.PutCluster(c)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Authority.UpdateCluster(e.Ctx, admin, authority.UpdateClusterRequest{Name: "legacy", RemoveK8sBindings: many[:1]}); err != nil {
		t.Errorf("removing one binding from an over-bound cluster: %v, want it done", err)
	}
	off := false
	if _, err := e.Authority.UpdateCluster(e.Ctx, admin, authority.UpdateClusterRequest{Name: "legacy", AutoRotate: &off}); err != nil {
		t.Errorf("turning automatic rotation off on an over-bound cluster: %v, want it done", err)
	}
}

// TestABindingsRolesBoundWhatItsPodsEnrollAs: a binding that names roles
// lets its pods enroll as those alone (a leaked TaskManager token gets no
// JobManager or REST server material), refused before anything is spent
// and audited; one without roles lets them enroll as any pod role; adding
// the binding again sets its roles; a role no pod may have is refused.
func TestABindingsRolesBoundWhatItsPodsEnrollAs(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	tm := store.K8sBinding{Namespace: "flink", ServiceAccount: "orders-tm", Roles: []string{"taskmanager"}}
	jm := store.K8sBinding{Namespace: "flink", ServiceAccount: "orders-jm"}
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders", K8sBindings: []store.K8sBinding{tm, jm}})
	pod := func(sa, name string) authority.Actor {
		return authority.Actor{Kind: authority.ActorK8s, Namespace: "flink", ServiceAccount: sa, Pod: name}
	}
	enroll := func(actor authority.Actor, role string) error {
		t.Helper()
		_, csr, err := authoritytest.NewCSR("ecdsa-p256", actor.Pod)
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.Authority.Enroll(e.Ctx, actor, authority.EnrollRequest{Cluster: "orders", Role: role, CSR: csr, DNSNames: []string{"orders-rest-tls"}})
		return err
	}
	if err := enroll(pod("orders-tm", "orders-taskmanager-1"), "taskmanager"); err != nil {
		t.Fatalf("a TaskManager pod of a taskmanager binding: %v", err)
	}
	for _, role := range []string{"jobmanager", "rest-server"} {
		err := enroll(pod("orders-tm", "orders-taskmanager-2"), role)
		if !errors.Is(err, authority.ErrDenied) || !strings.Contains(err.Error(), "may enroll for cluster \"orders\" as taskmanager only, not "+role) {
			t.Fatalf("a taskmanager binding's pod enrolls as %s: %v; want ErrDenied naming its roles", role, err)
		}
		if _, err := e.Authority.KeyType(e.Ctx, pod("orders-tm", "orders-taskmanager-2"), "orders", role, ""); !errors.Is(err, authority.ErrDenied) {
			t.Fatalf("KeyType for %s through a taskmanager binding: %v; want ErrDenied", role, err)
		}
	}
	if last := e.Audit("orders"); last[len(last)-1].Outcome != "denied" {
		t.Fatalf("the refusal was not audited: %+v", last[len(last)-1])
	}
	if hs, err := e.Authority.ListHolders(e.Ctx, "orders", true); err != nil || len(hs) != 1 {
		t.Fatalf("holders after the refusals: %d, %v; want the one TaskManager", len(hs), err)
	}
	for _, role := range []string{"jobmanager", "taskmanager", "rest-server"} {
		if err := enroll(pod("orders-jm", "orders-jm-"+role), role); err != nil {
			t.Fatalf("a binding without roles: enroll as %s: %v", role, err)
		}
	}

	v, err := e.Authority.UpdateCluster(e.Ctx, authoritytest.Admin, authority.UpdateClusterRequest{Name: "orders",
		AddK8sBindings: []store.K8sBinding{{Namespace: "flink", ServiceAccount: "orders-tm", Roles: []string{"rest-server", "taskmanager", "taskmanager"}}}})
	if err != nil || len(v.Cluster.K8sBindings) != 2 || strings.Join(v.Cluster.K8sBindings[0].Roles, ",") != "rest-server,taskmanager" {
		t.Fatalf("adding the bound account again with two roles: %+v, %v; want its roles set, sorted, once each", v, err)
	}
	if err := enroll(pod("orders-tm", "orders-taskmanager-3"), "rest-server"); err != nil {
		t.Fatalf("rest-server after the binding took it: %v", err)
	}
	if last := e.Audit("orders"); last[len(last)-2].Details["roles_changed"] != "flink/orders-tm:taskmanager->rest-server+taskmanager" || last[len(last)-2].Details["added"] != "" {
		t.Fatalf("the update was audited with %v; want the roles' change, from and to, and no add", last[len(last)-2].Details)
	}
	// Again with the roles it has: nothing changes, nothing is said to.
	if _, err := e.Authority.UpdateCluster(e.Ctx, authoritytest.Admin, authority.UpdateClusterRequest{Name: "orders",
		AddK8sBindings: []store.K8sBinding{{Namespace: "flink", ServiceAccount: "orders-tm", Roles: []string{"taskmanager", "rest-server"}}}}); err != nil {
		t.Fatal(err)
	}
	if last := e.Audit("orders"); last[len(last)-1].Details["roles_changed"] != "" {
		t.Fatalf("re-adding a binding with its own roles was audited as a change: %v", last[len(last)-1].Details)
	}
	// Adding it again without roles would widen it to every role unseen:
	// refused, naming its roles and how to ask for all.
	_, err = e.Authority.UpdateCluster(e.Ctx, authoritytest.Admin, authority.UpdateClusterRequest{Name: "orders",
		AddK8sBindings: []store.K8sBinding{{Namespace: "flink", ServiceAccount: "orders-tm"}}})
	if !errors.Is(err, authority.ErrInvalid) || !strings.Contains(err.Error(), `already bound to cluster "orders" as rest-server, taskmanager: to change what its pods may enroll as, give the roles (flink/orders-tm:jobmanager,rest-server,taskmanager for all)`) {
		t.Fatalf("adding a role-limited binding again without roles: %v; want it refused, naming its roles", err)
	}
	// Roles on a removal mean nothing: refused, not audited as if applied.
	_, err = e.Authority.UpdateCluster(e.Ctx, authoritytest.Admin, authority.UpdateClusterRequest{Name: "orders",
		RemoveK8sBindings: []store.K8sBinding{{Namespace: "flink", ServiceAccount: "orders-tm", Roles: []string{"rest-server"}}}})
	if !errors.Is(err, authority.ErrInvalid) || !strings.Contains(err.Error(), "is removed whole") {
		t.Fatalf("a removal with roles: %v; want ErrInvalid", err)
	}
	if v, err := e.Authority.GetCluster(e.Ctx, "orders"); err != nil || len(v.Cluster.K8sBindings) != 2 || len(v.Cluster.K8sBindings[0].Roles) != 2 {
		t.Fatalf("after the refusals: %+v, %v; want both bindings as they were", v, err)
	}
	// A pod asking for rest-client is told it never may, not to widen its
	// binding to a role no binding takes.
	if err := enroll(pod("orders-tm", "orders-taskmanager-4"), "rest-client"); !errors.Is(err, authority.ErrDenied) || !strings.Contains(err.Error(), "an administrator hands it out") {
		t.Fatalf("rest-client through a role-limited binding: %v; want the rest-client refusal", err)
	}
	for _, bad := range []string{"rest-client", "admin"} {
		_, err := e.Authority.UpdateCluster(e.Ctx, authoritytest.Admin, authority.UpdateClusterRequest{Name: "orders",
			AddK8sBindings: []store.K8sBinding{{Namespace: "flink", ServiceAccount: "orders-tm", Roles: []string{bad}}}})
		if !errors.Is(err, authority.ErrInvalid) || !strings.Contains(err.Error(), "a pod may enroll as jobmanager, rest-server, taskmanager") {
			t.Fatalf("a binding with role %s: %v; want ErrInvalid naming the pod roles", bad, err)
		}
	}
}
