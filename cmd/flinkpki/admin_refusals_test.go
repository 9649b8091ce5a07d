package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/flinkpki/flinkpki/internal/etcdtest"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/bolt"
)

// writeKEK writes a new random key-encryption key file into dir.
func writeKEK(t testing.TB, dir, name string) string {
	t.Helper()
	kek := make([]byte, store.KEKSize)
	if _, err := rand.Read(kek); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, kek, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// newUnopenedBolt creates a bbolt file with flinkpki's buckets that no
// server has opened: what a mistyped "migrate --from" used to create.
func newUnopenedBolt(t testing.TB, path string) {
	t.Helper()
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// openBoltStore opens (or creates) the flinkpki store at path, sealed with
// kekFile; the caller closes it.
func openBoltStore(t testing.TB, path, kekFile string) *store.Store {
	t.Helper()
	seal, err := sealerFromFile(kekFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), b, seal)
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	return st
}

// newStoreAt creates a flinkpki store at path, sealed with kekFile, holding
// one cluster, as a server would leave it.
func newStoreAt(t testing.TB, path, kekFile string) {
	t.Helper()
	ctx := context.Background()
	st := openBoltStore(t, path, kekFile)
	defer st.Close()
	err := st.Update(ctx, func(tx *store.Txn) error {
		return tx.PutCluster(&store.Cluster{Name: "orders", KeyType: "ecdsa-p256", Created: time.Unix(1700000000, 0)})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAdminMigrateRefusesASourceWithoutAStoreAndWritesNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		create func(t testing.TB, path string)
		want   string
	}{
		{"a source path that does not exist is not created", func(testing.TB, string) {}, "does not exist: check --from"},
		{"a bbolt file no server has opened is no store", newUnopenedBolt, "holds no flinkpki store"},
		{"an empty file is no store", func(t testing.TB, path string) {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			kek := writeKEK(t, dir, "kek")
			src := filepath.Join(dir, "source.db")
			tt.create(t, src)
			before := treeOf(t, dir)
			r := runCLI(t, nil, "admin", "migrate", "--from", "bolt:"+src, "--to", "bolt:"+filepath.Join(dir, "target.db"), "--kek-file", kek)
			oneLineError(t, r, 1, tt.want)
			assertUnchanged(t, dir, before)
		})
	}
}

func TestAdminMigrateRefusesAnEtcdPrefixWithoutFlinkpkiData(t *testing.T) {
	c := etcdtest.New(t, 1)
	dir := t.TempDir()
	kek := writeKEK(t, dir, "kek")
	before := treeOf(t, dir)
	r := runCLI(t, nil, "admin", "migrate", "--from", "etcd:"+strings.Join(c.Endpoints(), ","), "--etcd-prefix", "/nothing-here/",
		"--to", "bolt:"+filepath.Join(dir, "target.db"), "--kek-file", kek)
	oneLineError(t, r, 1, "holds no flinkpki store")
	assertUnchanged(t, dir, before)

	if keys := etcdKeys(t, c.Endpoints()); len(keys) != 0 {
		t.Errorf("etcd holds %d keys after the refused migration (the first %q), want none", len(keys), keys[0])
	}
}

// etcdKeys lists every key of the etcd cluster at endpoints.
func etcdKeys(t *testing.T, endpoints []string) []string {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		keys[i] = string(kv.Key)
	}
	return keys
}

func TestAdminMigrateChecksTheKEKOnTheSourceBeforeCopyingAnything(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kek := writeKEK(t, dir, "kek")
	wrong := writeKEK(t, dir, "wrong-kek")
	src := filepath.Join(dir, "source.db")
	newStoreAt(t, src, kek)
	dst := filepath.Join(dir, "target.db")
	before := treeOf(t, dir)

	r := runCLI(t, nil, "admin", "migrate", "--from", "bolt:"+src, "--to", "bolt:"+dst, "--kek-file", wrong)
	oneLineError(t, r, 1, "does not open the migration source")
	assertUnchanged(t, dir, before)

	// The retry with the right key is not blocked by the failed attempt.
	runCLI(t, nil, "admin", "migrate", "--from", "bolt:"+src, "--to", "bolt:"+dst, "--kek-file", kek).ok(t)
	if got := boltContents(t, dst)["clusters"]; len(got) != 1 {
		t.Errorf("the target holds %d clusters after the retry, want 1", len(got))
	}
}

// TestAdminMigrateBuildsANewBoltTargetAsideUntilVerified: a bbolt target
// in a folder that does not exist yet gets that folder (0700); the copy is
// built under a temporary name and put at the target path only once it
// verified, so a migration that fails after copying (here: a source whose
// audit trail was edited) leaves neither the file nor the folders.
func TestAdminMigrateBuildsANewBoltTargetAsideUntilVerified(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kek := writeKEK(t, dir, "kek")
	src := filepath.Join(dir, "source.db")
	newStoreAt(t, src, kek)
	appendAudit(t, src, kek, 3)

	good := filepath.Join(dir, "new", "nested", "target.db")
	runCLI(t, nil, "admin", "migrate", "--from", "bolt:"+src, "--to", "bolt:"+good, "--kek-file", kek).ok(t)
	if got := boltContents(t, good)["clusters"]; len(got) != 1 {
		t.Errorf("the target holds %d clusters, want 1", len(got))
	}
	for _, d := range []string{filepath.Join(dir, "new"), filepath.Dir(good)} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("folder %s made for the target: %v, %v; want mode 0700", d, fi, err)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(good), bolt.MigratingPattern)); len(left) > 0 {
		t.Errorf("the temporary copy was left beside the target: %v", left)
	}

	tamperAudit(t, src, 2)
	before := treeOf(t, dir)
	for _, target := range []string{filepath.Join(dir, "other.db"), filepath.Join(dir, "other", "target.db")} {
		r := runCLI(t, nil, "admin", "migrate", "--from", "bolt:"+src, "--to", "bolt:"+target, "--kek-file", kek)
		oneLineError(t, r, 1, "the copy's audit chain does not verify")
		assertUnchanged(t, dir, before)
	}
}

