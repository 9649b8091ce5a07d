package storetest

// The suite's tests of sealed CA keys: a wrong key-encryption key refused,
// a KEK rotation that re-seals every key and resumes after an interruption,
// and a server that missed a rotation sealing nothing.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/store"
)

// staleSealer: a server still running when the store's key-encryption
// key is rotated (an etcd replica whose election key had lapsed, so
// rotate-kek did not see it) still holds the old key. While the rotation
// runs and after it, it must not seal a new CA key (a prepare, a new
// cluster): no server of the rotated store could open it. Rewriting a
// record it read, which keeps the sealed key as stored, stays allowed.
func staleSealer(t *testing.T, h Harness) {
	ctx := context.Background()
	// Two stores on one backend, as a bbolt file can be open in one
	// process only: the running server's, and rotate-kek's.
	b := h.Open(t)
	defer b.Close()
	oldSeal, _ := store.NewSealer(NewKEK(t), nil)
	running, err := store.Open(ctx, b, oldSeal)
	if err != nil {
		t.Fatal(err)
	}
	putCAs(t, running)
	rotator, err := store.Open(ctx, b, oldSeal)
	if err != nil {
		t.Fatal(err)
	}
	next, _ := store.NewSealer(NewKEK(t), nil)
	newCA := func(id string) error {
		return running.Update(ctx, func(tx *store.Txn) error {
			return tx.PutCA(&store.CA{Cluster: "stale", ID: id, Purpose: "internal", State: "prepared", CertDER: []byte{1}, Key: []byte("a CA private key")})
		})
	}
	var during error
	checked := false
	if _, err := rotator.RotateKEK(ctx, next, store.RotateKEKOptions{Progress: func(int) {
		if !checked { // a backend that rotates in steps: the marker is set
			checked = true
			during = newCA("during")
		}
	}}); err != nil {
		t.Fatal(err)
	}
	// A backend that rotates in steps reports progress while its marker is
	// set (ErrKEKRotation); one that rotates in one transaction, after it
	// (ErrWrongKEK). Either way nothing is sealed under the old key.
	if checked && !errors.Is(during, store.ErrKEKRotation) && !errors.Is(during, store.ErrWrongKEK) {
		t.Errorf("a CA sealed while the rotation ran: %v, want it refused", during)
	}
	if err := newCA("after"); !errors.Is(err, store.ErrWrongKEK) {
		t.Errorf("a CA sealed under the old key after the rotation: %v, want ErrWrongKEK", err)
	}
	if err := running.Update(ctx, func(tx *store.Txn) error {
		cas, err := tx.CAs("c00")
		if err != nil || len(cas) == 0 {
			return fmt.Errorf("CAs of c00: %d, %v", len(cas), err)
		}
		cas[0].State = "active"
		return tx.UpdateCA(cas[0])
	}); err != nil {
		t.Errorf("rewriting a CA record as read: %v", err)
	}
}

func wrongKEKIsRefused(t *testing.T, h Harness) {
	mustOpen(t, h, NewKEK(t)).Close()
	before := h.Raw(t)
	if _, err := open(t, h, NewKEK(t)); !errors.Is(err, store.ErrWrongKEK) {
		t.Fatalf("err = %v, want ErrWrongKEK", err)
	}
	if after := h.Raw(t); !bytes.Equal(before, after) {
		t.Fatal("opening with a wrong key changed the stored data")
	}
}

