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
	"github.com/flinkpki/flinkpki/store/storetest"
)

// TestConformance runs the suite every backend passes on a key prefix of a
// real 3-member etcd; each Open is another replica on the same prefix.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Harness {
		prefix := testPrefix(t)
		return storetest.Harness{
			Open: func(t testing.TB) store.Backend { return newBackend(t, shared.Endpoints(), prefix) },
			Raw: func(t testing.TB) []byte {
				b := newBackend(t, shared.Endpoints(), prefix)
				resp, err := b.Client().Get(context.Background(), prefix, clientv3.WithPrefix())
				if err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				for _, kv := range resp.Kvs {
					fmt.Fprintf(&out, "%s=%s@%d\n", kv.Key, kv.Value, kv.ModRevision)
				}
				return out.Bytes()
			},
		}
	})
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

// TestDeletePrefixIsOneRangeDeleteWithReadYourWrites: a DeletePrefix drops
// what the transaction buffered in the range, hides the stored keys from
// later reads and scans of the same transaction, treats a later Delete
// there as done, and refuses a later Put there (etcd would refuse the
// whole commit); keys outside the range are untouched.
func TestDeletePrefixIsOneRangeDeleteWithReadYourWrites(t *testing.T) {
	ctx := context.Background()
	b := newBackend(t, shared.Endpoints(), testPrefix(t))
	mustOpenStore(t, b, newKEK(t)) // creates the buckets
	bk := []byte("holders")
	if err := b.Update(ctx, func(tx store.Tx) error {
		for _, k := range []string{"a/1", "a/2", "a/3", "b/1"} {
			if err := tx.Put(bk, []byte(k), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	err := b.Update(ctx, func(tx store.Tx) error {
		if err := tx.Put(bk, []byte("a/9"), []byte("buffered")); err != nil {
			return err
		}
		if err := tx.DeletePrefix(bk, []byte("a/")); err != nil {
			return err
		}
		if v := tx.Get(bk, []byte("a/2")); v != nil {
			t.Errorf("a/2 reads %q after DeletePrefix in the same transaction", v)
		}
		var seen []string
		if err := tx.Scan(bk, nil, nil, func(k, _ []byte) (bool, error) { seen = append(seen, string(k)); return true, nil }); err != nil {
			return err
		}
		if strings.Join(seen, ",") != "b/1" {
			t.Errorf("the scan after DeletePrefix sees %v, want only b/1", seen)
		}
		if err := tx.Delete(bk, []byte("a/1")); err != nil {
			t.Errorf("a Delete inside the deleted range: %v, want nil (already deleted)", err)
		}
		if err := tx.Put(bk, []byte("a/5"), []byte("v")); err == nil || !strings.Contains(err.Error(), "deleted earlier in this transaction") {
			t.Errorf("a Put inside the deleted range: %v, want a refusal", err)
		}
		return tx.Put(bk, []byte("c/1"), []byte("v"))
	})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	if err := b.View(ctx, func(tx store.Tx) error {
		return tx.Scan(bk, nil, nil, func(k, _ []byte) (bool, error) { left = append(left, string(k)); return true, nil })
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(left, ",") != "b/1,c/1" {
		t.Fatalf("after the commit the bucket holds %v, want b/1 and c/1", left)
	}
}
