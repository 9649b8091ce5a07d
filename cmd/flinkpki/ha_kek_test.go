package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/store"
	etcdstore "github.com/flinkpki/flinkpki/store/etcd"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestRotatingTheKEKOfAnEtcdStore rotates the key-encryption key of an HA
// installation with "admin rotate-kek --etcd-endpoints": refused while a
// replica runs (nothing changes), one without background work included, done once every replica is stopped and
// audited; the old key then opens nothing, and a replica with the new key
// signs with the same CAs. (The resumption of an interrupted rotation is in
// the store conformance suite, store/storetest, on bbolt and etcd.)
func TestRotatingTheKEKOfAnEtcdStore(t *testing.T) {
	h := newHAStore(t)
	s := h.replica(t)
	for i := range 3 {
		s.cli(t, s.admin, "cluster", "create", fmt.Sprintf("c%d", i), "--key-type", "ecdsa-p256").ok(t)
	}
	s.cli(t, s.admin, "ca", "prepare", "--cluster", "c0").ok(t)
	want := map[string][]string{"c0": activeFingerprints(t, s, "c0"), "c2": activeFingerprints(t, s, "c2")}
	oldKEK, newKEK := h.kek, writeKEK(t, t.TempDir(), "kek.new")
	store := []string{"--etcd-endpoints", strings.Join(h.etcd.Endpoints(), ","), "--etcd-prefix", h.prefix}
	rotate := append(append([]string{"admin", "rotate-kek"}, store...), "--kek-file", oldKEK, "--new-kek-file", newKEK, "-o", "json")

	oneLineError(t, runCLI(t, nil, rotate...), 1, "server(s) still use etcd")
	runCLI(t, nil, append(append([]string{"admin", "list-tokens"}, store...), "--kek-file", oldKEK)...).ok(t)

	s.stop(t)
	// A replica without background work (no scheduler, no pruning) joins
	// no scheduler election, yet it serves and seals new CA keys with the
	// old key: rotate-kek must see it too.
	quiet := h.replica(t, "--rotation-interval", "0", "--holder-retention", "0")
	oneLineError(t, runCLI(t, nil, rotate...), 1, "1 flinkpki server(s) still use etcd")
	quiet.stop(t)
	c, underOld := h.client(t), h.revision(t)
	r := runCLI(t, nil, rotate...).ok(t)
	// etcd keeps every earlier value: the rotation must not leave the CA
	// keys sealed under the old KEK readable at an older revision.
	if _, err := c.Get(t.Context(), h.prefix, clientv3.WithPrefix(), clientv3.WithRev(underOld)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Errorf("reading the store at its revision before the rotation: %v, want it compacted", err)
	}
	if strings.Contains(r.stderr, "warning") {
		t.Errorf("rotate-kek warned: %s", r.stderr)
	}
	var got struct {
		Reencrypted int    `json:"reencrypted"`
		KEKID       string `json:"kek_id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("rotate-kek -o json: %v\n%s", err, r.stdout)
	}
	// 3 clusters x 2 lineages (internal and REST), 1 prepared, the serving CA.
	if got.Reencrypted != 8 || len(got.KEKID) != 16 {
		t.Errorf("rotate-kek reported %+v, want 8 CA keys and the new key's ID", got)
	}
	// The next step stays on stderr for people, as with every acting command.
	if want := "start the servers with --kek-file " + newKEK; !strings.Contains(r.stderr, want) {
		t.Errorf("rotate-kek -o json: stderr %q does not say %q", r.stderr, want)
	}
	r = runCLI(t, nil, append(append([]string{"admin", "list-tokens"}, store...), "--kek-file", oldKEK)...)
	oneLineError(t, r, 1, "does not open")

	h.kek = newKEK
	s = h.replica(t)
	for cluster, fps := range want {
		if now := activeFingerprints(t, s, cluster); !slices.Equal(now, fps) {
			t.Errorf("cluster %s CAs after the rotation = %v, want %v", cluster, now, fps)
		}
	}
	s.cli(t, s.admin, "ca", "activate", "--cluster", "c0").ok(t) // signs with the prepared CA's re-encrypted key
	e := newEnroller(t, s.addr, s.caFile, s.tokenFor(t, "c0", "taskmanager"))
	if _, err := e.enroll(t.Context(), "c0", "tm-0"); err != nil {
		t.Fatalf("enroll after the rotation: %v", err)
	}
	var rotated []auditJSON
	for _, a := range auditEntries(t, s, "") {
		if a.Action == "kek.rotate" {
			rotated = append(rotated, a)
		}
	}
	if len(rotated) != 1 || rotated[0].Details["keys"] != "8" || rotated[0].Details["to"] != got.KEKID || rotated[0].Outcome != "ok" {
		t.Errorf("kek.rotate audit entries: %+v, want one with 8 keys to %s", rotated, got.KEKID)
	}
}

// TestRotateKEKRunAgainDropsWhatAKilledRunLeftInEtcdsHistory: a rotation
// killed after its last commit, before it dropped etcd's history, left
// every CA key under the old key in that history. The documented recovery,
// the same command again, finds the store under the new key already; it
// must then drop the history, not answer "nothing was changed".
func TestRotateKEKRunAgainDropsWhatAKilledRunLeftInEtcdsHistory(t *testing.T) {
	h := newHAStore(t)
	s := h.replica(t)
	s.cli(t, s.admin, "cluster", "create", "k0").ok(t)
	s.stop(t)
	oldKEK, newKEK := h.kek, writeKEK(t, t.TempDir(), "kek.new")
	c, underOld := h.client(t), h.revision(t)

	// The killed run: the re-encryption committed, the history not dropped.
	sealer := func(file string) *store.Sealer {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		k, err := store.ParseKEK(raw)
		if err != nil {
			t.Fatal(err)
		}
		seal, err := store.NewSealer(k, nil)
		if err != nil {
			t.Fatal(err)
		}
		return seal
	}
	b, err := etcdstore.Open(t.Context(), etcdstore.Config{Endpoints: h.etcd.Endpoints(), Prefix: h.prefix})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenForKEKRotation(t.Context(), b, sealer(oldKEK))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RotateKEK(t.Context(), sealer(newKEK), store.RotateKEKOptions{}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := c.Get(t.Context(), h.prefix, clientv3.WithPrefix(), clientv3.WithRev(underOld)); err != nil {
		t.Fatalf("the killed run's history should still be there: %v", err)
	}

	r := runCLI(t, nil, "admin", "rotate-kek", "--etcd-endpoints", strings.Join(h.etcd.Endpoints(), ","), "--etcd-prefix", h.prefix,
		"--kek-file", oldKEK, "--new-kek-file", newKEK).ok(t)
	if !strings.Contains(r.stderr, "under --new-kek-file "+newKEK+" already") || !strings.Contains(r.stderr, "history is compacted and its members defragmented again") {
		t.Errorf("rotate-kek run again: %q, want it to say the store was rotated already and the history is dropped now", r.stderr)
	}
	if _, err := c.Get(t.Context(), h.prefix, clientv3.WithPrefix(), clientv3.WithRev(underOld)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Errorf("reading the store at its revision before the rotation after the run again: %v, want it compacted", err)
	}
}

// client is an etcd client of the installation, closed when the test ends.
func (h *haStore) client(t testing.TB) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: h.etcd.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// revision is the installation's etcd revision now.
func (h *haStore) revision(t testing.TB) int64 {
	t.Helper()
	resp, err := h.client(t).Get(t.Context(), h.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}
