package bolt_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/bolt"
)

func newKEK(t testing.TB) []byte {
	k := make([]byte, store.KEKSize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func openStore(t testing.TB, path string, kek []byte) (*store.Store, error) {
	t.Helper()
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		return nil, err
	}
	seal, err := store.NewSealer(kek, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(context.Background(), b, seal)
	if err != nil {
		b.Close()
		return nil, err
	}
	return s, nil
}

func TestDataSurvivesReopenAndKeysAreSealed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "flinkpki.db")
	kek := newKEK(t)
	s, err := openStore(t, path, kek)
	if err != nil {
		t.Fatal(err)
	}
	secretKey := []byte("-----BEGIN PRIVATE KEY----- pretend PKCS#8 bytes")
	err = s.Update(ctx, func(tx *store.Txn) error {
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
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, secretKey) || bytes.Contains(raw, []byte("BEGIN PRIVATE KEY")) {
		t.Fatal("the database file holds the CA key in clear text")
	}

	s, err = openStore(t, path, kek)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.View(ctx, func(tx *store.Txn) error {
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
		if key, err := s.OpenCAKey(cas[0]); err != nil || !bytes.Equal(key, secretKey) {
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

func TestWrongKEKIsRefusedAndLeavesTheFileUnchanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flinkpki.db")
	s, err := openStore(t, path, newKEK(t))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	before, _ := os.ReadFile(path)
	_, err = openStore(t, path, newKEK(t))
	if !errors.Is(err, store.ErrWrongKEK) {
		t.Fatalf("err = %v, want ErrWrongKEK", err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("opening with a wrong key changed the database file")
	}
}

func TestListClustersPaginates(t *testing.T) {
	ctx := context.Background()
	s, err := openStore(t, filepath.Join(t.TempDir(), "db"), newKEK(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	names := []string{"a", "b", "c", "d", "e"}
	s.Update(ctx, func(tx *store.Txn) error {
		for _, n := range names {
			if err := tx.PutCluster(&store.Cluster{Name: n}); err != nil {
				return err
			}
		}
		return nil
	})
	var got []string
	after := ""
	for pages := 0; pages < 10; pages++ {
		var page []*store.Cluster
		var next string
		s.View(ctx, func(tx *store.Txn) error {
			var err error
			page, next, err = tx.ListClusters(after, 2)
			return err
		})
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
	path := filepath.Join(t.TempDir(), "db")
	oldKEK, newK := newKEK(t), newKEK(t)
	s, err := openStore(t, path, oldKEK)
	if err != nil {
		t.Fatal(err)
	}
	s.Update(ctx, func(tx *store.Txn) error {
		for _, id := range []string{"internal-1", "rest-1"} {
			if err := tx.PutCA(&store.CA{Cluster: "c", ID: id, Key: []byte("key-" + id)}); err != nil {
				return err
			}
		}
		return nil
	})
	next, _ := store.NewSealer(newK, nil)
	n, err := s.RotateKEK(ctx, next)
	if err != nil || n != 2 {
		t.Fatalf("RotateKEK = %d, %v", n, err)
	}
	s.Close()
	if _, err := openStore(t, path, oldKEK); !errors.Is(err, store.ErrWrongKEK) {
		t.Fatalf("old KEK still opens the store: %v", err)
	}
	s, err = openStore(t, path, newK)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.View(ctx, func(tx *store.Txn) error {
		cas, err := tx.CAs("c")
		if err != nil || len(cas) != 2 {
			t.Fatalf("after rotation: %v %v", cas, err)
		}
		if key, err := s.OpenCAKey(cas[0]); err != nil || string(key) != "key-internal-1" {
			t.Fatalf("after rotation: %q %v", key, err)
		}
		return nil
	})
}

func TestCorruptFileIsRefusedClearly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := openStore(t, path, newKEK(t))
	if err == nil {
		t.Fatal("a corrupt file opened")
	}
}

func TestBatchCommitsEachCallerOnceAndIsolatesFailures(t *testing.T) {
	ctx := context.Background()
	s, err := openStore(t, filepath.Join(t.TempDir(), "db"), newKEK(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 200
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func(i int) {
			errs <- s.Batch(ctx, func(tx *store.Txn) error {
				if i%10 == 0 {
					return errors.New("refused")
				}
				return tx.AppendAudit(&store.AuditEntry{Action: "test", Outcome: "ok"})
			})
		}(i)
	}
	refused := 0
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			refused++
		}
	}
	if refused != n/10 {
		t.Fatalf("%d calls refused, want %d", refused, n/10)
	}
	s.View(ctx, func(tx *store.Txn) error {
		seq, _, _ := tx.AuditHead()
		if seq != n-n/10 {
			t.Errorf("audit head = %d, want %d: a refused call undid or doubled others", seq, n-n/10)
		}
		return nil
	})
}
