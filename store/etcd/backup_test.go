package etcd_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/bolt"
	"github.com/flinkpki/flinkpki/store/etcd"
)

// TestABackupLargerThanOneTransactionIsWholeAndBuiltInBoundedOnes: a store
// of several transactions' worth is written into the backup file in
// transactions of about etcd.BackupTxBytes (bbolt holds a transaction's
// pages in memory until it commits: one transaction for the whole store
// took more than the HA replica's memory limit), and the file still holds
// every key of one revision, its audit chain intact.
func TestABackupLargerThanOneTransactionIsWholeAndBuiltInBoundedOnes(t *testing.T) {
	ctx := context.Background()
	kek := newKEK(t)
	b := newBackend(t, shared.Endpoints(), testPrefix(t))
	fill(t, b, kek)
	val := bytes.Repeat([]byte("h"), 1024)
	bulk := 3*etcd.BackupTxBytes/len(val) + 500
	for lo := 0; lo < bulk; lo += 100 {
		err := b.Update(ctx, func(tx store.Tx) error {
			for i := lo; i < min(lo+100, bulk); i++ {
				if err := tx.Put([]byte("holders"), fmt.Appendf(nil, "bulk-%05d", i), val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	total := 0 // bytes of keys and values in the store
	err := b.View(ctx, func(tx store.Tx) error {
		for _, bk := range store.Buckets {
			err := tx.Scan(bk, nil, nil, func(k, v []byte) (bool, error) {
				total += len(k) + len(v)
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

	path := backupFile(t, b)
	// bbolt numbers its write transactions from 2: the file's number says
	// how many built it. Each holds at most the bound and one record.
	if got, want := lastTxID(t, path)-1, total/(etcd.BackupTxBytes+2048); got < want {
		t.Errorf("the backup of %d bytes was written in %d bbolt transaction(s), want at least %d of at most %d bytes", total, got, want, etcd.BackupTxBytes)
	}

	restored, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	counts, err := store.Verify(ctx, b, restored)
	if err != nil {
		t.Fatalf("the backup differs from etcd: %v", err)
	}
	if counts["holders"] != bulk+3 || counts["audit"] != 250 {
		t.Errorf("the backup holds %v, want %d holders and 250 audit entries", counts, bulk+3)
	}
	s := mustOpenStore(t, restored, kek)
	err = s.View(ctx, func(tx *store.Txn) error {
		head, headHash, err := tx.AuditHead()
		if err != nil {
			return err
		}
		want, prev := uint64(1), ""
		err = tx.ForEachAudit(0, func(e *store.AuditEntry) (bool, error) {
			if err := e.Follows(want, prev); err != nil {
				return false, err
			}
			want, prev = want+1, e.Hash
			return true, nil
		})
		if err != nil {
			return err
		}
		if want-1 != head || prev != headHash {
			return fmt.Errorf("the audit head is entry %d, the trail ends at %d", head, want-1)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the backup's audit chain: %v", err)
	}
}

// TestOpenRemovesTheFilesOfKilledBackupsButNotOneInProgress: a replica
// killed during a backup left its file in the temporary directory (a full
// copy of the store in earlier versions); the next Open removes it. A file
// that a running backup holds (bbolt's lock), of another replica sharing
// the directory, stays.
func TestOpenRemovesTheFilesOfKilledBackupsButNotOneInProgress(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	killed := filepath.Join(tmp, "flinkpki-etcd-backup-1.db")
	earlier := filepath.Join(tmp, "flinkpki-etcd-backup-2", "backup.db") // an earlier version's
	inProgress := filepath.Join(tmp, "flinkpki-etcd-backup-3.db")
	unrelated := filepath.Join(tmp, "flinkpki.db")
	if err := os.Mkdir(filepath.Dir(earlier), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{killed, earlier, unrelated} {
		if err := os.WriteFile(p, []byte("sealed CA keys"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	live, err := bbolt.Open(inProgress, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()

	newBackend(t, shared.Endpoints(), testPrefix(t))
	for _, p := range []string{killed, earlier, filepath.Dir(earlier)} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s, left by a killed backup, is still there after Open", p)
		}
	}
	for _, p := range []string{inProgress, unrelated} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("Open removed %s, which it must keep: %v", p, err)
		}
	}
}

// backupFile writes b's backup into a file and returns its path.
func backupFile(t testing.TB, b *etcd.Backend) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Backup(context.Background(), f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// lastTxID returns the id of the last write transaction of the bbolt file
// at path.
func lastTxID(t testing.TB, path string) int {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id int
	db.View(func(tx *bbolt.Tx) error {
		id = tx.ID()
		return nil
	})
	return id
}
