package authority_test

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/internal/etcdtest"
	"github.com/flinkpki/flinkpki/issuer"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/etcd"
)

// TestCreateClusterRefusesRequestsThatCanNeverWork checks every kind of bad
// input: ErrInvalid, nothing stored, and a denied audit entry.
func TestCreateClusterRefusesRequestsThatCanNeverWork(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  authority.CreateClusterRequest
	}{
		{"an empty name is refused", authority.CreateClusterRequest{}},
		{"a name longer than 63 characters is refused", authority.CreateClusterRequest{Name: strings.Repeat("a", 64)}},
		{"an upper-case name is refused", authority.CreateClusterRequest{Name: "Orders"}},
		{"a path in the name is refused", authority.CreateClusterRequest{Name: "../orders"}},
		{"a name ending in a dash is refused", authority.CreateClusterRequest{Name: "orders-"}},
		{"an unknown key type is refused", authority.CreateClusterRequest{Name: "orders", KeyType: "dsa-1024"}},
		{"a negative CA validity is refused", authority.CreateClusterRequest{Name: "orders", CAValidity: -day}},
		{"a negative leaf validity is refused", authority.CreateClusterRequest{Name: "orders", LeafValidity: -day}},
		{"a leaf validity longer than the CA's is refused", authority.CreateClusterRequest{Name: "orders", CAValidity: 30 * day, LeafValidity: 60 * day}},
		{"a CA too short for a rotation schedule is refused", authority.CreateClusterRequest{Name: "orders", CAValidity: 90 * day, LeafValidity: 30 * day}},
		{"a CA too short for the default leaf validity is refused", authority.CreateClusterRequest{Name: "orders", CAValidity: 200 * day}},
		{"binding the default service account is refused", authority.CreateClusterRequest{Name: "orders",
			K8sBindings: []store.K8sBinding{{Namespace: "flink", ServiceAccount: "default"}}}},
		{"a binding without a namespace is refused", authority.CreateClusterRequest{Name: "orders",
			K8sBindings: []store.K8sBinding{{ServiceAccount: "flink"}}}},
		{"a leaf validity of a nanosecond is refused", authority.CreateClusterRequest{Name: "orders", LeafValidity: time.Nanosecond}},
		{"a leaf validity just under the minimum is refused", authority.CreateClusterRequest{Name: "orders", LeafValidity: authority.MinLeafValidity - 1}},
		{"a path as the namespace is refused", authority.CreateClusterRequest{Name: "orders",
			K8sBindings: []store.K8sBinding{{Namespace: "../x", ServiceAccount: "orders-flink"}}}},
		{"an upper-case namespace is refused", authority.CreateClusterRequest{Name: "orders",
			K8sBindings: []store.K8sBinding{{Namespace: "Flink", ServiceAccount: "orders-flink"}}}},
		{"a dotted namespace is refused, as namespaces are labels", authority.CreateClusterRequest{Name: "orders",
			K8sBindings: []store.K8sBinding{{Namespace: "flink.prod", ServiceAccount: "orders-flink"}}}},
		{"a service account with a space is refused", authority.CreateClusterRequest{Name: "orders",
			K8sBindings: []store.K8sBinding{{Namespace: "flink", ServiceAccount: "a b"}}}},
		{"a service account with a slash is refused", authority.CreateClusterRequest{Name: "orders",
			K8sBindings: []store.K8sBinding{{Namespace: "flink", ServiceAccount: "a/b"}}}},
		{"a second binding that is bad is refused too", authority.CreateClusterRequest{Name: "orders",
			K8sBindings: []store.K8sBinding{{Namespace: "flink", ServiceAccount: "orders-flink"}, {Namespace: "flink", ServiceAccount: "x\ny"}}}},
	}
	e := authoritytest.New(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Authority.CreateCluster(e.Ctx, admin, tt.req)
			if !errors.Is(err, authority.ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
			if strings.Contains(err.Error(), "certificate request") {
				t.Errorf("a refused cluster creation speaks of a certificate request: %v", err)
			}
			cs, _, lerr := e.Authority.ListClusters(e.Ctx, "", 0)
			if lerr != nil || len(cs) != 0 {
				t.Errorf("a refused request left %d clusters (%v)", len(cs), lerr)
			}
			got := lastAudit(t, e, "")
			if got.Action != "cluster.create" || got.Outcome != "denied" || got.Reason != err.Error() {
				t.Errorf("refusal audited as %s/%s (%q), want cluster.create/denied with the error", got.Action, got.Outcome, got.Reason)
			}
		})
	}
}