// TestAdminMigrateClearsAnEtcdTargetItRefusesAfterCopying: a migration to
// etcd refused after the copy (the copy's audit trail does not verify)
// leaves no record under the etcd prefix, so the next try is not refused.
func TestAdminMigrateClearsAnEtcdTargetItRefusesAfterCopying(t *testing.T) {
	c := etcdtest.New(t, 1)
	dir := t.TempDir()
	kek := writeKEK(t, dir, "kek")
	src := filepath.Join(dir, "source.db")
	newStoreAt(t, src, kek)
	appendAudit(t, src, kek, 3)
	tamperAudit(t, src, 2)
	r := runCLI(t, nil, "admin", "migrate", "--from", "bolt:"+src, "--to", "etcd:"+strings.Join(c.Endpoints(), ","), "--kek-file", kek)
	oneLineError(t, r, 1, "the copy's audit chain does not verify")
	if !strings.Contains(r.stderr, "the target was cleared again") {
		t.Errorf("the refusal does not say the target was cleared: %q", r.stderr)
	}
	// Clearing deletes each bucket's range, which rewrites that bucket's
	// delete guard (a bookkeeping key outside every bucket, which scanners
	// compare): those may stay, no record may.
	for _, k := range etcdKeys(t, c.Endpoints()) {
		if !strings.HasPrefix(k, "/flinkpki/.deleted/") {
			t.Errorf("etcd holds %q after the refused migration, want no record", k)
		}
	}
	// And the retry of a good source is not refused as "not empty".
	good := filepath.Join(dir, "good.db")
	newStoreAt(t, good, kek)
	runCLI(t, nil, "admin", "migrate", "--from", "bolt:"+good, "--to", "etcd:"+strings.Join(c.Endpoints(), ","), "--kek-file", kek).ok(t)
}

// appendAudit appends n audit entries to the store at path.
func appendAudit(t *testing.T, path, kekFile string, n int) {
	t.Helper()
	ctx := context.Background()
	st := openBoltStore(t, path, kekFile)
	defer st.Close()
	for i := range n {
		if err := st.Update(ctx, func(tx *store.Txn) error {
			return tx.AppendAudit(&store.AuditEntry{Time: time.Unix(int64(1700000000+i), 0).UTC(), Actor: "system:test", Action: "test", Outcome: "ok"})
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// tamperAudit edits audit entry seq in the bbolt file at path, behind the
// store's back.
func tamperAudit(t *testing.T, path string, seq uint64) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		key := binary.BigEndian.AppendUint64(nil, seq)
		v := b.Get(key)
		if v == nil {
			return fmt.Errorf("no audit entry %d", seq)
		}
		return b.Put(key, bytes.Replace(v, []byte("system:test"), []byte("admin:someone"), 1))
	}); err != nil {
		t.Fatal(err)
	}
}

func TestAdminRestoreRefusesADatabaseNoServerOpened(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	backup := filepath.Join(dir, "backup.db")
	newUnopenedBolt(t, backup)
	before := treeOf(t, dir)
	r := runCLI(t, nil, "admin", "restore", backup, "--data-dir", filepath.Join(dir, "data"))
	oneLineError(t, r, 1, "holds no flinkpki store")
	assertUnchanged(t, dir, before)
}

// TestAdminBackupRefusesAMissingDirectoryBeforeConnecting names the
// directory that is missing, not the temporary file it would have held.
func TestAdminBackupRefusesAMissingDirectoryBeforeConnecting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "nope", "x.db")
	addr, accepted := countingListener(t)
	r := runCLI(t, nil, "admin", "backup", "--out", out, "--server", addr, "--token-file", writeFile(t, "t", "fpa_x"))
	oneLineError(t, r, 1, filepath.Join(dir, "nope")+" is not an existing directory; create it first")
	if strings.Contains(r.stderr, ".tmp") || accepted.Load() != 0 {
		t.Errorf("the refusal names a temporary file or connected (%d connections): %s", accepted.Load(), r.stderr)
	}
}

