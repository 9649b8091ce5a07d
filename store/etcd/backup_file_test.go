package etcd

import (
	"fmt"
	"testing"
)

// TestABackupFileCommitsOnceItHoldsItsLimit: the writer commits a bbolt
// transaction as soon as it holds limit bytes of keys and values, so none
// holds more than limit and one record, across buckets too.
func TestABackupFileCommitsOnceItHoldsItsLimit(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	db, err := createBackupFile()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const limit, record = 1000, 300 // bytes
	w := &boltWriter{db: db, limit: limit}
	defer w.abort()
	held := map[int]int{} // bytes per transaction id
	for _, bucket := range []string{"a", "b", "c"} {
		if err := w.bucket([]byte(bucket)); err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			k := fmt.Appendf(nil, "%s%03d", bucket, i)
			if err := w.put(k, make([]byte, record-len(k))); err != nil {
				t.Fatal(err)
			}
			held[w.tx.ID()] += record
		}
	}
	if err := w.commit(); err != nil {
		t.Fatal(err)
	}
	for id, n := range held {
		if n > limit+record {
			t.Errorf("transaction %d held %d bytes, want at most %d", id, n, limit+record)
		}
	}
	perTx := limit/record + 1 // the first that reaches the limit
	if want := (30 + perTx - 1) / perTx; len(held) != want {
		t.Errorf("30 records of %d bytes in %d transactions, want %d: one per %d records", record, len(held), want, perTx)
	}
}
