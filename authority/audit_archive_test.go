package authority_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/internal/etcdtest"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/etcd"
)

// TestArchivedAuditEntriesLeaveTheTrailAndItStillVerifies on bbolt.
func TestArchivedAuditEntriesLeaveTheTrailAndItStillVerifies(t *testing.T) {
	t.Parallel()
	archiveScenario(t)
}

// TestArchivedAuditEntriesLeaveTheTrailAndItStillVerifiesOnEtcd: the same
// on a real etcd with its default --max-txn-ops of 128, which a call of 150
// removals passes only in several transactions.
func TestArchivedAuditEntriesLeaveTheTrailAndItStillVerifiesOnEtcd(t *testing.T) {
	c := etcdtest.New(t, 1, "--max-txn-ops", "128")
	archiveScenario(t, onEtcd(c, etcd.Config{Prefix: "/archive/"}))
}

// archiveScenario: a trail of 250 entries; removing entries 1 to 200 with
// the wrong hash, or past the head, is refused and changes nothing; with
// the right hash it takes two calls of at most 150 and leaves a trail that
// starts at 201, verifies, names the last archived entry and its hash, and
// goes on growing; each call is audited; a retried call does nothing; a
// verification in parts that an archive overtook is told to start again.
func archiveScenario(t *testing.T, opts ...authoritytest.Option) {
	e := authoritytest.New(t, opts...)
	for i := range 250 {
		e.CreateCluster(authority.CreateClusterRequest{Name: fmt.Sprintf("c%03d", i)})
	}
	all := e.Audit("")
	if len(all) != 250 {
		t.Fatalf("the trail holds %d entries, want 250", len(all))
	}
	through := all[199]
	archived := func() (uint64, string) {
		t.Helper()
		var seq uint64
		var hash string
		if err := e.Store.View(e.Ctx, func(tx *store.Txn) error {
			var err error
			seq, hash, err = tx.AuditArchived()
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return seq, hash
	}

	for _, bad := range []struct {
		seq  uint64
		hash string
		want string
	}{
		{200, strings.Repeat("0", 64), "has hash " + through.Hash},
		{100_000, through.Hash, "the audit trail ends at entry 251, so entry 100000"}, // 251: the refusal above
		{0, through.Hash, "through_seq is 0"},
	} {
		_, err := e.Authority.PruneAudit(e.Ctx, authoritytest.Admin, bad.seq, bad.hash, 0)
		if !errors.Is(err, authority.ErrInvalid) || !strings.Contains(err.Error(), bad.want) {
			t.Fatalf("remove through %d with hash %.8s: %v; want ErrInvalid saying %q", bad.seq, bad.hash, err, bad.want)
		}
		if seq, _ := archived(); seq != 0 {
			t.Fatalf("a refused removal archived through entry %d", seq)
		}
	}
	refusals := e.Audit("")[250:]
	if len(refusals) != 3 || refusals[0].Action != "audit.archive" || refusals[0].Outcome != "denied" {
		t.Fatalf("the refusals were audited as %+v; want three audit.archive denials after the 250 entries", refusals)
	}

	r, err := e.Authority.PruneAudit(e.Ctx, authoritytest.Admin, 200, through.Hash, 150)
	if err != nil || r.Removed != 150 || r.Archived != 150 || r.Done {
		t.Fatalf("the first call of at most 150: %+v, %v; want 150 removed, not done", r, err)
	}
	r, err = e.Authority.PruneAudit(e.Ctx, authoritytest.Admin, 200, through.Hash, 150)
	if err != nil || r.Removed != 50 || r.Archived != 200 || !r.Done {
		t.Fatalf("the second call: %+v, %v; want the other 50 removed, done", r, err)
	}
	if seq, hash := archived(); seq != 200 || hash != through.Hash {
		t.Fatalf("the store marks entry %d (%.8s) as the last archived; want 200 (%.8s)", seq, hash, through.Hash)
	}
	r, err = e.Authority.PruneAudit(e.Ctx, authoritytest.Admin, 200, through.Hash, 0)
	if err != nil || r.Removed != 0 || !r.Done {
		t.Fatalf("a retried call: %+v, %v; want nothing removed, done", r, err)
	}
	if _, err := e.Authority.PruneAudit(e.Ctx, authoritytest.Admin, 200, all[198].Hash, 0); !errors.Is(err, authority.ErrInvalid) {
		t.Fatalf("a call naming entry 200 with another hash after it was archived: %v; want ErrInvalid", err)
	}

	left := e.Audit("")
	if left[0].Seq != 201 || left[0].Prev != through.Hash {
		t.Fatalf("the trail now starts at entry %d linking to %.8s; want 201 linking to entry 200's hash", left[0].Seq, left[0].Prev)
	}
	var calls []*store.AuditEntry
	for _, a := range left {
		if a.Action == "audit.archive" && a.Outcome == "ok" {
			calls = append(calls, a)
		}
	}
	if len(calls) != 2 || calls[0].Details["from_seq"] != "1" || calls[1].Details["from_seq"] != "151" ||
		calls[0].Details["through_seq"] != "200" || calls[0].Details["through_hash"] != through.Hash || calls[0].Actor != "admin:test" {
		t.Fatalf("the removals were audited as %+v; want one audit.archive entry per call that removed, from 1 and from 151", calls)
	}

	e.CreateCluster(authority.CreateClusterRequest{Name: "after"})
	v, err := e.Authority.VerifyAudit(e.Ctx)
	head := left[len(left)-1].Seq + 1
	if err != nil || v.FirstBad != 0 || v.Archived != 200 || v.ArchivedHash != through.Hash || v.LastSeq != head || v.Entries != head-200 {
		t.Fatalf("verify after the archive: %+v, %v; want entries 201 to %d intact, 1 to 200 archived", v, err, head)
	}
	if !strings.Contains(v.Message, "1 to 200 were archived; the last of them has hash "+through.Hash) {
		t.Errorf("verify says %q; it should name the archived entries and the last one's hash", v.Message)
	}
	if _, err := e.Authority.VerifyAuditPart(e.Ctx, 100, all[99].Hash, 10); !errors.Is(err, authority.ErrConflict) {
		t.Fatalf("a verification in parts that had reached entry 100 before the archive: %v; want ErrConflict (start again)", err)
	}
}

// TestAnAuditArchiveRemovesNothingThatDoesNotVerify: the oldest entry is
// edited in the file; a call to remove it and those after it is refused,
// as a broken trail, and removes nothing, so the evidence stays where
// audit verify finds it.
func TestAnAuditArchiveRemovesNothingThatDoesNotVerify(t *testing.T) {
	t.Parallel()
	e, last := trailWithAnEditedEntry(t, 1)
	_, err := e.Authority.PruneAudit(e.Ctx, authoritytest.Admin, 16, last.Hash, 0)
	if !errors.Is(err, authority.ErrAuditBroken) || !strings.Contains(err.Error(), "audit entry 1 was modified") {
		t.Fatalf("remove through 16 over an edited entry 1: %v; want ErrAuditBroken naming entry 1", err)
	}
	es := e.Audit("")
	if es[0].Seq != 1 || len(es) != 21 || es[20].Action != "audit.archive" || es[20].Outcome != "denied" {
		t.Fatalf("after the refusal the trail starts at %d and holds %d entries (last %s/%s); want all 20 and the audited refusal",
			es[0].Seq, len(es), es[len(es)-1].Action, es[len(es)-1].Outcome)
	}
}

// TestAnArchiveThatStopsPartWayAnswersWhatItRemoved: a call of several
// transactions (the first removes one entry, the others up to 5) whose
// third meets an edited entry answers the entries the first two removed
// (they stay removed), with why it stopped, and no error, so the caller
// keeps its archive; later calls remove what still verifies, and one that
// starts at the edited entry is refused and removes nothing.
func TestAnArchiveThatStopsPartWayAnswersWhatItRemoved(t *testing.T) {
	t.Parallel()
	e, last := trailWithAnEditedEntry(t, 9)
	r, err := e.Authority.PruneAuditInChunks(e.Ctx, authoritytest.Admin, 16, last.Hash, 100, 5)
	if err != nil || r.Removed != 6 || r.Archived != 6 || r.Done || !errors.Is(r.Stopped, authority.ErrAuditBroken) {
		t.Fatalf("chunks of 5 through 16 over an edited entry 9: %+v, %v; want entries 1 to 6 removed, stopped by the broken trail, no error", r, err)
	}
	if es := e.Audit(""); es[0].Seq != 7 {
		t.Fatalf("after the partial call the trail starts at %d; want 7", es[0].Seq)
	}
	// Later calls remove what still verifies (7, 8), each stopping at 9,
	// until one starts at 9: that one is refused.
	for i := 0; ; i++ {
		r, err := e.Authority.PruneAuditInChunks(e.Ctx, authoritytest.Admin, 16, last.Hash, 100, 5)
		if err != nil {
			if !errors.Is(err, authority.ErrAuditBroken) || !strings.Contains(err.Error(), "audit entry 9 was modified") {
				t.Fatalf("the call refused: %v; want a broken trail at entry 9", err)
			}
			break
		}
		if i == 3 || r.Archived > 8 || r.Stopped == nil {
			t.Fatalf("call %d after: %+v; want it to stop before entry 9, and a refusal by the fourth", i+2, r)
		}
	}
	if es := e.Audit(""); es[0].Seq != 9 || es[len(es)-1].Action != "audit.archive" || es[len(es)-1].Outcome != "denied" {
		t.Fatalf("the refused call removed entries or went unaudited: the trail starts at %d and ends with %s/%s", es[0].Seq, es[len(es)-1].Action, es[len(es)-1].Outcome)
	}
}

// TestAuditEntriesYoungerThanTheMinimumAgeStay: an administrator token,
// stolen or not, cannot take its own recent actions out of the trail.
func TestAuditEntriesYoungerThanTheMinimumAgeStay(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t, authoritytest.WithAuditMinAge(24*time.Hour))
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders"})
	first := e.Audit("")[0]
	e.Clock.Add(23 * time.Hour)
	_, err := e.Authority.PruneAudit(e.Ctx, authoritytest.Admin, first.Seq, first.Hash, 0)
	if !errors.Is(err, authority.ErrDenied) || !strings.Contains(err.Error(), "only once they are 1d old") {
		t.Fatalf("remove a 23-hour-old entry under a minimum age of a day: %v; want ErrDenied naming the minimum", err)
	}
	if es := e.Audit(""); es[0].Seq != 1 || es[len(es)-1].Action != "audit.archive" || es[len(es)-1].Outcome != "denied" {
		t.Fatalf("the refusal removed entries or went unaudited: %+v", es[len(es)-1])
	}
	e.Clock.Add(2 * time.Hour)
	if r, err := e.Authority.PruneAudit(e.Ctx, authoritytest.Admin, first.Seq, first.Hash, 0); err != nil || r.Removed != 1 || !r.Done {
		t.Fatalf("the same entry a day old: %+v, %v; want it removed", r, err)
	}
}

// TestArchivingOnEtcdGoesOnWhileEntriesAreAppended: on etcd a transaction
// fails when what it read changed; the removal reads only the entries it
// removes, so enrollments appending at the trail's head meanwhile (through
// the group commit, as on a busy server) do not make it fail.
func TestArchivingOnEtcdGoesOnWhileEntriesAreAppended(t *testing.T) {
	c := etcdtest.New(t, 1, "--max-txn-ops", "128")
	e := authoritytest.New(t, onEtcd(c, etcd.Config{Prefix: "/busy/"}))
	for range 10 {
		if err := e.Store.Update(e.Ctx, func(tx *store.Txn) error {
			for range 90 {
				if err := tx.AppendAudit(&store.AuditEntry{Time: e.Clock.Now(), Actor: "admin:test", Action: "enroll", Outcome: "ok"}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	all := e.Audit("")
	through := all[len(all)-1]
	ctx, cancel := context.WithCancel(e.Ctx)
	var wg sync.WaitGroup
	var appended atomic.Int64
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				if e.Store.Batch(ctx, func(tx *store.Txn) error {
					return tx.AppendAudit(&store.AuditEntry{Time: e.Clock.Now(), Actor: "k8s:x", Action: "enroll", Outcome: "ok"})
				}) == nil {
					appended.Add(1)
				}
			}
		})
	}
	r, err := e.Authority.PruneAudit(e.Ctx, authoritytest.Admin, through.Seq, through.Hash, 0)
	cancel()
	wg.Wait()
	if err != nil || !r.Done || r.Removed != len(all) || r.Stopped != nil {
		t.Fatalf("remove %d entries while %d were appended: %+v, %v; want all removed in one call", len(all), appended.Load(), r, err)
	}
	if appended.Load() == 0 {
		t.Fatal("nothing was appended during the removal: the test proves nothing")
	}
	if v, err := e.Authority.VerifyAudit(e.Ctx); err != nil || v.FirstBad != 0 || v.Archived != through.Seq {
		t.Fatalf("verify after: %+v, %v", v, err)
	}
}

// trailWithAnEditedEntry is a trail of 20 entries whose entry seq was
// edited in the bbolt file, and its entry 16, to archive through.
func trailWithAnEditedEntry(t *testing.T, seq uint64) (*authoritytest.Env, *store.AuditEntry) {
	t.Helper()
	e := authoritytest.New(t)
	for i := range 20 {
		e.CreateCluster(authority.CreateClusterRequest{Name: fmt.Sprintf("c%02d", i)})
	}
	last := e.Audit("")[15]
	if err := e.Store.Close(); err != nil {
		t.Fatal(err)
	}
	tamper(t, e.Path, seq, func(m map[string]any) { m["actor"] = "admin:someone-else" })
	e.Reopen()
	return e, last
}

// TestWhatAnOlderFlinkpkiWouldMisreadRaisesTheSchema: a store starts at
// schema 1, which every flinkpki reads; archived audit entries (an older
// one would call the trail broken) and a binding with roles (it would drop
// them) move it to 2, which one that reads only 1 refuses; an
// administrator token with an expiry (it would take it for ever) moves it
// to 3; this one reads all three and refuses 4.
func TestWhatAnOlderFlinkpkiWouldMisreadRaisesTheSchema(t *testing.T) {
	t.Parallel()
	schema := func(e *authoritytest.Env) string {
		t.Helper()
		if err := e.Store.Close(); err != nil {
			t.Fatal(err)
		}
		defer e.Reopen()
		db, err := bbolt.Open(e.Path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var v string
		if err := db.View(func(tx *bbolt.Tx) error { v = string(tx.Bucket([]byte("meta")).Get([]byte("schema"))); return nil }); err != nil {
			t.Fatal(err)
		}
		return v
	}
	plain := authoritytest.New(t)
	plain.CreateCluster(authority.CreateClusterRequest{Name: "orders", K8sBindings: []store.K8sBinding{{Namespace: "flink", ServiceAccount: "orders"}}})
	plain.Enroll("orders", "taskmanager", "tm-0")
	if v := schema(plain); v != "1" {
		t.Fatalf("a store without archives or binding roles has schema %q; want 1, which every flinkpki reads", v)
	}
	plain.CreateCluster(authority.CreateClusterRequest{Name: "scoped", K8sBindings: []store.K8sBinding{{Namespace: "flink", ServiceAccount: "scoped", Roles: []string{"taskmanager"}}}})
	if v := schema(plain); v != "2" {
		t.Fatalf("after a binding with roles the schema is %q; want 2", v)
	}

	archived := authoritytest.New(t)
	archived.CreateCluster(authority.CreateClusterRequest{Name: "orders"})
	first := archived.Audit("")[0]
	if _, err := archived.Authority.PruneAudit(archived.Ctx, authoritytest.Admin, first.Seq, first.Hash, 0); err != nil {
		t.Fatal(err)
	}
	if v := schema(archived); v != "2" {
		t.Fatalf("after an archive the schema is %q; want 2", v)
	}

	// An administrator token without an expiry is what every flinkpki
	// reads; one with an expiry an older one would take for ever.
	if _, _, err := archived.Authority.CreateAdminToken(archived.Ctx, system, "ops", 0); err != nil {
		t.Fatal(err)
	}
	if v := schema(archived); v != "2" {
		t.Fatalf("after an administrator token without expiry the schema is %q; want 2", v)
	}
	if _, _, err := archived.Authority.CreateAdminToken(archived.Ctx, system, "ops", time.Hour); err != nil {
		t.Fatal(err)
	}
	if v := schema(archived); v != "3" {
		t.Fatalf("after an administrator token with an expiry the schema is %q; want 3", v)
	}
	fresh := authoritytest.New(t)
	if _, _, err := fresh.Authority.CreateAdminToken(fresh.Ctx, system, "ops", time.Hour); err != nil {
		t.Fatal(err)
	}
	if v := schema(fresh); v != "3" {
		t.Fatalf("a new store after an administrator token with an expiry has schema %q; want 3", v)
	}
	// A revoked token's tombstone: an older flinkpki would take the tokens
	// made through it.
	revoked := authoritytest.New(t)
	_, rec, err := revoked.Authority.CreateAdminToken(revoked.Ctx, system, "ops", 0)
	if err != nil {
		t.Fatal(err)
	}
	if v := schema(revoked); v != "1" {
		t.Fatalf("a new store with an administrator token that does not expire has schema %q; want 1", v)
	}
	if _, err := revoked.Authority.RevokeAdminToken(revoked.Ctx, system, rec.ID, authority.RevokeAdminOptions{}); err != nil {
		t.Fatal(err)
	}
	if v := schema(revoked); v != "3" {
		t.Fatalf("after a revocation the schema is %q; want 3", v)
	}
	// An enrollment token that names the administrator token it was made
	// through: an older flinkpki would prune the tombstone that refuses it.
	revoked.CreateCluster(authority.CreateClusterRequest{Name: "orders"})
	if _, _, err := revoked.Authority.CreateToken(revoked.Ctx, system, "orders", "taskmanager", 0, 1); err != nil {
		t.Fatal(err)
	}
	if v := schema(revoked); v != "3" {
		t.Fatalf("after an enrollment token made offline (no chain) the schema is %q; want 3", v)
	}
	_, maker, _ := adminToken(t, revoked, system, "maker", 0)
	if _, _, err := revoked.Authority.CreateToken(revoked.Ctx, maker, "orders", "taskmanager", 0, 1); err != nil {
		t.Fatal(err)
	}
	if v := schema(revoked); v != "4" {
		t.Fatalf("after an enrollment token made with an administrator token the schema is %q; want 4", v)
	}

	if err := archived.Store.Close(); err != nil {
		t.Fatal(err)
	}
	setSchema := func(v string) {
		t.Helper()
		db, err := bbolt.Open(archived.Path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.Update(func(tx *bbolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte(v)) }); err != nil {
			t.Fatal(err)
		}
	}
	setSchema("5")
	if st, err := authoritytest.OpenStore(archived.Ctx, archived.Path, archived.KEK); !errors.Is(err, store.ErrSchema) || !strings.Contains(err.Error(), `store has schema "5", this flinkpki reads 1 to 4`) {
		if st != nil {
			st.Close()
		}
		t.Fatalf("open a store of schema 5: %v; want ErrSchema naming what this one reads", err)
	}
	setSchema("4")
	archived.Reopen()
}