func TestAdminBackupRefusesADirectoryOutBeforeConnecting(t *testing.T) {
	t.Parallel()
	for _, force := range []bool{false, true} {
		dir := t.TempDir()
		out := filepath.Join(dir, "backups")
		if err := os.Mkdir(out, 0o700); err != nil {
			t.Fatal(err)
		}
		before := treeOf(t, dir)
		addr, accepted := countingListener(t)
		args := []string{"admin", "backup", "--out", out, "--server", addr, "--token-file", writeFile(t, "t", "fpa_x")}
		if force {
			args = append(args, "--force")
		}
		r := runCLI(t, nil, args...)
		oneLineError(t, r, 2, "is a directory")
		if accepted.Load() != 0 {
			t.Errorf("force=%v: %d connections to the server, want none", force, accepted.Load())
		}
		assertUnchanged(t, dir, before)
	}
}

// TestMigrationProgressStartsAfterASecond: a migration says nothing for
// its first second (a small store is copied by then), then a line as each
// bucket starts and at most one a second within a bucket.
func TestMigrationProgressStartsAfterASecond(t *testing.T) {
	t.Parallel()
	clock := time.Unix(1700000000, 0)
	var out bytes.Buffer
	progress := copyProgress(&out, func() time.Time { return clock })
	step := func(d time.Duration, bucket string, keys int) {
		clock = clock.Add(d)
		progress(bucket, keys)
	}
	step(100*time.Millisecond, "meta", 3)
	step(500*time.Millisecond, "holders", 100)
	step(500*time.Millisecond, "holders", 200) // 1.1 s: the first line
	step(500*time.Millisecond, "holders", 300)
	step(600*time.Millisecond, "holders", 400)
	step(100*time.Millisecond, "audit", 100) // a new bucket: at once
	step(100*time.Millisecond, "audit", 200)
	want := "copying holders: 200 keys\ncopying holders: 400 keys\ncopying audit: 100 keys\n"
	if out.String() != want {
		t.Errorf("progress lines:\n%s\nwant:\n%s", out.String(), want)
	}
}

// TestAnInterruptedBoltMigrationIsFinishedByRunningItAgain: a bbolt to
// bbolt migration killed before it linked its copy into place leaves
// TARGET_DIR/.flinkpki-migrating-*.db and no flinkpki.db. A serve on that
// data directory must not start a new, empty store there (with a new
// serving CA, deleting the copy): it refuses, naming the file and the
// retry. The retry finishes the migration and removes the file; a further
// run is refused naming the target file, not --etcd-prefix.
func TestAnInterruptedBoltMigrationIsFinishedByRunningItAgain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kek := writeKEK(t, dir, "kek")
	src := filepath.Join(dir, "source.db")
	newStoreAt(t, src, kek)
	data := filepath.Join(dir, "new")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	// What the killed migration left: part of the copy, under its name.
	if err := os.WriteFile(filepath.Join(data, ".flinkpki-migrating-123.db"), raw[:len(raw)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	before := treeOf(t, data)
	r := runCLI(t, nil, "serve", "--data-dir", data, "--kek-file", kek, "--listen", freeAddr(t))
	oneLineError(t, r, 1, "holds no store but .flinkpki-migrating-123.db, what an interrupted admin migrate left: run the same admin migrate again")
	assertUnchanged(t, data, before)

	target := filepath.Join(data, dbFileName)
	runCLI(t, nil, "admin", "migrate", "--from", "bolt:"+src, "--to", "bolt:"+target, "--kek-file", kek).ok(t)
	if names := entries(t, data); !slices.Equal(names, []string{dbFileName}) {
		t.Errorf("the target's folder holds %v after the retry, want only %s", names, dbFileName)
	}
	r = runCLI(t, nil, "admin", "migrate", "--from", "bolt:"+src, "--to", "bolt:"+target, "--kek-file", kek)
	oneLineError(t, r, 1, target+" is a store already: name a file that does not exist yet for --to")
	if strings.Contains(r.stderr, "--etcd-prefix") {
		t.Errorf("the refusal of a bbolt target names --etcd-prefix: %s", r.stderr)
	}
}
