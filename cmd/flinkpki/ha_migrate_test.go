package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/enroll"
	"github.com/flinkpki/flinkpki/internal/etcdtest"
)

// boltContents reads every bucket of a stopped server's bbolt file as
// bucket -> key -> value.
func boltContents(t testing.TB, path string) map[string]map[string][]byte {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	out := map[string]map[string][]byte{}
	err = db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			m := map[string][]byte{}
			out[string(name)] = m
			return b.ForEach(func(k, v []byte) error {
				m[string(k)] = bytes.Clone(v)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// activeFingerprints returns the SHA-256 fingerprints of every CA of a
// cluster's lineages, in "state:fingerprint" form, sorted.
func activeFingerprints(t testing.TB, s *testServer, cluster string) []string {
	t.Helper()
	var out []string
	for _, l := range readCAStatus(t, s.cli(t, s.admin, "ca", "status", "--cluster", cluster, "-o", "json")).Lineages {
		for _, c := range l.CAs {
			out = append(out, l.Purpose+"/"+c.State+":"+c.Fingerprint)
		}
	}
	slices.Sort(out)
	return out
}

// TestMigratingBoltToEtcdAndBackKeepsEveryRecordAndTheCAs moves a store
// with clusters, a rotation in progress, holders and tokens from bbolt to
// etcd and back with "flinkpki admin migrate". The bbolt file at the end
// holds exactly the records of the one at the start, the command checks
// counts and the audit chain at each hop, and a server started on the
// migrated file signs with the same CAs.
func TestMigratingBoltToEtcdAndBackKeepsEveryRecordAndTheCAs(t *testing.T) {
	src := startServer(t, "")
	kek := filepath.Join(src.dir, "kek")
	src.cli(t, src.admin, "cluster", "create", "orders", "--key-type", "ecdsa-p256").ok(t)
	src.cli(t, src.admin, "cluster", "create", "payments", "--key-type", "ecdsa-p256").ok(t)
	src.cli(t, src.admin, "ca", "prepare", "--cluster", "payments").ok(t)
	e := newEnroller(t, src.addr, src.caFile, src.tokenFor(t, "orders", "taskmanager", "--uses", "5"))
	for _, h := range []string{"tm-0", "tm-1"} {
		if _, err := e.enroll(context.Background(), "orders", h); err != nil {
			t.Fatal(err)
		}
	}
	src.tokenFor(t, "payments", "jobmanager", "--uses", "3")
	want := map[string][]string{"orders": activeFingerprints(t, src, "orders"), "payments": activeFingerprints(t, src, "payments")}
	src.stop(t)
	before := boltContents(t, filepath.Join(src.dir, "flinkpki.db"))

	c := etcdtest.New(t, 3)
	etcdSpec := "etcd:" + strings.Join(c.Endpoints(), ",")
	dst := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	hops := []struct{ from, to string }{
		{"bolt:" + filepath.Join(src.dir, "flinkpki.db"), etcdSpec},
		{etcdSpec, "bolt:" + filepath.Join(dst, "flinkpki.db")},
	}
	for _, hop := range hops {
		r := runCLI(t, nil, "admin", "migrate", "--from", hop.from, "--to", hop.to, "--etcd-prefix", "/migrated/", "--kek-file", kek).ok(t)
		if !strings.Contains(r.stderr, "copied and verified") || !strings.Contains(r.stdout, "holders") {
			t.Fatalf("migrate %s -> %s did not report its counts and verification:\nstdout: %s\nstderr: %s", hop.from, hop.to, r.stdout, r.stderr)
		}
	}
	// A second migration into the now non-empty target is refused.
	runCLI(t, nil, "admin", "migrate", "--from", hops[0].from, "--to", etcdSpec, "--etcd-prefix", "/migrated/", "--kek-file", kek).refused(t, "")

	after := boltContents(t, filepath.Join(dst, "flinkpki.db"))
	if len(after) != len(before) {
		t.Errorf("buckets after the round trip: %d, before: %d", len(after), len(before))
	}
	records := 0
	for bucket, kvs := range before {
		records += len(kvs)
		if len(after[bucket]) != len(kvs) {
			t.Errorf("bucket %s: %d records after the round trip, %d before", bucket, len(after[bucket]), len(kvs))
		}
		for k, v := range kvs {
			if !bytes.Equal(after[bucket][k], v) {
				t.Errorf("bucket %s key %q differs after the round trip", bucket, k)
			}
		}
	}
	if records < 20 {
		t.Fatalf("the source store held only %d records in %d buckets: the comparison proves little", records, len(before))
	}
	t.Logf("%d records in %d buckets came back unchanged", records, len(before))

	s := startServer(t, dst, "--kek-file", kek)
	for cluster, fps := range want {
		if got := activeFingerprints(t, s, cluster); !slices.Equal(got, fps) {
			t.Errorf("cluster %s CAs on the migrated store = %v, want %v", cluster, got, fps)
		}
	}
	conn, err := enroll.Dial(s.addr, s.caFile, readTokenFile(t, s.tokenFor(t, "orders", "taskmanager")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	res, err := enroll.NewClient(conn, s.addr).Enroll(context.Background(), enroll.Request{Cluster: "orders", Role: "taskmanager", Holder: "tm-2", KeyType: ca.KeyTypeECDSAP256})
	if err != nil {
		t.Fatal(err)
	}
	if !signedByOneOf(res.Chain[0], res.Trusted, want["orders"]) {
		t.Errorf("the migrated server signed tm-2 with a CA that is not one of the original ones %v", want["orders"])
	}
}

func readTokenFile(t testing.TB, path string) string {
	t.Helper()
	tok, err := enroll.ReadToken(path)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// signedByOneOf reports whether leaf was signed by a trusted CA whose
// fingerprint ends one of the "purpose/state:fingerprint" entries.
func signedByOneOf(leaf *x509.Certificate, trusted []*x509.Certificate, fps []string) bool {
	for _, c := range trusted {
		if leaf.CheckSignatureFrom(c) != nil {
			continue
		}
		for _, fp := range fps {
			if strings.HasSuffix(fp, ":"+ca.Fingerprint(c)) {
				return true
			}
		}
	}
	return false
}

// TestMigrateRefusesAnEtcdStoreAReplicaUses: what a running replica writes
// after the copy would be lost when the installation moves to the target,
// so migrate refuses an etcd source (or target) with live election keys,
// as rotate-kek does, and copies nothing; once the replica stopped, it
// copies.
func TestMigrateRefusesAnEtcdStoreAReplicaUses(t *testing.T) {
	h := newHAStore(t)
	r1 := h.replica(t)
	r1.cli(t, r1.admin, "cluster", "create", "orders", "--key-type", "ecdsa-p256").ok(t)
	dst := filepath.Join(t.TempDir(), "target.db")
	migrate := []string{"admin", "migrate", "--from", "etcd:" + strings.Join(h.etcd.Endpoints(), ","), "--etcd-prefix", h.prefix,
		"--to", "bolt:" + dst, "--kek-file", h.kek}
	oneLineError(t, runCLI(t, nil, migrate...), 1, "1 flinkpki server(s) still use the migration source")
	if _, err := os.Stat(dst); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused migration left %s: %v", dst, err)
	}
	r1.stop(t)
	runCLI(t, nil, migrate...).ok(t)
}
