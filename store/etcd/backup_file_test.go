package etcd

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

	"github.com/flinkpki/flinkpki/internal/etcdtest"
)

// TestABackupInProgressKeepsNoCopyOfTheStoreUnderAName: while a backup
// reads etcd and fills its file, the temporary directory holds no file of
// it, so a replica killed at that moment (the OOM killer, kill -9) leaves
// no copy of the store (sealed CA keys, token hashes, the audit trail)
// behind.
func TestABackupInProgressKeepsNoCopyOfTheStoreUnderAName(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	c := etcdtest.New(t, 1)
	ctx := context.Background()
	const prefix = "/backup-tmp/"
	var looked atomic.Bool
	var seen []string
	lookMidRead := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		rr, ok := req.(*pb.RangeRequest)
		if ok && strings.HasPrefix(string(rr.Key), prefix+"tokens/") && looked.CompareAndSwap(false, true) {
			filepath.WalkDir(tmp, func(p string, d os.DirEntry, err error) error {
				if p != tmp {
					seen = append(seen, p)
				}
				return nil
			})
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	b := openIntercepted(t, Config{Endpoints: c.Endpoints(), Prefix: prefix}, lookMidRead)
	for k, v := range map[string]string{"meta/x": "1", "holders/h": "2", "tokens/T": "3"} {
		if _, err := b.cli.Put(ctx, prefix+k, v); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := b.backup(ctx, &buf, 1); err != nil {
		t.Fatal(err)
	}
	if !looked.Load() {
		t.Fatal("the backup never read the tokens: the test proves nothing")
	}
	if len(seen) > 0 {
		t.Errorf("halfway through a backup, the temporary directory holds %v: a replica killed now leaves it there", seen)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("after the backup, the temporary directory holds %v", left)
	}
}

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
