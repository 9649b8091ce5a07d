package etcd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/bolt"
)

func newBolt(t testing.TB) *bolt.Backend {
	t.Helper()
	b, err := bolt.Open(filepath.Join(t.TempDir(), "flinkpki.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// fill writes a store with every kind of record, more audit entries than
// one copy chunk, and raw keys with arbitrary bytes.
func fill(t testing.TB, b store.Backend, kek []byte) {
	t.Helper()
	ctx := context.Background()
	s := mustOpenStore(t, b, kek)
	err := s.Update(ctx, func(tx *store.Txn) error {
		for _, c := range []string{"orders", "payments"} {
			if err := tx.PutCluster(&store.Cluster{Name: c, KeyType: "ecdsa-p256", Created: time.Unix(1700000000, 0)}); err != nil {
				return err
			}
			if err := tx.PutCA(&store.CA{Cluster: c, ID: "internal-1", State: "active", Key: []byte("secret-" + c)}); err != nil {
				return err
			}
			if err := tx.PutHolder(&store.Holder{Cluster: c, Purpose: "internal", Name: "jm-0"}); err != nil {
				return err
			}
			if err := tx.PutToken(&store.Token{ID: "tok-" + c, Cluster: c, UsesLeft: 3}); err != nil {
				return err
			}
		}
		if err := tx.PutAdminToken(&store.AdminToken{ID: "admin-1", Name: "ops"}); err != nil {
			return err
		}
		for i := range 250 {
			if err := tx.AppendAudit(&store.AuditEntry{Action: "test", Outcome: "ok", Reason: fmt.Sprint(i)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(ctx, func(tx store.Tx) error {
		return tx.Put([]byte("holders"), []byte{'x', 0x00, 0xff, 0x80, '/'}, []byte{0x00, 0x01, 0xfe})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// dump returns every bucket's keys and values in order.
func dump(t testing.TB, b store.Backend) string {
	t.Helper()
	var out bytes.Buffer
	err := b.View(context.Background(), func(tx store.Tx) error {
		for _, bk := range store.Buckets {
			err := tx.Scan(bk, nil, nil, func(k, v []byte) (bool, error) {
				fmt.Fprintf(&out, "%s %x %x\n", bk, k, v)
				return true, nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// migrate is what admin migrate does with a store: Copy, then, the copy
// verified, EndMigration. It returns the counts.
func migrate(t testing.TB, from, to store.Backend) map[string]int {
	t.Helper()
	ctx := context.Background()
	counts, err := store.Copy(ctx, from, to, store.CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.EndMigration(ctx, to); err != nil {
		t.Fatal(err)
	}
	return counts
}

func TestMigrationFromBoltToEtcdAndBackKeepsEveryByte(t *testing.T) {
	ctx := context.Background()
	kek := newKEK(t)
	src := newBolt(t)
	fill(t, src, kek)
	mid := newBackend(t, shared.Endpoints(), testPrefix(t))
	counts := migrate(t, src, mid)
	if counts["audit"] != 250 || counts["clusters"] != 2 || counts["holders"] != 3 || counts["meta"] != 3 {
		t.Fatalf("copied counts = %v", counts)
	}
	dst := newBolt(t)
	back := migrate(t, mid, dst)
	if fmt.Sprint(back) != fmt.Sprint(counts) {
		t.Fatalf("counts on the way back = %v, want %v", back, counts)
	}
	want := dump(t, src)
	for name, b := range map[string]store.Backend{"etcd": mid, "bolt after the round trip": dst} {
		if got := dump(t, b); got != want {
			t.Fatalf("%s differs from the source:\n%s\nwant\n%s", name, got, want)
		}
	}
	s := mustOpenStore(t, dst, kek)
	err := s.View(ctx, func(tx *store.Txn) error {
		cas, err := tx.CAs("orders")
		if err != nil || len(cas) != 1 {
			return fmt.Errorf("CAs after the round trip: %v %v", cas, err)
		}
		key, err := s.OpenCAKey(cas[0])
		if err != nil || string(key) != "secret-orders" {
			return fmt.Errorf("CA key after the round trip: %q %v", key, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMigrationRefusesATargetThatHoldsData(t *testing.T) {
	ctx := context.Background()
	src := newBolt(t)
	fill(t, src, newKEK(t))
	dst := newBackend(t, shared.Endpoints(), testPrefix(t))
	mustOpenStore(t, dst, newKEK(t))
	before := dump(t, dst)
	if _, err := store.Copy(ctx, src, dst, store.CopyOptions{}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("Copy into a used store = %v, want ErrExists", err)
	}
	if dump(t, dst) != before {
		t.Fatal("a refused migration changed the target")
	}
}

func TestVerifyNamesTheFirstDifference(t *testing.T) {
	ctx := context.Background()
	a, b := newBolt(t), newBackend(t, shared.Endpoints(), testPrefix(t))
	put := func(s store.Backend, k, v string) {
		if err := s.Update(ctx, func(tx store.Tx) error { return tx.Put([]byte("tokens"), []byte(k), []byte(v)) }); err != nil {
			t.Fatal(err)
		}
	}
	put(a, "t1", "same")
	put(b, "t1", "same")
	if _, err := store.Verify(ctx, a, b); err != nil {
		t.Fatalf("equal stores: %v", err)
	}
	put(b, "t1", "changed")
	if _, err := store.Verify(ctx, a, b); err == nil || !bytes.Contains([]byte(err.Error()), []byte("tokens/t1 differs")) {
		t.Fatalf("Verify of a changed value = %v", err)
	}
	put(b, "t1", "same")
	put(b, "t2", "extra")
	if _, err := store.Verify(ctx, a, b); err == nil || !bytes.Contains([]byte(err.Error()), []byte("tokens/t2 is in the target but not in the source")) {
		t.Fatalf("Verify of a target with an extra key = %v", err)
	}
	put(a, "t2", "extra")
	put(a, "t0", "first")
	if _, err := store.Verify(ctx, a, b); err == nil || !bytes.Contains([]byte(err.Error()), []byte("tokens/t0 is missing in the target")) {
		t.Fatalf("Verify of a target without a key = %v", err)
	}
	put(b, "t0", "first")

	// Many keys, over several of etcd's scan pages, walked side by side:
	// equal, then one value in the middle changed.
	if err := a.Update(ctx, func(tx store.Tx) error {
		for i := range 2500 {
			if err := tx.Put([]byte("holders"), fmt.Appendf(nil, "h%05d", i), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for lo := 0; lo < 2500; lo += 100 {
		if err := b.Update(ctx, func(tx store.Tx) error {
			for i := lo; i < lo+100; i++ {
				if err := tx.Put([]byte("holders"), fmt.Appendf(nil, "h%05d", i), []byte("v")); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	counts, err := store.Verify(ctx, a, b)
	if err != nil || counts["holders"] != 2500 || counts["tokens"] != 3 {
		t.Fatalf("Verify of equal stores = %v, %v; want 2500 holders and 3 tokens", counts, err)
	}
	put(b, "t0", "first")
	if err := b.Update(ctx, func(tx store.Tx) error { return tx.Put([]byte("holders"), []byte("h01700"), []byte("w")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Verify(ctx, a, b); err == nil || !bytes.Contains([]byte(err.Error()), []byte("holders/h01700 differs")) {
		t.Fatalf("Verify of a value changed on a later page = %v", err)
	}
}

func TestBackupIsABoltFileTheBoltBackendOpens(t *testing.T) {
	ctx := context.Background()
	kek := newKEK(t)
	b := newBackend(t, shared.Endpoints(), testPrefix(t))
	fill(t, b, kek)
	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := b.Backup(ctx, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || n == 0 {
		t.Fatalf("Backup = %d, %v", n, err)
	}
	restored, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	if got, want := dump(t, restored), dump(t, b); got != want {
		t.Fatalf("backup differs from etcd:\n%s\nwant\n%s", got, want)
	}
	if _, err := openStore(t, restored, kek); err != nil {
		t.Fatalf("the KEK does not open the backup: %v", err)
	}
}

// TestAMigrationCutShortClearsItsTarget: a copy that fails after it began
// writing (here its context ends after the first chunk of the audit
// bucket, as a signal would end it) leaves the etcd target empty again,
// so a retry is not refused as "not empty", and the retry copies it all.
func TestAMigrationCutShortClearsItsTarget(t *testing.T) {
	src := newBolt(t)
	fill(t, src, newKEK(t))
	dst := newBackend(t, shared.Endpoints(), testPrefix(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var reported []string
	_, err := store.Copy(ctx, src, dst, store.CopyOptions{Progress: func(bucket string, keys int) {
		reported = append(reported, fmt.Sprintf("%s:%d", bucket, keys))
		if bucket == "audit" {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "the target was cleared again") {
		t.Fatalf("Copy cut short = %v, want context.Canceled and the target cleared", err)
	}
	if !slices.Contains(reported, "audit:100") {
		t.Errorf("progress %v: want the audit bucket's first chunk of 100 keys", reported)
	}
	if got := dump(t, dst); got != "" {
		t.Fatalf("the target after a copy cut short holds:\n%s", got)
	}
	migrate(t, src, dst)
	if dump(t, dst) != dump(t, src) {
		t.Fatal("the retry's target differs from the source")
	}
}
