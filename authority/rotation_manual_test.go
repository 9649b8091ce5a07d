package authority_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/ca"
)

// TestManualRotationNeverBreaksALiveHolder walks the manual
// scenario step by step: every holder that must talk completes mutual TLS
// (in Go and, in one JVM at the end, in the JDK as Flink loads its stores),
// the safety rules refuse each premature step naming the holders in the way
// without changing any state, and old credentials are refused once their CA
// is gone from trust.
func TestManualRotationNeverBreaksALiveHolder(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "e1", NoAutoRotate: true})
	jdk := newJDKRun(t, e)
	caA := lineage(t, e, "e1", ca.PurposeInternal).Active()

	// 1. jm-0 and tm-0 are issued under CA A.
	jm0 := e.Enroll("e1", "jobmanager", "jm-0")
	tm0 := e.Enroll("e1", "taskmanager", "tm-0")
	wantCreds(t, jm0, caA, caA)
	wantCreds(t, tm0, caA, caA)
	mustTalk(t, jm0, tm0)
	jdk.expect(jm0, tm0, true)

	// 2. Prepare: tm-1 trusts A and B, its leaf still signed by A.
	if err := e.Authority.Prepare(e.Ctx, admin, "e1", "internal"); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	caB := lineage(t, e, "e1", ca.PurposeInternal).Prepared()
	if caB == nil || caB.Cert.Equal(caA.Cert) {
		t.Fatalf("prepare made no new CA: lineage %v", lineage(t, e, "e1", ca.PurposeInternal).TrustIDs())
	}
	tm1 := e.Enroll("e1", "taskmanager", "tm-1")
	wantCreds(t, tm1, caA, caA, caB)
	mustTalk(t, tm1, jm0)
	jdk.expect(tm1, jm0, true)

	// 3. Activate is refused, naming jm-0 and tm-0, and changes nothing.
	err := refused(t, e, "e1", "ca.activate", func() error { return e.Authority.Activate(e.Ctx, admin, "e1", "internal", false) })
	if msg := err.Error(); !strings.Contains(msg, "jm-0, tm-0") || strings.Contains(msg, "tm-1") {
		t.Errorf("activation refusal %q should name exactly jm-0 and tm-0", msg)
	}

	// 4. jm-0 and tm-0 are re-issued; now activation succeeds.
	jm0b := e.Enroll("e1", "jobmanager", "jm-0")
	tm0b := e.Enroll("e1", "taskmanager", "tm-0")
	wantCreds(t, jm0b, caA, caA, caB)
	if err := e.Authority.Activate(e.Ctx, admin, "e1", "internal", false); err != nil {
		t.Fatalf("activate after every live holder trusts B: %v", err)
	}
	wantAudit(t, e, "e1", "ca.activate", "ok", "admin:test")
	if got := lineage(t, e, "e1", ca.PurposeInternal).Active(); got.ID != caB.ID {
		t.Fatalf("after activation %s is active, want %s", got.ID, caB.ID)
	}

	// 5. tm-2 has a B leaf and talks to everyone live; the old jm-0 from
	// step 1, which trusts only A, cannot talk to it.
	tm2 := e.Enroll("e1", "taskmanager", "tm-2")
	wantCreds(t, tm2, caB, caA, caB)
	for _, peer := range []*authoritytest.Creds{jm0b, tm0b, tm1} {
		mustTalk(t, tm2, peer)
		jdk.expect(tm2, peer, true)
	}
	mustNotTalk(t, tm2, jm0)
	jdk.expect(tm2, jm0, false)

	// 6. Retire is refused while any A leaf is live, then succeeds once
	// the last one (tm-1) is released.
	err = refused(t, e, "e1", "ca.retire", func() error { return e.Authority.Retire(e.Ctx, admin, "e1", "internal", false) })
	if !strings.Contains(err.Error(), "jm-0, tm-0, tm-1") {
		t.Errorf("retirement refusal %q should name jm-0, tm-0 and tm-1", err)
	}
	jm0c := e.Enroll("e1", "jobmanager", "jm-0")
	tm0c := e.Enroll("e1", "taskmanager", "tm-0")
	wantCreds(t, jm0c, caB, caA, caB)
	err = refused(t, e, "e1", "ca.retire", func() error { return e.Authority.Retire(e.Ctx, admin, "e1", "internal", false) })
	if !strings.Contains(err.Error(), "1 live holder still holds leaves signed by the retiring CA: tm-1;") {
		t.Errorf("retirement refusal %q should name only tm-1", err)
	}
	if n, err := e.Authority.ReleaseHolder(e.Ctx, admin, "e1", "tm-1", ""); err != nil || n != 1 {
		t.Fatalf("release tm-1: %d records, %v", n, err)
	}
	if err := e.Authority.Retire(e.Ctx, admin, "e1", "internal", false); err != nil {
		t.Fatalf("retire after the last A leaf was released: %v", err)
	}
	wantAudit(t, e, "e1", "ca.retire", "ok", "admin:test")
	if ids := lineage(t, e, "e1", ca.PurposeInternal).TrustIDs(); strings.Join(ids, ",") != caB.ID {
		t.Fatalf("after retirement the lineage is %v, want only %s", ids, caB.ID)
	}

	// 7. New credentials trust only B and refuse A leaves.
	tm3 := e.Enroll("e1", "taskmanager", "tm-3")
	wantCreds(t, tm3, caB, caB)
	for _, peer := range []*authoritytest.Creds{jm0c, tm0c, tm2} {
		mustTalk(t, tm3, peer)
		jdk.expect(tm3, peer, true)
	}
	mustNotTalk(t, tm3, tm1)
	jdk.expect(tm3, tm1, false)

	jdk.run()
}