// TestCreateClusterFillsDefaultsAndRefusesDuplicates covers the good path:
// zero validities mean the defaults, both lineages start with one active
// CA of the chosen key type, and a second cluster of the same name is
// refused without touching the first.
func TestCreateClusterFillsDefaultsAndRefusesDuplicates(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	v := e.CreateCluster(authority.CreateClusterRequest{Name: "orders", KeyType: "ecdsa-p384"})
	c := v.Cluster
	if c.CAValidity != ca.DefaultCAValidity || c.LeafValidity != issuer.DefaultLeafValidity || !c.AutoRotate || c.KeyType != "ecdsa-p384" {
		t.Errorf("cluster created as %+v, want default validities, auto-rotation and ecdsa-p384", c)
	}
	for _, p := range []ca.Purpose{ca.PurposeInternal, ca.PurposeREST} {
		a := v.Lineage(p).Active()
		if a == nil || len(v.Lineage(p)) != 1 || a.Generation != 1 {
			t.Fatalf("%s lineage %v, want one active generation-1 CA", p, v.Lineage(p).TrustIDs())
		}
		if kt, err := ca.KeyTypeOf(a.Cert.PublicKey); err != nil || kt != ca.KeyTypeECDSAP384 {
			t.Errorf("%s CA key is %s (%v), want ecdsa-p384", p, kt, err)
		}
		if got := a.Cert.NotAfter.Sub(e.Clock.Now()); got != ca.DefaultCAValidity {
			t.Errorf("%s CA is valid for %s, want %s", p, got, ca.DefaultCAValidity)
		}
	}
	if v.Lineage(ca.PurposeInternal).Active().Cert.Equal(v.Lineage(ca.PurposeREST).Active().Cert) {
		t.Errorf("the internal and REST CAs are the same certificate")
	}

	e.Clock.Add(time.Hour)
	_, err := e.Authority.CreateCluster(e.Ctx, admin, authority.CreateClusterRequest{Name: "orders"})
	if !errors.Is(err, authority.ErrExists) {
		t.Fatalf("create a duplicate: got %v, want ErrExists", err)
	}
	if want := `cluster "orders" already exists`; err.Error() != want {
		t.Errorf("create a duplicate: the error says %q, want %q", err, want)
	}
	again, err := e.Authority.GetCluster(e.Ctx, "orders")
	if err != nil || again.Cluster.KeyType != "ecdsa-p384" || !again.Cluster.Created.Equal(c.Created) {
		t.Errorf("the duplicate request changed the cluster: %+v, %v", again, err)
	}
	wantAudit(t, e, "orders", "cluster.create", "denied", "admin:test")
}

// TestCreateClusterAcceptsTheShortestLeafAndKubernetesNames checks the
// boundaries the refusals above sit just outside of: the minimum leaf
// validity, a namespace label and a dotted service-account subdomain.
func TestCreateClusterAcceptsTheShortestLeafAndKubernetesNames(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	b := []store.K8sBinding{{Namespace: "flink-prod", ServiceAccount: "orders.flink-sa"}, {Namespace: "a", ServiceAccount: "b"}}
	v := e.CreateCluster(authority.CreateClusterRequest{Name: "orders", CAValidity: 8 * day, LeafValidity: authority.MinLeafValidity, K8sBindings: b})
	if v.Cluster.LeafValidity != authority.MinLeafValidity || len(v.Cluster.K8sBindings) != 2 || !reflect.DeepEqual(v.Cluster.K8sBindings[0], b[0]) {
		t.Errorf("cluster created as %+v, want leaf validity %s and bindings %v", v.Cluster, authority.MinLeafValidity, b)
	}
}

// TestNotFoundSaysSoOnce: the sentinel's words end the sentence instead of
// prefixing one that repeats them ("not found: cluster "x" not found").
func TestNotFoundSaysSoOnce(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders"})
	_, err := e.Authority.GetCluster(e.Ctx, "nope")
	if want := `cluster "nope" not found`; !errors.Is(err, authority.ErrNotFound) || err.Error() != want {
		t.Errorf("get a missing cluster: %v, want %q", err, want)
	}
	err = e.Authority.DeleteCluster(e.Ctx, admin, "nope")
	if want := `cluster "nope" not found`; !errors.Is(err, authority.ErrNotFound) || err.Error() != want {
		t.Errorf("delete a missing cluster: %v, want %q", err, want)
	}
	_, _, err = e.Authority.CreateToken(e.Ctx, system, "nope", "taskmanager", 0, 0)
	if want := `cluster "nope" not found`; !errors.Is(err, authority.ErrNotFound) || err.Error() != want {
		t.Errorf("a token for a missing cluster: %v, want %q", err, want)
	}
	_, err = e.Authority.ReleaseHolder(e.Ctx, admin, "orders", "tm-0", "")
	if want := `holder "tm-0" of cluster "orders" not found (flinkpki holder list --cluster orders)`; !errors.Is(err, authority.ErrNotFound) || err.Error() != want {
		t.Errorf("release a missing holder: %v, want %q", err, want)
	}
}

