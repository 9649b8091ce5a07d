package ca

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestAutomaticRotationNeverBreaksMutualTLS drives lineages through many
// rotations with pods that start, restart and vanish at random, following
// NextStep with no force. At every instant, every live holder must trust the
// CA of every other live holder's leaf, no automatic step may be blocked, and
// no leaf may outlive its CA.
func TestAutomaticRotationNeverBreaksMutualTLS(t *testing.T) {
	t.Parallel()
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			t.Parallel()
			simulateRotations(t, rand.New(rand.NewPCG(seed, seed*7919)))
		})
	}
}

func simulateRotations(t *testing.T, rng *rand.Rand) {
	leaf := time.Duration(1+rng.IntN(20)) * day
	margin := DefaultMargin(leaf)
	caValidity := MinCAValidity(leaf, margin) + time.Duration(rng.IntN(3))*time.Duration(rng.IntN(60))*day
	if err := ValidateValidity(caValidity, leaf, margin); err != nil {
		t.Fatal(err)
	}
	now := t0
	l := Lineage{fakeCA(1, StateActive, now, caValidity)}
	holders := map[string]HolderView{}
	rotations := 0
	for step := 0; step < 3000 && rotations < 6; step++ {
		now = now.Add(time.Duration(rng.Int64N(int64(margin / 2))))
		for {
			s := NextStep(l, leaf, margin, now)
			if !s.Due {
				break
			}
			var err error
			l, err = takeStep(l, s, views(holders), now, caValidity)
			if err != nil {
				t.Fatalf("at %s (leaf %s): automatic %s of %s refused: %v", now, leaf, s.Kind, s.CAID, err)
			}
			if s.Kind == StepRetire {
				rotations++
			}
		}
		active := l.Active()
		if !now.Before(active.NotAfter()) {
			t.Fatalf("at %s the active CA %s has expired (%s)", now, active.ID, active.NotAfter())
		}
		churn(t, rng, holders, l, now, leaf)
		checkMutualTrust(t, holders, l, now)
	}
	if rotations < 2 {
		t.Fatalf("only %d rotations completed; the simulation is too short to mean anything", rotations)
	}
}

func takeStep(l Lineage, s Step, hs []HolderView, now time.Time, caValidity time.Duration) (Lineage, error) {
	switch s.Kind {
	case StepPrepare:
		gen, err := PlanPrepare(l, now)
		if err != nil {
			return nil, err
		}
		return append(slices.Clone(l), fakeCA(gen, StatePrepared, now, caValidity)), nil
	case StepActivate:
		p, err := PlanActivate(l, hs, now, false)
		if err != nil {
			return nil, err
		}
		return l.Apply(p, now), nil
	case StepRetire:
		p, err := PlanRetire(l, hs, now, false)
		if err != nil {
			return nil, err
		}
		return l.Apply(p, now), nil
	}
	return l, nil
}

// churn restarts some pods (a new issuance supersedes the old one), starts
// new ones and lets some vanish without release. Every new leaf must get the
// full leaf validity: Flink reads its keystore once, so a pod started with a
// leaf the issuer had to cut short at its CA's expiry loses TLS early.
func churn(t *testing.T, rng *rand.Rand, holders map[string]HolderView, l Lineage, now time.Time, leaf time.Duration) {
	t.Helper()
	active := l.Active()
	for i := 0; i < 1+rng.IntN(4); i++ {
		name := fmt.Sprintf("tm-%d", rng.IntN(12))
		notAfter := now.Add(leaf)
		if notAfter.After(active.NotAfter()) {
			notAfter = active.NotAfter() // as the issuer clamps leaves
			t.Fatalf("at %s a new leaf from %s lasts %s, not the full %s: the active CA expires at %s",
				now, active.ID, notAfter.Sub(now), leaf, active.NotAfter())
		}
		holders[name] = HolderView{Name: name, SignedBy: active.ID, Trusts: l.TrustIDs(), NotAfter: notAfter}
	}
	if rng.IntN(5) == 0 {
		for name := range holders {
			delete(holders, name) // released, as by holder release
			break
		}
	}
}

func views(holders map[string]HolderView) []HolderView {
	out := make([]HolderView, 0, len(holders))
	for _, h := range holders {
		out = append(out, h)
	}
	return out
}

func checkMutualTrust(t *testing.T, holders map[string]HolderView, l Lineage, now time.Time) {
	t.Helper()
	for _, a := range holders {
		if !a.Live(now) {
			continue
		}
		signer := slices.IndexFunc(l, func(c *CA) bool { return c.ID == a.SignedBy })
		if signer < 0 {
			t.Fatalf("at %s live holder %s has a leaf from %s, which has left the lineage", now, a.Name, a.SignedBy)
		}
		if a.NotAfter.After(l[signer].NotAfter()) {
			t.Fatalf("holder %s outlives its CA %s", a.Name, a.SignedBy)
		}
		for _, b := range holders {
			if b.Live(now) && !slices.Contains(b.Trusts, a.SignedBy) {
				t.Fatalf("at %s live holder %s does not trust %s, which signed live holder %s", now, b.Name, a.SignedBy, a.Name)
			}
		}
	}
}