func rotateKEK(t *testing.T, h Harness) {
	ctx := context.Background()
	oldKEK, newK := NewKEK(t), NewKEK(t)
	s := mustOpen(t, h, oldKEK)
	putCAs(t, s)
	next, _ := store.NewSealer(newK, nil)
	var seen []int
	audit := &store.AuditEntry{Time: time.Now().UTC(), Actor: "system:test", Action: "kek.rotate", Outcome: "ok"}
	n, err := s.RotateKEK(ctx, next, store.RotateKEKOptions{Progress: func(done int) { seen = append(seen, done) }, Audit: audit})
	if err != nil || n != manyCAs+servingKeys {
		t.Fatalf("RotateKEK = %d, %v; want %d (every CA and the serving CAs with keys)", n, err, manyCAs+servingKeys)
	}
	if len(seen) == 0 || seen[len(seen)-1] != n || !slices.IsSorted(seen) {
		t.Errorf("progress reports %v, want a rising count ending at %d", seen, n)
	}
	s.Close()
	if _, err := open(t, h, oldKEK); !errors.Is(err, store.ErrWrongKEK) {
		t.Fatalf("old KEK still opens the store: %v", err)
	}
	s = mustOpen(t, h, newK)
	defer s.Close()
	checkCAs(t, s)
	oldSeal, _ := store.NewSealer(oldKEK, nil)
	var got []*store.AuditEntry
	err = s.View(ctx, func(tx *store.Txn) error {
		return tx.ForEachAudit(1, func(e *store.AuditEntry) (bool, error) {
			got = append(got, e)
			return true, nil
		})
	})
	want := map[string]string{"from": oldSeal.ID(), "to": next.ID(), "keys": fmt.Sprint(manyCAs + servingKeys)}
	if err != nil || len(got) != 1 || got[0].Action != "kek.rotate" || !maps.Equal(got[0].Details, want) {
		t.Errorf("audit trail after the rotation: %+v, %v; want one kek.rotate entry with %v", got, err, want)
	}
}

