package etcd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/flinkpki/flinkpki/internal/etcdtest"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/etcd"
)

func TestDataSurvivesReopenAndKeysAreSealed(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	kek := newKEK(t)
	s := mustOpenStore(t, newBackend(t, shared.Endpoints(), prefix), kek)
	secretKey := []byte("-----BEGIN PRIVATE KEY----- pretend PKCS#8 bytes")
	err := s.Update(ctx, func(tx *store.Txn) error {
		if err := tx.PutCluster(&store.Cluster{Name: "orders", KeyType: "ecdsa-p256", Created: time.Now()}); err != nil {
			return err
		}
		if err := tx.PutCA(&store.CA{Cluster: "orders", ID: "internal-1", Purpose: "internal", State: "active", CertDER: []byte{1, 2}, Key: secretKey}); err != nil {
			return err
		}
		return tx.AppendAudit(&store.AuditEntry{Action: "cluster.create", Outcome: "ok", Cluster: "orders"})
	})
	if err != nil {
		t.Fatal(err)
	}

	b2 := newBackend(t, shared.Endpoints(), prefix)
	resp, err := b2.Client().Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if bytes.Contains(kv.Value, secretKey) || bytes.Contains(kv.Value, []byte("BEGIN PRIVATE KEY")) {
			t.Fatalf("etcd key %s holds the CA key in clear text", kv.Key)
		}
	}
	s2 := mustOpenStore(t, b2, kek)
	err = s2.View(ctx, func(tx *store.Txn) error {
		c, err := tx.Cluster("orders")
		if err != nil {
			return err
		}
		if c.KeyType != "ecdsa-p256" {
			t.Errorf("key type = %q after reopen", c.KeyType)
		}
		cas, err := tx.CAs("orders")
		if err != nil {
			return err
		}
		if len(cas) != 1 {
			t.Fatalf("CAs = %+v", cas)
		}
		if key, err := s2.OpenCAKey(cas[0]); err != nil || !bytes.Equal(key, secretKey) {
			t.Errorf("CA key did not round-trip: %q %v", key, err)
		}
		seq, hash, err := tx.AuditHead()
		if err != nil {
			return err
		}
		if seq != 1 || hash == "" {
			t.Errorf("audit head = %d %q", seq, hash)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestWrongKEKIsRefusedAndLeavesTheStoreUnchanged(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	b := newBackend(t, shared.Endpoints(), prefix)
	mustOpenStore(t, b, newKEK(t))
	snapshot := func() string {
		resp, err := b.Client().Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		for _, kv := range resp.Kvs {
			fmt.Fprintf(&out, "%s=%x@%d\n", kv.Key, kv.Value, kv.ModRevision)
		}
		return out.String()
	}
	before := snapshot()
	if _, err := openStore(t, b, newKEK(t)); !errors.Is(err, store.ErrWrongKEK) {
		t.Fatalf("err = %v, want ErrWrongKEK", err)
	}
	if after := snapshot(); after != before {
		t.Fatalf("opening with a wrong key changed etcd:\nbefore %s\nafter %s", before, after)
	}
}

func TestListClustersPaginates(t *testing.T) {
	ctx := context.Background()
	s := mustOpenStore(t, newBackend(t, shared.Endpoints(), testPrefix(t)), newKEK(t))
	names := []string{"a", "b", "c", "d", "e"}
	err := s.Update(ctx, func(tx *store.Txn) error {
		for _, n := range names {
			if err := tx.PutCluster(&store.Cluster{Name: n}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	after := ""
	for pages := 0; pages < 10; pages++ {
		var page []*store.Cluster
		var next string
		if err := s.View(ctx, func(tx *store.Txn) error {
			var err error
			page, next, err = tx.ListClusters(after, 2)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		for _, c := range page {
			got = append(got, c.Name)
		}
		if next == "" {
			break
		}
		after = next
	}
	if len(got) != len(names) {
		t.Fatalf("paged listing = %v, want %v", got, names)
	}
	for i := range names {
		if got[i] != names[i] {
			t.Fatalf("paged listing = %v, want %v", got, names)
		}
	}
}

func TestRotateKEKReencryptsEveryKey(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	b := newBackend(t, shared.Endpoints(), prefix)
	oldKEK, newK := newKEK(t), newKEK(t)
	s := mustOpenStore(t, b, oldKEK)
	err := s.Update(ctx, func(tx *store.Txn) error {
		for _, id := range []string{"internal-1", "rest-1"} {
			if err := tx.PutCA(&store.CA{Cluster: "c", ID: id, Key: []byte("key-" + id)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	next, _ := store.NewSealer(newK, nil)
	n, err := s.RotateKEK(ctx, next)
	if err != nil || n != 2 {
		t.Fatalf("RotateKEK = %d, %v", n, err)
	}
	if _, err := openStore(t, b, oldKEK); !errors.Is(err, store.ErrWrongKEK) {
		t.Fatalf("old KEK still opens the store: %v", err)
	}
	s = mustOpenStore(t, newBackend(t, shared.Endpoints(), prefix), newK)
	err = s.View(ctx, func(tx *store.Txn) error {
		cas, err := tx.CAs("c")
		if err != nil || len(cas) != 2 {
			t.Fatalf("after rotation: %v %v", cas, err)
		}
		if key, err := s.OpenCAKey(cas[0]); err != nil || string(key) != "key-internal-1" {
			t.Fatalf("after rotation: %q %v", key, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDeleteClusterRemovesItsRecords(t *testing.T) {
	ctx := context.Background()
	s := mustOpenStore(t, newBackend(t, shared.Endpoints(), testPrefix(t)), newKEK(t))
	err := s.Update(ctx, func(tx *store.Txn) error {
		for _, c := range []string{"orders", "payments"} {
			if err := tx.PutCluster(&store.Cluster{Name: c}); err != nil {
				return err
			}
			if err := tx.PutCA(&store.CA{Cluster: c, ID: "internal-1", Key: []byte("k")}); err != nil {
				return err
			}
			if err := tx.PutHolder(&store.Holder{Cluster: c, Purpose: "internal", Name: "jm-0"}); err != nil {
				return err
			}
			if err := tx.PutToken(&store.Token{ID: "tok-" + c, Cluster: c, UsesLeft: 1}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx *store.Txn) error { return tx.DeleteCluster("orders") }); err != nil {
		t.Fatal(err)
	}
	err = s.View(ctx, func(tx *store.Txn) error {
		if _, err := tx.Cluster("orders"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleted cluster still readable: %v", err)
		}
		if cas, _ := tx.CAs("orders"); len(cas) != 0 {
			t.Errorf("CAs of the deleted cluster remain: %v", cas)
		}
		if _, err := tx.Token("tok-orders"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("token of the deleted cluster remains: %v", err)
		}
		if cas, _ := tx.CAs("payments"); len(cas) != 1 {
			t.Errorf("the other cluster lost its CAs: %v", cas)
		}
		_, err := tx.Holder("payments", "internal", "jm-0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestScanSeesTheTransactionsOwnWritesInKeyOrder(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, shared.Endpoints(), testPrefix(t))
	audit := []byte("audit")
	seq := func(n byte) []byte { return []byte{0, 0, 0, 0, 0, 0, 1, n} }
	err := b.Update(ctx, func(tx store.Tx) error {
		for _, n := range []byte{0x01, 0x02, 0xff, 0x80} {
			if err := tx.Put(audit, seq(n), []byte{n}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(tx store.Tx) error
		start  []byte
		want   []byte
	}{
		{"a plain scan returns stored keys in byte order", nil, nil, []byte{0x01, 0x02, 0x80, 0xff}},
		{"a scan from a start key skips the keys before it", nil, seq(0x02), []byte{0x02, 0x80, 0xff}},
		{"a buffered put appears in its place", func(tx store.Tx) error { return tx.Put(audit, seq(0x10), []byte{0x10}) }, nil, []byte{0x01, 0x02, 0x10, 0x80, 0xff}},
		{"a buffered delete hides the stored key", func(tx store.Tx) error { return tx.Delete(audit, seq(0x80)) }, nil, []byte{0x01, 0x02, 0xff}},
		{"a buffered overwrite shows the new value", func(tx store.Tx) error { return tx.Put(audit, seq(0x02), []byte{0x22}) }, nil, []byte{0x01, 0x22, 0x80, 0xff}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []byte
			rollback := errors.New("rollback")
			err := b.Update(ctx, func(tx store.Tx) error {
				if tc.change != nil {
					if err := tc.change(tx); err != nil {
						return err
					}
				}
				err := tx.Scan(audit, nil, tc.start, func(k, v []byte) (bool, error) {
					got = append(got, v...)
					return true, nil
				})
				if err != nil {
					return err
				}
				return rollback
			})
			if !errors.Is(err, rollback) {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("scan = %x, want %x", got, tc.want)
			}
		})
	}
}

func TestAFailedUpdateWritesNothingAndViewRefusesWrites(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, shared.Endpoints(), testPrefix(t))
	boom := errors.New("boom")
	err := b.Update(ctx, func(tx store.Tx) error {
		if err := tx.Put([]byte("clusters"), []byte("x"), []byte("1")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want the fn error", err)
	}
	err = b.View(ctx, func(tx store.Tx) error {
		if v := tx.Get([]byte("clusters"), []byte("x")); v != nil {
			t.Errorf("a rolled back write is visible: %q", v)
		}
		if err := tx.Put([]byte("clusters"), []byte("y"), []byte("1")); err == nil {
			t.Error("View accepted a write")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(ctx, func(tx store.Tx) error { return tx.Put([]byte("nope"), []byte("x"), nil) }); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("a write to an unknown bucket = %v, want ErrCorrupt", err)
	}
}

func TestAnUnreachableClusterFailsWithErrUnavailable(t *testing.T) {
	ctx := context.Background()
	ports, err := etcdtest.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	b, err := etcd.Open(ctx, etcd.Config{Endpoints: []string{addr}, OpTimeout: 300 * time.Millisecond, DialTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	checks := map[string]func() error{
		"Healthy": func() error { return b.Healthy(ctx) },
		"View": func() error {
			return b.View(ctx, func(tx store.Tx) error { tx.Get([]byte("meta"), []byte("schema")); return nil })
		},
		"Update": func() error {
			return b.Update(ctx, func(tx store.Tx) error { return tx.Put([]byte("meta"), []byte("x"), nil) })
		},
		"Open": func() error { _, err := openStore(t, b, newKEK(t)); return err },
	}
	for name, call := range checks {
		err := call()
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s = %v, want store.ErrUnavailable", name, err)
		}
		if err != nil && !strings.Contains(err.Error(), "etcd at "+addr+" unreachable") {
			t.Errorf("%s error does not name the endpoint: %v", name, err)
		}
	}
}
