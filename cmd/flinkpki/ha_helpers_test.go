package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/enroll"
	"github.com/flinkpki/flinkpki/internal/etcdtest"
	"github.com/flinkpki/flinkpki/store"
)

// haStore is one flinkpki installation on a real three-member etcd
// cluster: the etcd members, the key-encryption key every replica shares
// and the installation's key prefix. Each replica gets its own data
// directory, as pods of a Deployment with an emptyDir do.
type haStore struct {
	etcd   *etcdtest.Cluster
	kek    string
	prefix string
}

func newHAStore(t testing.TB) *haStore {
	t.Helper()
	h := &haStore{etcd: etcdtest.New(t, 3), kek: filepath.Join(t.TempDir(), "kek")}
	k := make([]byte, store.KEKSize)
	r := make([]byte, 4)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	if _, err := rand.Read(r); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.kek, k, 0o600); err != nil {
		t.Fatal(err)
	}
	h.prefix = "/ha-" + hex.EncodeToString(r) + "/"
	return h
}

// flags are the serve flags that put a replica on this installation.
func (h *haStore) flags() []string {
	return []string{"--store", "etcd", "--etcd-endpoints", strings.Join(h.etcd.Endpoints(), ","),
		"--etcd-prefix", h.prefix, "--kek-file", h.kek}
}

// replica runs one more in-process replica, so the race detector sees the
// server code of both sides of a race.
func (h *haStore) replica(t testing.TB, extra ...string) *testServer {
	t.Helper()
	return startServer(t, "", append(h.flags(), extra...)...)
}

// procReplica runs one more replica as a real process, for kill -9.
func (h *haStore) procReplica(t testing.TB, extra ...string) *procServer {
	t.Helper()
	return startProcServer(t, append(h.flags(), extra...)...)
}

// enroller is a raw enrollment client of one replica with one token: one
// connection, reused, and a single try per call, so a test sees every
// failure the server returns.
type enroller struct {
	addr string
	c    *enroll.Client
}

func newEnroller(t testing.TB, addr, caFile, tokenFile string) *enroller {
	t.Helper()
	tok, err := enroll.ReadToken(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := enroll.Dial(addr, caFile, tok)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &enroller{addr: addr, c: enroll.NewClient(conn, addr)}
}

// enroll asks for a taskmanager leaf of cluster for holder, with an
// ECDSA P-256 key (the clusters of these tests use that type, which keeps
// client key generation cheap). It returns the leaf's serial as holder
// records show it.
func (e *enroller) enroll(ctx context.Context, cluster, holder string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	res, err := e.c.Enroll(ctx, enroll.Request{Cluster: cluster, Role: "taskmanager", Holder: holder, KeyType: ca.KeyTypeECDSAP256})
	if err != nil {
		return "", err
	}
	return res.Chain[0].SerialNumber.Text(16), nil
}

// auditEntries reads the whole audit trail ("" for every cluster) with
// "audit list -o json".
func auditEntries(t testing.TB, s *testServer, cluster string) []auditJSON {
	t.Helper()
	args := []string{"audit", "list", "-o", "json"}
	if cluster != "" {
		args = append(args, "--cluster", cluster)
	}
	r := s.cli(t, s.admin, args...).ok(t)
	var list struct {
		Entries []auditJSON `json:"entries"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("audit list -o json: %v\n%s", err, r.stdout)
	}
	return list.Entries
}

// checkAuditContiguous fails unless the sequence numbers of the whole
// trail run 1, 2, 3, ... without a gap or a repeat, and the chain verifies.
func checkAuditContiguous(t testing.TB, s *testServer) []auditJSON {
	t.Helper()
	es := auditEntries(t, s, "")
	for i, e := range es {
		if e.Seq != uint64(i+1) {
			t.Fatalf("audit entry %d has seq %d: the trail has a gap or a repeat", i+1, e.Seq)
		}
	}
	s.cli(t, s.admin, "audit", "verify").ok(t)
	return es
}
