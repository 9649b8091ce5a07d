package authority_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/ca"
)

// simHolder is one Flink process that restarts (and so re-enrolls) at a
// random time before its leaf expires.
type simHolder struct {
	role, name string
	creds      *authoritytest.Creds
	restartAt  time.Time
}

// TestAutomaticRotationKeepsEveryPairTalkingForThreeYears drives the
// scheduler through three simulated years with the fake clock while six
// processes restart at random. No leaf may outlive its CA, no automatic step
// may ever wait for a holder, the stored lineage must obey the safety rules
// after every tick, and every pair of processes must always complete mutual
// TLS at the simulated time. At least two full rotations must happen.
//
// A pair's handshake depends on time only through the validity windows of
// the certificates involved, which are intervals, so a pair that completes
// mutual TLS at the first and at the last tick it coexists completes it at
// every tick between. The test therefore handshakes each pair when it forms
// and again just before one side restarts: every tick is covered at a
// fraction of the cost of handshaking all pairs at all ticks.
func TestAutomaticRotationKeepsEveryPairTalkingForThreeYears(t *testing.T) {
	t.Parallel()
	simulateThreeYears(t)
}

// simulateThreeYears drives the automatic schedule through three simulated
// years on the store the options pick (a bbolt file by default).
func simulateThreeYears(t *testing.T, opts ...authoritytest.Option) {
	const (
		caValidity = 400 * day
		leaf       = 30 * day
		step       = 24 * time.Hour
		years      = 3
	)
	obs := &recorder{}
	e := authoritytest.New(t, append(opts, authoritytest.WithObserver(obs))...)
	e.CreateCluster(authority.CreateClusterRequest{Name: "sim", CAValidity: caValidity, LeafValidity: leaf})
	rng := rand.New(rand.NewPCG(2024, 7))
	start := e.Clock.Now()

	var holders []*simHolder
	for i := range 6 {
		h := &simHolder{role: "taskmanager", name: fmt.Sprintf("tm-%d", i-2)}
		if i < 2 {
			h.role, h.name = "jobmanager", fmt.Sprintf("jm-%d", i)
		}
		holders = append(holders, h)
	}
	handshakes := 0
	talk := func(h *simHolder) {
		now := e.Clock.Now()
		for _, peer := range holders {
			if peer == h || peer.creds == nil {
				continue
			}
			a, b := h.creds, peer.creds
			if handshakes%2 == 1 {
				a, b = b, a // alternate which side serves
			}
			handshakes++
			if err := authoritytest.HandshakeOnce(a, b); err != nil {
				t.Fatalf("on day %d mutual TLS broke: %v", int(now.Sub(start)/day), err)
			}
		}
	}
	restart := func(h *simHolder) {
		now := e.Clock.Now()
		if h.creds != nil {
			if !h.creds.Leaf().NotAfter.After(now) {
				t.Fatalf("on day %d %s restarts with an expired leaf", int(now.Sub(start)/day), h.name)
			}
			talk(h) // the last tick of the old credentials
		}
		h.creds = e.Enroll("sim", h.role, h.name)
		checkLeaf(t, h.creds, now, leaf)
		talk(h) // the first tick of the new ones
		life := h.creds.Leaf().NotAfter.Sub(now)
		// Anywhere from a third of the leaf's life to the last tick before
		// it expires.
		h.restartAt = now.Add(life/3 + time.Duration(rng.Int64N(int64(life*2/3-step))))
	}
	for _, h := range holders {
		restart(h)
	}

	applied := map[string]int{}
	enrollments := len(holders)
	for e.Clock.Now().Before(start.Add(years * 365 * day)) {
		now := e.Clock.Add(step)
		steps, err := e.Authority.Tick(e.Ctx)
		if err != nil {
			t.Fatalf("tick at %s: %v", now, err)
		}
		for _, s := range steps {
			applied[s]++
		}
		checkLineageSafety(t, e, "sim", now)
		for _, h := range holders {
			if !now.Before(h.restartAt) {
				restart(h)
				enrollments++
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	for _, h := range holders {
		talk(h)
	}
	t.Logf("%d enrollments, %d handshakes; steps applied: %v", enrollments, handshakes, applied)
	for _, kind := range []ca.StepKind{ca.StepPrepare, ca.StepActivate, ca.StepRetire} {
		if n := applied["sim/internal:"+string(kind)]; n < 2 {
			t.Errorf("internal lineage: %d automatic %s steps in %d years, want at least 2", n, kind, years)
		}
	}
	if b := obs.blockedSteps(); len(b) > 0 {
		t.Errorf("automatic steps waited for holders %d times: %v", len(b), b[:min(len(b), 5)])
	}
}

// checkLeaf checks one new leaf: it gets the full validity and ends no
// later than the CA that signed it.
func checkLeaf(t testing.TB, c *authoritytest.Creds, now time.Time, validity time.Duration) {
	t.Helper()
	l := c.Leaf()
	if l.NotAfter.After(c.Issuer().NotAfter) {
		t.Errorf("at %s %s got a leaf valid until %s, after its CA %q expires (%s)",
			now, c.Holder, l.NotAfter, c.Issuer().Subject.CommonName, c.Issuer().NotAfter)
	}
	if want := now.Add(validity); !l.NotAfter.Equal(want) {
		t.Errorf("at %s %s got a leaf valid until %s, want the full validity (%s): is the active CA about to expire?",
			now, c.Holder, l.NotAfter, want)
	}
}

// checkLineageSafety checks the stored state against the safety rules:
// the active CA is valid, every live holder trusts it, every live holder's
// signer is still trusted, and a due step is never blocked.
func checkLineageSafety(t testing.TB, e *authoritytest.Env, cluster string, now time.Time) {
	t.Helper()
	l := lineage(t, e, cluster, ca.PurposeInternal)
	active := l.Active()
	if active == nil || !now.Before(active.NotAfter()) {
		t.Fatalf("at %s the internal lineage %v has no valid active CA", now, l.TrustIDs())
	}
	hs, err := e.Authority.ListHolders(e.Ctx, cluster, false)
	if err != nil {
		t.Fatalf("list holders: %v", err)
	}
	ids := l.TrustIDs()
	for _, h := range hs {
		if !slices.Contains(h.Trusts, active.ID) {
			t.Errorf("at %s live holder %s trusts %v, not the active CA %s", now, h.Name, h.Trusts, active.ID)
		}
		if !slices.Contains(ids, h.SignedBy) {
			t.Errorf("at %s live holder %s has a leaf from %s, which left the lineage %v", now, h.Name, h.SignedBy, ids)
		}
	}
	for _, ls := range status(t, e, cluster).Lineages {
		if ls.Next.Due && len(ls.Blockers) > 0 {
			t.Errorf("at %s the due %s step of %s is blocked by %s", now, ls.Next.Kind, ls.Purpose, strings.Join(ls.Blockers, ", "))
		}
	}
}
