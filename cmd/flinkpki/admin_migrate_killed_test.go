package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flinkpki/flinkpki/internal/etcdtest"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/bolt"
	etcdstore "github.com/flinkpki/flinkpki/store/etcd"
)

// errKilled is what a killed migration's target sees of it: nothing more.
var errKilled = errors.New("the migration was killed")

// killedTarget is the target of a migration killed (-9) after its first n
// write transactions: nothing it would do later, its clean-up included,
// reaches the store.
type killedTarget struct {
	store.Backend
	n int
}

func (k *killedTarget) Update(ctx context.Context, fn func(store.Tx) error) error {
	if k.n <= 0 {
		return errKilled
	}
	k.n--
	return k.Backend.Update(ctx, fn)
}

func (k *killedTarget) View(ctx context.Context, fn func(store.Tx) error) error {
	if k.n <= 0 {
		return errKilled
	}
	return k.Backend.View(ctx, fn)
}

// TestAMigrationToEtcdKilledPartWayIsRefusedUntilTheSameMigrationRunsAgain
// is review d's finding 1: admin migrate bbolt -> etcd killed after the
// meta records and part of the holders were copied. A replica started on
// the target and an offline admin command refuse it in one line that says
// to run the migration again (none serves a store missing holders and its
// audit trail); the same migration run again says it cleared an
// interrupted migration's partial copy, and its result equals that of a
// migration that never stopped: the same counts, and an audit trail a
// replica verifies.
func TestAMigrationToEtcdKilledPartWayIsRefusedUntilTheSameMigrationRunsAgain(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.New(t, 1)
	endpoints := strings.Join(c.Endpoints(), ",")
	dir := t.TempDir()
	kek := writeKEK(t, dir, "kek")
	src := filepath.Join(dir, "source.db")
	newStoreAt(t, src, kek)
	appendAudit(t, src, kek, 150)
	st := openBoltStore(t, src, kek)
	if err := st.Update(ctx, func(tx *store.Txn) error {
		for i := range 150 {
			if err := tx.PutHolder(&store.Holder{Cluster: "orders", Purpose: "internal", Name: fmt.Sprintf("tm-%03d", i)}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	// The kill: the marker, meta, clusters and the first 100 holders are
	// in etcd, the rest of the holders and the whole audit trail are not.
	from, to := "bolt:"+src, "etcd:"+endpoints
	func() {
		sb, err := bolt.Open(src, bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer sb.Close()
		eb, err := etcdstore.Open(ctx, etcdstore.Config{Endpoints: c.Endpoints(), Prefix: etcdstore.DefaultPrefix})
		if err != nil {
			t.Fatal(err)
		}
		defer eb.Close()
		if _, err := store.Copy(ctx, sb, &killedTarget{eb, 4}, store.CopyOptions{From: from}); !errors.Is(err, errKilled) {
			t.Fatalf("the killed migration = %v, want errKilled", err)
		}
	}()

	const refusal = "a migration into this store did not finish (it holds part of a copy of " + "bolt:"
	const advice = "run flinkpki admin migrate again with the same --from and --to"
	r := runCLI(t, nil, "admin", "list-tokens", "--etcd-endpoints", endpoints, "--kek-file", kek)
	oneLineError(t, r, 1, refusal)
	oneLineError(t, r, 1, advice)
	if t.Failed() {
		t.FailNow() // a replica would serve it, until the test's end
	}
	r = runCLI(t, nil, "serve", "--dev", "--data-dir", filepath.Join(dir, "replica"), "--listen", freeAddr(t),
		"--store", "etcd", "--etcd-endpoints", endpoints, "--kek-file", kek)
	if last := lastLine(r.stderr); r.code != 1 || !strings.Contains(last, refusal) || !strings.Contains(last, advice) {
		t.Errorf("a replica on the partial target: exit %d, last line %q; want 1 and %q", r.code, last, refusal+"..."+advice)
	}

	// As a source, it is another migration's to finish: the same command
	// again would be refused the same way.
	r = runCLI(t, nil, "admin", "migrate", "--from", to, "--to", "bolt:"+filepath.Join(dir, "out", "flinkpki.db"), "--kek-file", kek)
	oneLineError(t, r, 1, "the migration source "+to+" is itself the target of a migration that did not finish: finish that one first")

	r = runCLI(t, nil, "admin", "migrate", "--from", from, "--to", to, "--kek-file", kek).ok(t)
	if !strings.Contains(r.stderr, "the target held the partial copy of an interrupted migration from "+from+": cleared it, copying again") {
		t.Errorf("the re-run does not say it cleared an interrupted migration's copy:\n%s", r.stderr)
	}
	control := runCLI(t, nil, "admin", "migrate", "--from", from, "--to", to, "--etcd-prefix", "/full/", "--kek-file", kek).ok(t)
	if r.stdout != control.stdout {
		t.Errorf("the re-run's counts:\n%s\na migration that never stopped:\n%s", r.stdout, control.stdout)
	}
	if !strings.Contains(r.stdout, "holders        150") || !strings.Contains(r.stdout, "audit          150") {
		t.Errorf("the re-run did not copy every holder and audit entry:\n%s", r.stdout)
	}
	s := startServer(t, "", "--store", "etcd", "--etcd-endpoints", endpoints, "--kek-file", kek)
	s.cli(t, s.admin, "audit", "verify").ok(t)
}
