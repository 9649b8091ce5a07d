package etcd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/flinkpki/flinkpki/store"
)

// errKilled is what a killed migration's target sees of it: nothing more.
var errKilled = errors.New("the migration was killed")

// killedAfter is a migration target whose migration is killed (-9) after
// its first n write transactions: nothing it would do later, its clean-up
// included, reaches the store.
type killedAfter struct {
	store.Backend
	n int
}

func (k *killedAfter) Update(ctx context.Context, fn func(store.Tx) error) error {
	if k.n <= 0 {
		return errKilled
	}
	k.n--
	return k.Backend.Update(ctx, fn)
}

func (k *killedAfter) View(ctx context.Context, fn func(store.Tx) error) error {
	if k.n <= 0 {
		return errKilled
	}
	return k.Backend.View(ctx, fn)
}

// killedFrom is the source the killed migrations of these tests name.
const killedFrom = "bolt:/var/lib/flinkpki/flinkpki.db"

// TestAMigrationKilledPartWayLeavesAStoreNoOpenerTakesAndARerunFinishesIt:
// whatever a killed migration left in its target (the marker alone; the
// meta records, clusters and CAs without the holders; part of the audit
// trail; everything, unchecked), Open, Check and OpenForKEKRotation refuse
// it with ErrMigration and a sentence naming the source and what to run,
// and change nothing. The same migration run again says it found an
// interrupted migration's partial copy and copies everything: the target
// then equals what a migration that never stopped made. Both ways: bbolt
// into etcd, and etcd into a bbolt file that exists (admin migrate builds
// a new bbolt target aside and links it into place once verified; an
// existing empty store it copies into as it is).
func TestAMigrationKilledPartWayLeavesAStoreNoOpenerTakesAndARerunFinishesIt(t *testing.T) {
	kek := newKEK(t)
	seal, err := store.NewSealer(kek, nil)
	if err != nil {
		t.Fatal(err)
	}
	src := newBolt(t)
	fill(t, src, kek)
	full := newBackend(t, shared.Endpoints(), testPrefix(t))
	wantCounts := migrate(t, src, full)
	want := dump(t, full)

	// The write transactions of a copy of fill's store: the marker, then
	// one per bucket (meta, clusters, cas, holders, tokens, admin_tokens)
	// and three of audit (250 keys).
	kills := []struct {
		name    string
		commits int
	}{
		{"killed after the marker alone", 1},
		{"killed after the meta records, clusters and CAs, before the holders", 4},
		{"killed in the middle of the audit trail", 8},
		{"killed after the last chunk, before its check", 10},
	}
	ways := []struct {
		name string
		from store.Backend
		to   func(testing.TB) store.Backend
	}{
		{"bbolt to etcd", src, func(t testing.TB) store.Backend { return newBackend(t, shared.Endpoints(), testPrefix(t)) }},
		{"etcd to bbolt", full, func(t testing.TB) store.Backend { return newBolt(t) }},
	}
	for _, way := range ways {
		for _, kill := range kills {
			t.Run(way.name+"/"+kill.name, func(t *testing.T) {
				dst := way.to(t)
				left := killMigration(t, way.from, dst, kill.commits)
				assertRefused(t, dst, seal, left)

				ctx := context.Background()
				var restarted []string
				counts, err := store.Copy(ctx, way.from, dst, store.CopyOptions{From: killedFrom, Restarted: func(prev string) { restarted = append(restarted, prev) }})
				if err != nil {
					t.Fatalf("the re-run: %v", err)
				}
				if fmt.Sprint(restarted) != fmt.Sprint([]string{killedFrom}) {
					t.Errorf("the re-run reported restarts %q, want one from %q", restarted, killedFrom)
				}
				if fmt.Sprint(counts) != fmt.Sprint(wantCounts) {
					t.Errorf("the re-run's counts = %v, want those of a migration that never stopped: %v", counts, wantCounts)
				}
				if _, err := store.Open(ctx, dst, seal); !errors.Is(err, store.ErrMigration) {
					t.Fatalf("Open before the copy's checks ended it = %v, want ErrMigration", err)
				}
				if err := store.EndMigration(ctx, dst); err != nil {
					t.Fatal(err)
				}
				if got := dump(t, dst); got != want {
					t.Fatalf("the re-run's target differs from a migration that never stopped:\n%s\nwant\n%s", got, want)
				}
				mustOpenStore(t, dst, kek)
			})
		}
	}
}

// killMigration runs a migration from src into dst that is killed after
// commits write transactions, and returns what it left (dump).
func killMigration(t testing.TB, src, dst store.Backend, commits int) string {
	t.Helper()
	_, err := store.Copy(context.Background(), src, &killedAfter{dst, commits}, store.CopyOptions{From: killedFrom})
	if !errors.Is(err, errKilled) {
		t.Fatalf("the killed Copy = %v, want errKilled", err)
	}
	left := dump(t, dst)
	if !strings.HasPrefix(left, "meta ") {
		t.Fatalf("the killed migration left nothing in its target: the test proves nothing")
	}
	return left
}

// assertRefused checks that every opener refuses the partial target dst,
// which holds left, with ErrMigration and a sentence that says what to
// run, and that none changes it.
func assertRefused(t testing.TB, dst store.Backend, seal *store.Sealer, left string) {
	t.Helper()
	ctx := context.Background()
	openers := []struct {
		name string
		open func() error
	}{
		{"Open", func() error { _, err := store.Open(ctx, dst, seal); return err }},
		{"Check", func() error { return store.Check(ctx, dst, seal) }},
		{"Check without a key", func() error { return store.Check(ctx, dst, nil) }},
		{"OpenForKEKRotation", func() error { _, err := store.OpenForKEKRotation(ctx, dst, seal); return err }},
	}
	for _, o := range openers {
		err := o.open()
		if !errors.Is(err, store.ErrMigration) {
			t.Fatalf("%s of the partial target = %v, want ErrMigration", o.name, err)
		}
		for _, part := range []string{"did not finish", killedFrom, "run flinkpki admin migrate again with the same --from and --to"} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("%s's refusal %q does not say %q", o.name, err, part)
			}
		}
	}
	if got := dump(t, dst); got != left {
		t.Fatalf("refusing the partial target changed it:\n%s\nwas\n%s", got, left)
	}
	// A flinkpki from before the marker does not know it: the target's
	// schema must be one it cannot read (it reads a number), and there at
	// all (without one it would make a new store beside the copy).
	var schema []byte
	if err := dst.View(ctx, func(tx store.Tx) error {
		schema = bytes.Clone(tx.Get([]byte("meta"), []byte("schema")))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := strconv.Atoi(string(schema)); schema == nil || err == nil {
		t.Errorf("the partial target's schema is %q: a flinkpki that does not know the marker would open it", schema)
	}
}

// TestAMigrationRerunClearsOnlyAMarkedTarget: only the marker makes a
// target with data a partial copy to clear; a store whose migration
// finished (its marker removed) is refused and left as it is.
func TestAMigrationRerunClearsOnlyAMarkedTarget(t *testing.T) {
	src := newBolt(t)
	fill(t, src, newKEK(t))
	dst := newBackend(t, shared.Endpoints(), testPrefix(t))
	migrate(t, src, dst)
	before := dump(t, dst)
	_, err := store.Copy(context.Background(), src, dst, store.CopyOptions{Restarted: func(string) { t.Error("a finished store was taken for a partial copy") }})
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("Copy into a finished migration's target = %v, want ErrExists", err)
	}
	if dump(t, dst) != before {
		t.Fatal("the refused migration changed the target")
	}
}
