package authority_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/store"
)

// TestTheAuditTrailRecordsWhoDidWhatAndVerifies checks the trail of a
// short history: creation, an issuance and a refusal are there with their
// actors, and the hash chain verifies.
func TestTheAuditTrailRecordsWhoDidWhatAndVerifies(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "a1"})
	e.Enroll("a1", "jobmanager", "jm-0")
	intruder := authority.Actor{Kind: authority.ActorEnrollment, ID: "tok1", TokenCluster: "a2", TokenRole: "jobmanager"}
	if _, err := e.EnrollAs(intruder, "a1", "jobmanager", "jm-1"); !errors.Is(err, authority.ErrDenied) {
		t.Fatalf("enroll with another cluster's token: got %v, want ErrDenied", err)
	}

	want := []struct{ action, outcome, actor string }{
		{"cluster.create", "ok", "admin:test"},
		{"enroll", "ok", "admin:test"},
		{"enroll", "denied", "enrollment-token:tok1"},
	}
	got := e.Audit("a1")
	if len(got) != len(want) {
		t.Fatalf("cluster a1 has %d audit entries, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Action != w.action || g.Outcome != w.outcome || g.Actor != w.actor || g.Cluster != "a1" {
			t.Errorf("entry %d is %s/%s by %s for %q, want %s/%s by %s", i, g.Action, g.Outcome, g.Actor, g.Cluster, w.action, w.outcome, w.actor)
		}
		if g.Time.IsZero() || !g.Time.Equal(e.Clock.Now()) {
			t.Errorf("entry %d is dated %s, want the fake clock's %s", i, g.Time, e.Clock.Now())
		}
	}
	if got[1].Details["holder"] != "jm-0" || got[1].Details["signed_by"] != "internal-1" {
		t.Errorf("issuance details %v should name holder jm-0 and signer internal-1", got[1].Details)
	}
	if got[2].Reason == "" {
		t.Errorf("the refusal carries no reason")
	}
	r, err := e.Authority.VerifyAudit(e.Ctx)
	if err != nil || r.FirstBad != 0 || r.Entries != 3 {
		t.Errorf("verify an intact trail: %+v, %v; want 3 entries and none bad", r, err)
	}
}

// TestVerifyAuditNamesTheFirstTamperedEntry edits one stored entry behind
// the Authority's back, in the bbolt file itself, and expects VerifyAudit
// to name it.
func TestVerifyAuditNamesTheFirstTamperedEntry(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	for _, name := range []string{"t1", "t2", "t3"} {
		e.CreateCluster(authority.CreateClusterRequest{Name: name})
	}
	if err := e.Store.Close(); err != nil {
		t.Fatal(err)
	}
	tamper(t, e.Path, 2, func(m map[string]any) { m["actor"] = "admin:someone-else" })
	e.Reopen()
	r, err := e.Authority.VerifyAudit(e.Ctx)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if r.FirstBad != 2 || r.Entries != 1 {
		t.Errorf("verify a trail with entry 2 edited: %+v, want entry 2 named and 1 good entry before it", r)
	}
}

// tamper rewrites audit entry seq in the bbolt file at path.
func tamper(t *testing.T, path string, seq uint64, edit func(map[string]any)) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatalf("open %s with bbolt: %v", path, err)
	}
	defer db.Close()
	key := binary.BigEndian.AppendUint64(nil, seq)
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		var m map[string]any
		if err := json.Unmarshal(b.Get(key), &m); err != nil {
			return err
		}
		edit(m)
		raw, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return b.Put(key, raw)
	})
	if err != nil {
		t.Fatalf("tamper with audit entry %d: %v", seq, err)
	}
}

// TestVerifyingTheAuditTrailInPartsIsVerifyingItWhole: parts of 4 entries,
// each after the last entry and hash of the part before, verify the trail
// to its head; a tampered entry in a later part is named; and a part that
// starts from a hash other than the real one is refused at its first entry.
func TestVerifyingTheAuditTrailInPartsIsVerifyingItWhole(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	for _, name := range []string{"p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9", "p10"} {
		e.CreateCluster(authority.CreateClusterRequest{Name: name})
	}
	walk := func() (parts int, last *authority.AuditReport) {
		t.Helper()
		var after uint64
		prev := ""
		for {
			r, err := e.Authority.VerifyAuditPart(e.Ctx, after, prev, 4)
			if err != nil {
				t.Fatal(err)
			}
			parts++
			if r.Done || r.FirstBad != 0 {
				return parts, r
			}
			if r.Entries != 4 || r.LastSeq != after+4 {
				t.Fatalf("a part of 4 after entry %d verified %d entries up to %d", after, r.Entries, r.LastSeq)
			}
			after, prev = r.LastSeq, r.LastHash
		}
	}
	parts, r := walk()
	if parts != 3 || r.FirstBad != 0 || r.LastSeq != 10 || r.Message != "audit trail intact: 10 entries" {
		t.Fatalf("10 entries in parts of 4: %d parts, last %+v; want 3 parts ending intact at entry 10", parts, r)
	}
	whole, err := e.Authority.VerifyAudit(e.Ctx)
	if err != nil || !whole.Done || whole.LastSeq != 10 || whole.LastHash != r.LastHash {
		t.Fatalf("the whole trail at once: %+v, %v; want the same end as the parts", whole, err)
	}

	if r, err := e.Authority.VerifyAuditPart(e.Ctx, 4, "forged", 4); err != nil || r.FirstBad != 5 {
		t.Fatalf("a part from a forged hash: %+v, %v; want entry 5 named", r, err)
	}

	if err := e.Store.Close(); err != nil {
		t.Fatal(err)
	}
	tamper(t, e.Path, 7, func(m map[string]any) { m["cluster"] = "elsewhere" })
	e.Reopen()
	if _, r := walk(); r.FirstBad != 7 {
		t.Fatalf("parts over a trail with entry 7 edited: %+v, want entry 7 named", r)
	}
}

