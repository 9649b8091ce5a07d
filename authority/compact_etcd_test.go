package authority_test

import (
	"context"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/internal/etcdtest"
	"github.com/flinkpki/flinkpki/metrics"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/etcd"
)

// compactingBackend compacts etcd once, in the middle of a View, after the
// View's armed-th read: what etcd's auto-compaction does to a long read,
// which the etcd backend then runs again from the top.
type compactingBackend struct {
	*etcd.Backend
	armed atomic.Int64 // the read that triggers the compaction; 0 off
	fired atomic.Bool
}

func (b *compactingBackend) View(ctx context.Context, fn func(store.Tx) error) error {
	return b.Backend.View(ctx, func(tx store.Tx) error { return fn(&compactTx{Tx: tx, b: b}) })
}

type compactTx struct {
	store.Tx
	b     *compactingBackend
	reads int64
}

func (t *compactTx) after() {
	t.reads++
	if n := t.b.armed.Load(); n > 0 && t.reads == n && t.b.armed.CompareAndSwap(n, 0) {
		cli := t.b.Client()
		r, err := cli.Put(context.Background(), t.b.Prefix()+"zz-unrelated", "x")
		if err != nil {
			panic(err)
		}
		if _, err := cli.Compact(context.Background(), r.Header.Revision); err != nil {
			panic(err)
		}
		t.b.fired.Store(true)
	}
}

func (t *compactTx) Get(b, k []byte) []byte {
	v := t.Tx.Get(b, k)
	t.after()
	return v
}

func (t *compactTx) Scan(b, p, s []byte, fn func(k, v []byte) (bool, error)) error {
	err := t.Tx.Scan(b, p, s, fn)
	t.after()
	return err
}

func compactingAuthority(t *testing.T, prefix string, clusters ...string) (*authoritytest.Env, *compactingBackend) {
	c := etcdtest.New(t, 1)
	var cb *compactingBackend
	e := authoritytest.New(t, authoritytest.WithBackend(func(ctx context.Context) (store.Backend, error) {
		b, err := etcd.Open(ctx, etcd.Config{Endpoints: c.Endpoints(), Prefix: prefix})
		cb = &compactingBackend{Backend: b}
		return cb, err
	}))
	for _, n := range clusters {
		e.CreateCluster(authority.CreateClusterRequest{Name: n})
	}
	return e, cb
}

// TestAPageOfClustersReadAgainAfterACompactionHoldsEachOnce: a page of
// clusters (cluster list, the scheduler's tick, the expiry gauges) whose
// read etcd compacts away is read again from the top; each cluster must
// come once. Appended twice, the gauges' /metrics answered 500 (a series
// collected twice) until the next refresh, and the scheduler stepped a
// cluster twice.
func TestAPageOfClustersReadAgainAfterACompactionHoldsEachOnce(t *testing.T) {
	e, cb := compactingAuthority(t, "/compact-list/", "a", "b", "c")
	cb.armed.Store(3) // the third read: inside cluster a
	vs, _, err := e.Authority.ListClusters(e.Ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range vs {
		names = append(names, v.Cluster.Name)
	}
	if !cb.fired.Load() {
		t.Fatal("the compaction never ran during the read: the test proves nothing")
	}
	if !slices.Equal(names, []string{"a", "b", "c"}) {
		t.Errorf("ListClusters after a compaction mid-read = %v, want [a b c]", names)
	}

	e, cb = compactingAuthority(t, "/compact-expiries/", "a", "b")
	cb.armed.Store(3)
	xs, _, err := e.Authority.Expiries(e.Ctx, "", 500)
	if err != nil {
		t.Fatal(err)
	}
	if !cb.fired.Load() {
		t.Fatal("the compaction never ran during Expiries: the test proves nothing")
	}
	m := metrics.New()
	var cas []metrics.CA
	names = nil
	for _, x := range xs {
		names = append(names, x.Cluster)
		for _, c := range x.CAs {
			cas = append(cas, metrics.CA{Cluster: x.Cluster, ID: c.ID, State: string(c.State), NotAfter: c.NotAfter})
		}
	}
	m.SetCAs(cas, nil, nil, nil)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !slices.Equal(names, []string{"a", "b"}) || rec.Code != 200 {
		t.Errorf("Expiries after a compaction mid-read = %v; /metrics answered %d: %.300s", names, rec.Code, rec.Body.String())
	}
}