// refused runs a lifecycle step that the safety rules must refuse and
// checks the refusal: ca.ErrBlocked, no change to the cluster's status, and
// a denied audit entry carrying the reason.
func refused(t *testing.T, e *authoritytest.Env, cluster, action string, step func() error) error {
	t.Helper()
	before := summary(status(t, e, cluster))
	err := step()
	if !errors.Is(err, ca.ErrBlocked) {
		t.Fatalf("%s: got %v, want ca.ErrBlocked", action, err)
	}
	if after := summary(status(t, e, cluster)); after != before {
		t.Errorf("refused %s changed the status:\nbefore:\n%s\nafter:\n%s", action, before, after)
	}
	if got := wantAudit(t, e, cluster, action, "denied", "admin:test"); got.Reason != err.Error() {
		t.Errorf("denied %s audited with reason %q, want %q", action, got.Reason, err)
	}
	return err
}

// TestForcedStepsOverrideBlockersAndAreAuditedAsForced covers --force: the
// steps go through despite a live holder in the way, and the audit entry
// says so and names who was overridden.
func TestForcedStepsOverrideBlockersAndAreAuditedAsForced(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "f1", NoAutoRotate: true})
	e.Enroll("f1", "jobmanager", "jm-0")
	if err := e.Authority.Prepare(e.Ctx, admin, "f1", ""); err != nil {
		t.Fatalf("prepare: %v", err)
	}
	e.Enroll("f1", "taskmanager", "tm-1") // signed by internal-1, trusts internal-1 and internal-2
	stranded := func() string {
		st, err := e.Authority.Status(e.Ctx, "f1")
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(st.Lineages[0].Stranded, ",")
	}
	if got := stranded(); got != "" {
		t.Errorf("before any forced step %q are cut off, want none", got)
	}
	steps := []struct {
		action   string
		run      func() error
		want     string // resulting internal lineage
		stranded string // live holders cut off after it
	}{
		// jm-0 does not trust the new active CA; after the retirement both
		// leaves come from a CA nobody trusts any more.
		{"ca.activate", func() error { return e.Authority.Activate(e.Ctx, admin, "f1", "internal", true) }, "internal-1:retiring,internal-2:active", "jm-0"},
		{"ca.retire", func() error { return e.Authority.Retire(e.Ctx, admin, "f1", "internal", true) }, "internal-2:active", "jm-0,tm-1"},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			t.Fatalf("forced %s: %v", s.action, err)
		}
		got := wantAudit(t, e, "f1", s.action, "forced", "admin:test")
		if want := map[string]string{"ca.activate": "jm-0", "ca.retire": "jm-0,tm-1"}[s.action]; got.Details["overridden_blockers"] != want ||
			got.Details["overridden_blockers_total"] != fmt.Sprint(len(strings.Split(want, ","))) {
			t.Errorf("forced %s audited overridden blockers %q (%s in all), want %s and their count", s.action, got.Details["overridden_blockers"], got.Details["overridden_blockers_total"], want)
		}
		var states []string
		for _, c := range lineage(t, e, "f1", ca.PurposeInternal) {
			states = append(states, c.ID+":"+string(c.State))
		}
		if strings.Join(states, ",") != s.want {
			t.Errorf("after forced %s the lineage is %v, want %s", s.action, states, s.want)
		}
		if got := stranded(); got != s.stranded {
			t.Errorf("after forced %s ca status shows %q cut off, want %q", s.action, got, s.stranded)
		}
	}
}