// TestDeletingAClusterWithThousandsOfTokensWorksOnEtcd: a cluster's tokens
// are not under its key prefix, so they go first, 100 per transaction, each
// batch audited; in the cluster's own transaction 1,100 of them would pass
// etcd's --max-txn-ops (1024 in this test's etcd, 128 by default).
func TestDeletingAClusterWithThousandsOfTokensWorksOnEtcd(t *testing.T) {
	c := etcdtest.New(t, 1)
	e := authoritytest.New(t, onEtcd(c, etcd.Config{Prefix: "/tokens/"}))
	e.CreateCluster(authority.CreateClusterRequest{Name: "big"})
	e.CreateCluster(authority.CreateClusterRequest{Name: "small"})
	expires := e.Clock.Now().Add(time.Hour)
	for lo := 0; lo < 1100; lo += 100 {
		if err := e.Store.Update(e.Ctx, func(tx *store.Txn) error {
			for i := lo; i < lo+100; i++ {
				if err := tx.PutToken(&store.Token{ID: fmt.Sprintf("big-%04d", i), Cluster: "big", Role: "taskmanager", Expires: expires, UsesLeft: 1}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Store.Update(e.Ctx, func(tx *store.Txn) error {
		return tx.PutToken(&store.Token{ID: "small-0", Cluster: "small", Role: "taskmanager", Expires: expires, UsesLeft: 1})
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.Authority.DeleteCluster(e.Ctx, admin, "big"); err != nil {
		t.Fatalf("delete a cluster with 1,100 tokens: %v", err)
	}
	left := map[string]int{}
	if err := e.Store.View(e.Ctx, func(tx *store.Txn) error {
		return tx.ForEachToken(func(tok *store.Token) (bool, error) { left[tok.Cluster]++; return true, nil })
	}); err != nil {
		t.Fatal(err)
	}
	if left["big"] != 0 || left["small"] != 1 {
		t.Fatalf("tokens left after the delete: %v; want none of big and small's one", left)
	}
	revoked, deleted := 0, 0
	for _, a := range e.Audit("big") {
		switch a.Action {
		case "token.delete":
			n, _ := strconv.Atoi(a.Details["count"])
			revoked += n
		case "cluster.delete":
			deleted++
		}
	}
	if revoked != 1100 || deleted != 1 {
		t.Fatalf("audited %d revoked tokens and %d cluster deletions; want 1100 and 1", revoked, deleted)
	}
	if err := e.Authority.DeleteCluster(e.Ctx, admin, "big"); !errors.Is(err, authority.ErrNotFound) {
		t.Fatalf("delete it again: %v, want ErrNotFound", err)
	}
}

// TestClusterLocksLastOnlyWhileInUse: lifecycle calls serialise on a lock
// per cluster name; names that were only asked for (a typo, a cluster that
// does not exist, deleted ones) leave no lock behind, and concurrent calls
// on one cluster still share it.
func TestClusterLocksLastOnlyWhileInUse(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "l1"})
	for i := range 100 {
		_ = e.Authority.DeleteCluster(e.Ctx, admin, fmt.Sprintf("nope-%d", i))
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = e.Authority.Prepare(e.Ctx, admin, "l1", "internal")
		}()
	}
	wg.Wait()
	if n := e.Authority.ClusterLocks(); n != 0 {
		t.Fatalf("%d cluster locks left after every call returned", n)
	}
	st, err := e.Authority.Status(e.Ctx, "l1")
	if err != nil {
		t.Fatal(err)
	}
	prepared := 0
	for _, l := range st.Lineages {
		for _, c := range l.CAs {
			if c.CA.State == ca.StatePrepared {
				prepared++
			}
		}
	}
	if prepared != 1 {
		t.Errorf("%d prepared CAs after 8 concurrent prepares, want 1", prepared)
	}
}