// TestAFilteredAuditListingStopsScanningAndSaysWhereToGoOn: one call reads
// a bounded number of entries, matching or not, and says where to go on,
// so a cluster's few entries in a long trail come in several short calls
// (some of them empty) instead of one that outlives its deadline.
func TestAFilteredAuditListingStopsScanningAndSaysWhereToGoOn(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "needle"}) // entry 1
	for i := range 25 {
		e.CreateCluster(authority.CreateClusterRequest{Name: fmt.Sprintf("hay-%d", i)}) // entries 2 to 26
	}
	e.Enroll("needle", "taskmanager", "tm-0") // entry 27
	var seqs, nexts []uint64
	for after := uint64(0); ; {
		es, next, err := e.Authority.ListAuditScanning(e.Ctx, "needle", after, 1000, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range es {
			seqs = append(seqs, x.Seq)
		}
		nexts = append(nexts, next)
		if next == 0 {
			break
		}
		after = next
	}
	if fmt.Sprint(seqs) != "[1 27]" || fmt.Sprint(nexts) != "[10 20 0]" {
		t.Fatalf("needle's entries %v over calls that went on after %v; want [1 27] after [10 20 0]", seqs, nexts)
	}
	es, next, err := e.Authority.ListAuditScanning(e.Ctx, "", 0, 5, 10)
	if err != nil || len(es) != 5 || next != 5 {
		t.Fatalf("5 entries of the whole trail: %d entries, next %d (err %v); want 5 and next 5", len(es), next, err)
	}
}

// TestNothingFollowsTheLastPossibleSequenceNumber: "after the largest
// uint64" must not wrap around to "after 0" and list the whole trail.
func TestNothingFollowsTheLastPossibleSequenceNumber(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders"})
	es, next, err := e.Authority.ListAudit(e.Ctx, "", math.MaxUint64, 0)
	if err != nil || len(es) != 0 || next != 0 {
		t.Errorf("entries after seq %d: %d entries, next %d, err %v; want none", uint64(math.MaxUint64), len(es), next, err)
	}
	if _, err := e.Authority.VerifyAuditPart(e.Ctx, math.MaxUint64, "", 0); !errors.Is(err, authority.ErrInvalid) {
		t.Errorf("verify after seq %d: %v, want ErrInvalid", uint64(math.MaxUint64), err)
	}
}

// lateCancel is a context that ends after its Err has been asked n times:
// a caller whose deadline passes while a long scan runs.
type lateCancel struct {
	context.Context
	mu sync.Mutex
	n  int
}

func (c *lateCancel) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		return context.Canceled
	}
	c.n--
	return nil
}

// TestAVerificationWhoseCallerHasGoneStops: a verification over a long
// trail looks at its context every few thousand entries, so a caller that
// gave up (an RPC past its deadline) does not keep a read transaction open
// over the rest of a trail of millions.
func TestAVerificationWhoseCallerHasGoneStops(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	err := e.Store.Update(e.Ctx, func(tx *store.Txn) error {
		for i := range 10000 {
			if err := tx.AppendAudit(&store.AuditEntry{Time: time.Unix(int64(i), 0).UTC(), Actor: "system:test", Action: "test", Outcome: "ok"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := e.Authority.VerifyAudit(e.Ctx); err != nil || !r.Done || r.FirstBad != 0 {
		t.Fatalf("the trail of 10,000 entries: %+v, %v", r, err)
	}
	ctx := &lateCancel{Context: context.Background(), n: 2}
	r, err := e.Authority.VerifyAuditPart(ctx, 0, "", 0)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("a verification whose caller has gone: %+v, %v; want it stopped with context.Canceled", r, err)
	}
	if r.Entries >= 10000 {
		t.Errorf("it checked all %d entries before stopping", r.Entries)
	}
}

// TestARefusalIsAuditedWhenItsRequestHasEnded: the refusal's entry is
// written though the request's context has ended (its caller gone, its
// deadline past) by the time it is written.
func TestARefusalIsAuditedWhenItsRequestHasEnded(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	anon := authority.Actor{Kind: authority.ActorAnonymous, ID: "10.0.0.8"}
	refused := errors.New("bad token")
	if err := e.Authority.DenyAudited(ctx, anon, "", "/flinkpki.v1.EnrollmentService/Enroll", "unauthenticated", refused); err != refused {
		t.Fatalf("DenyAudited = %v, want the refusal itself", err)
	}
	entries := e.Audit("")
	if len(entries) != 1 || entries[0].Outcome != "denied" || entries[0].Details["reason"] != "unauthenticated" {
		t.Fatalf("audit after a refusal of an ended request: %+v, want its entry", entries)
	}
}