// TestALeafIsLiveThroughItsLastSecond: a certificate is valid through its
// notAfter (RFC 5280; Go's x509 and the JDK agree), so at exactly that
// instant its holder still blocks retirement of the CA that signed it, and
// one instant later no longer does. Retiring at that instant dropped the
// CA while the leaf was valid: a peer enrolled then refused it.
func TestALeafIsLiveThroughItsLastSecond(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "b", NoAutoRotate: true})
	if err := e.Authority.Prepare(e.Ctx, authoritytest.Admin, "b", "internal"); err != nil {
		t.Fatal(err)
	}
	e.Clock.Add(1)
	old := e.Enroll("b", "taskmanager", "tm-old") // signed by the first CA, trusts both
	if err := e.Authority.Activate(e.Ctx, authoritytest.Admin, "b", "internal", false); err != nil {
		t.Fatal(err)
	}
	e.Clock.Add(old.Leaf().NotAfter.Sub(e.Clock.Now())) // now == its notAfter
	if err := e.Authority.Retire(e.Ctx, authoritytest.Admin, "b", "internal", false); !errors.Is(err, ca.ErrBlocked) {
		t.Fatalf("retire at the instant tm-old's leaf expires: %v, want refused (the leaf is valid through that instant)", err)
	} else if strings.Contains(err.Error(), "grace") {
		t.Errorf("a live leaf's refusal speaks of the grace: %v", err)
	}
	if ls := status(t, e, "b").Lineages[0]; !slices.Equal(ls.Blockers, []string{"tm-old"}) || len(ls.Lapsed) != 0 {
		t.Errorf("status at the instant tm-old's leaf expires: blockers %v, lapsed %v; want tm-old, live", ls.Blockers, ls.Lapsed)
	}
	peer := e.Enroll("b", "jobmanager", "jm-new")
	if err := authoritytest.Handshake(old, peer); err != nil {
		t.Fatalf("tm-old's leaf is valid at its notAfter, but a peer refused it: %v", err)
	}
	// Past its notAfter by less than the clock skew allowed, the leaf may
	// still be live on the clock of the server that issued it.
	e.Clock.Add(time.Second)
	err := e.Authority.Retire(e.Ctx, authoritytest.Admin, "b", "internal", false)
	if !errors.Is(err, ca.ErrBlocked) {
		t.Fatalf("retire a second after tm-old's leaf expired, within the clock skew allowed: %v, want refused", err)
	}
	// No listing of live holders shows tm-old now: the refusal says why it
	// still counts, and until when.
	until := old.Leaf().NotAfter.Add(5 * time.Minute).UTC().Format(time.RFC3339)
	if want := "(tm-old: its leaf has expired, and counts for the clock-skew grace until " + until + ")"; !strings.Contains(err.Error(), want) {
		t.Errorf("the refusal for a leaf expired a second ago: %v, want it to say %q", err, want)
	}
	if ls := status(t, e, "b").Lineages[0]; !slices.Equal(ls.Blockers, []string{"tm-old"}) || !slices.Equal(ls.Lapsed, []string{"tm-old"}) || ls.LapsedUntil.UTC().Format(time.RFC3339) != until {
		t.Errorf("status a second after tm-old's leaf expired: blockers %v, lapsed %v until %v; want tm-old lapsed until %s", ls.Blockers, ls.Lapsed, ls.LapsedUntil, until)
	}
	e.Clock.Add(ca.ClockSkew(old.Leaf().NotAfter.Sub(old.Leaf().NotBefore)))
	if err := e.Authority.Retire(e.Ctx, authoritytest.Admin, "b", "internal", false); err != nil {
		t.Fatalf("retire once tm-old's leaf has expired by more than the clock skew: %v", err)
	}
}
