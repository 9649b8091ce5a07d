package etcd_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/internal/etcdtest"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/etcd"
	"github.com/flinkpki/flinkpki/store/storetest"
)

// shared is the three-member cluster most tests use, each under its own
// key prefix.
var shared *etcdtest.Cluster

func TestMain(m *testing.M) {
	root, err := etcdtest.DataRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared, err = etcdtest.Start(3, root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "store/etcd tests:", err)
		os.RemoveAll(root)
		os.Exit(1)
	}
	code := m.Run()
	shared.Stop()
	os.RemoveAll(root)
	os.Exit(code)
}

// testPrefix is a key prefix no other test uses.
func testPrefix(t testing.TB) string {
	var r [4]byte
	rand.Read(r[:])
	return "/test/" + t.Name() + "/" + hex.EncodeToString(r[:]) + "/"
}

// newBackend opens a backend (one "replica") on endpoints under prefix,
// closed when the test ends.
func newBackend(t testing.TB, endpoints []string, prefix string) *etcd.Backend {
	t.Helper()
	b, err := etcd.Open(context.Background(), etcd.Config{Endpoints: endpoints, Prefix: prefix, OpTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func newKEK(t testing.TB) []byte { return storetest.NewKEK(t) }

func openStore(t testing.TB, b store.Backend, kek []byte) (*store.Store, error) {
	t.Helper()
	seal, err := store.NewSealer(kek, nil)
	if err != nil {
		t.Fatal(err)
	}
	return store.Open(context.Background(), b, seal)
}

func mustOpenStore(t testing.TB, b store.Backend, kek []byte) *store.Store {
	t.Helper()
	s, err := openStore(t, b, kek)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
