package etcd

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	bbolt "go.etcd.io/bbolt"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/flinkpki/flinkpki/internal/etcdtest"
	"github.com/flinkpki/flinkpki/store"
)

// TestABackupReadAgainAfterACompactionHoldsOneRevision: etcd compacts the
// snapshot a backup reads (auto-compaction meets the longest read this
// server makes), so the backup reads again from the top at a newer
// revision. What was deleted in between (another replica spent a token's
// last use) must not stay in the file from the first read, although that
// read committed it there already (one bbolt transaction per key here): a
// restore would bring the token back.
func TestABackupReadAgainAfterACompactionHoldsOneRevision(t *testing.T) {
	c := etcdtest.New(t, 1)
	ctx := context.Background()
	const prefix = "/backup-compact/"
	var fired atomic.Bool
	var b *Backend
	compactMidRead := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if rr, ok := req.(*pb.RangeRequest); ok && err == nil && rr.Revision > 0 &&
			strings.HasPrefix(string(rr.Key), prefix+"tokens/") && fired.CompareAndSwap(false, true) {
			r, derr := b.cli.Delete(context.Background(), prefix+"tokens/T") // another replica spends T
			if derr != nil {
				t.Error(derr)
				return err
			}
			if _, cerr := b.cli.Compact(context.Background(), r.Header.Revision); cerr != nil {
				t.Error(cerr)
			}
		}
		return err
	}
	b = openIntercepted(t, Config{Endpoints: c.Endpoints(), Prefix: prefix}, compactMidRead)
	for k, v := range map[string]string{"tokens/T": `{"id":"T"}`, "tokens/U": `{"id":"U"}`, "meta/x": "1"} {
		if _, err := b.cli.Put(ctx, prefix+k, v); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := b.backup(ctx, &buf, 1); err != nil {
		t.Fatal(err)
	}
	if !fired.Load() {
		t.Fatal("the compaction never ran during the backup: the test proves nothing")
	}
	p := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(p, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		tokens := tx.Bucket([]byte("tokens"))
		if v := tokens.Get([]byte("T")); v != nil {
			t.Errorf("the backup holds token T, deleted before the revision it was read at: %s", v)
		}
		if v := tokens.Get([]byte("U")); string(v) != `{"id":"U"}` {
			t.Errorf("the backup lost token U: %q", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAReadCompactedAwayTooOftenSaysTryAgain: a read whose snapshot etcd
// compacts away on every attempt gives up after MaxRetries with
// store.ErrUnavailable (a client retries later), not a bare internal
// conflict.
func TestAReadCompactedAwayTooOftenSaysTryAgain(t *testing.T) {
	c := etcdtest.New(t, 1)
	ctx := context.Background()
	const prefix = "/view-compact/"
	var b *Backend
	var compactions atomic.Int64
	compactEveryRead := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if rr, ok := req.(*pb.RangeRequest); ok && err == nil && strings.HasPrefix(string(rr.Key), prefix+"tokens/A") {
			r, perr := b.cli.Put(context.Background(), prefix+"meta/bump", "x")
			if perr == nil {
				_, perr = b.cli.Compact(context.Background(), r.Header.Revision)
			}
			if perr != nil {
				t.Error(perr)
			}
			compactions.Add(1)
		}
		return err
	}
	b = openIntercepted(t, Config{Endpoints: c.Endpoints(), Prefix: prefix, MaxRetries: 3}, compactEveryRead)
	err := b.View(ctx, func(tx store.Tx) error {
		tx.Get([]byte("tokens"), []byte("A"))
		tx.Get([]byte("tokens"), []byte("B")) // at the first read's revision: compacted away
		return nil
	})
	if !errors.Is(err, store.ErrUnavailable) || compactions.Load() != 3 {
		t.Errorf("View compacted away on each of its %d attempts: %v, want store.ErrUnavailable after 3", compactions.Load(), err)
	}
}

// openIntercepted opens a Backend whose etcd client passes every call
// through icpt (which may use the Backend: it is set before any call), and
// closes it when the test ends.
func openIntercepted(t *testing.T, cfg Config, icpt grpc.UnaryClientInterceptor) *Backend {
	t.Helper()
	b, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	b.cli.Close()
	if b.cli, err = clientv3.New(clientv3.Config{Endpoints: cfg.Endpoints, DialOptions: []grpc.DialOption{grpc.WithUnaryInterceptor(icpt)}}); err != nil {
		t.Fatal(err)
	}
	return b
}