// rotateKEKResumes interrupts a rotation after its first transaction. A
// backend without a write limit rotates in one transaction, so nothing has
// changed; one with a limit is left between the two keys: no server may
// open it, a run with another new key is refused, and a run with the same
// two keys finishes it.
func rotateKEKResumes(t *testing.T, h Harness) {
	oldKEK, newK, otherK := NewKEK(t), NewKEK(t), NewKEK(t)
	s := mustOpen(t, h, oldKEK)
	putCAs(t, s)
	next, _ := store.NewSealer(newK, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := s.RotateKEK(ctx, next, store.RotateKEKOptions{Progress: func(int) { cancel() }})
	s.Close()
	b := h.Open(t)
	_, limited := b.(store.WriteLimiter)
	b.Close()
	if !limited {
		if err != nil || n != manyCAs+servingKeys {
			t.Fatalf("RotateKEK in one transaction = %d, %v", n, err)
		}
		return
	}
	if !errors.Is(err, store.ErrKEKRotation) || n == 0 || n >= manyCAs {
		t.Fatalf("interrupted RotateKEK = %d, %v; want ErrKEKRotation part of the way", n, err)
	}
	// Either key is told to finish the rotation (rotate-kek's advice on
	// failure is to start with the new one); a third is a wrong key.
	for name, k := range map[string][]byte{"old": oldKEK, "new": newK} {
		if _, err := open(t, h, k); !errors.Is(err, store.ErrKEKRotation) || errors.Is(err, store.ErrWrongKEK) || !strings.Contains(err.Error(), "run flinkpki admin rotate-kek again") {
			t.Fatalf("Open with the %s key = %v, want ErrKEKRotation, saying to run rotate-kek again", name, err)
		}
	}
	if _, err := open(t, h, otherK); !errors.Is(err, store.ErrWrongKEK) {
		t.Fatalf("Open with a third key = %v, want ErrWrongKEK", err)
	}
	reopen := func() *store.Store {
		t.Helper()
		seal, _ := store.NewSealer(oldKEK, nil)
		b := h.Open(t)
		s, err := store.OpenForKEKRotation(context.Background(), b, seal)
		if err != nil {
			b.Close()
			t.Fatalf("OpenForKEKRotation: %v", err)
		}
		return s
	}
	s = reopen()
	other, _ := store.NewSealer(otherK, nil)
	before := h.Raw(t)
	if _, err := s.RotateKEK(context.Background(), other, store.RotateKEKOptions{}); !errors.Is(err, store.ErrKEKRotation) || !strings.Contains(err.Error(), "give the same two keys") {
		t.Fatalf("a run with another new key = %v, want ErrKEKRotation", err)
	}
	if !bytes.Equal(before, h.Raw(t)) {
		t.Fatal("the refused run changed the store")
	}
	s.Close()
	s = reopen()
	rest, err := s.RotateKEK(context.Background(), next, store.RotateKEKOptions{})
	if err != nil || n+rest != manyCAs+servingKeys {
		t.Fatalf("the resumed RotateKEK = %d, %v; want the %d keys the first run left", rest, err, manyCAs+servingKeys-n)
	}
	s.Close()
	s = mustOpen(t, h, newK)
	defer s.Close()
	checkCAs(t, s)
}

// manyCAs is more CA keys than one etcd transaction may write, so a
// backend with a write limit rotates them in several.
const manyCAs = 250

// putCAs stores manyCAs CA keys ("key-I" for CA I of cluster "cI/10"),
// fifty to a transaction, and a serving CA.
func putCAs(t *testing.T, s *store.Store) {
	t.Helper()
	ctx := context.Background()
	for lo := 0; lo < manyCAs; lo += 50 {
		err := s.Update(ctx, func(tx *store.Txn) error {
			for i := lo; i < lo+50; i++ {
				if err := tx.PutCA(&store.CA{Cluster: fmt.Sprintf("c%02d", i/10), ID: fmt.Sprintf("internal-%03d", i), Key: []byte(fmt.Sprintf("key-%d", i))}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update(ctx, func(tx *store.Txn) error {
		if err := tx.PutServerCA(&store.CA{ID: "server", Purpose: "serving", Key: []byte("serving-key")}); err != nil {
			return err
		}
		if err := tx.PutServingCA(store.ServingPrepared, &store.CA{ID: "server-2", Purpose: "serving", Key: []byte("prepared-serving-key")}); err != nil {
			return err
		}
		return tx.PutServingCA(store.ServingRetiring, &store.CA{ID: "server-0", Purpose: "serving", CertDER: []byte("retired cert")})
	}); err != nil {
		t.Fatal(err)
	}
}

// servingKeys is how many of the serving CAs putCAs stores have a key: the
// active and the prepared one (the retiring one has none).
const servingKeys = 2

// checkCAs asserts that s opens every key putCAs stored.
func checkCAs(t *testing.T, s *store.Store) {
	t.Helper()
	err := s.View(context.Background(), func(tx *store.Txn) error {
		for c := 0; c < manyCAs/10; c++ {
			cas, err := tx.CAs(fmt.Sprintf("c%02d", c))
			if err != nil || len(cas) != 10 {
				t.Fatalf("cluster c%02d: %d CAs, %v", c, len(cas), err)
			}
			for _, ca := range cas {
				var i int
				fmt.Sscanf(ca.ID, "internal-%d", &i)
				if key, err := s.OpenCAKey(ca); err != nil || string(key) != fmt.Sprintf("key-%d", i) {
					t.Fatalf("CA %s/%s: %q, %v", ca.Cluster, ca.ID, key, err)
				}
			}
		}
		rec, err := tx.ServerCA()
		if err != nil || string(rec.Key) != "serving-key" {
			t.Fatalf("serving CA: %v", err)
		}
		if rec, err := tx.ServingCA(store.ServingPrepared); err != nil || rec.ID != "server-2" || string(rec.Key) != "prepared-serving-key" {
			t.Fatalf("prepared serving CA: %+v, %v", rec, err)
		}
		if rec, err := tx.ServingCA(store.ServingRetiring); err != nil || rec.ID != "server-0" || rec.Key != nil || string(rec.CertDER) != "retired cert" {
			t.Fatalf("retiring serving CA: %+v, %v; want its certificate and no key", rec, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
