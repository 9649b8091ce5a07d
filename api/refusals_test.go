package api

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
)

func TestTheRefusalGateAuditsABurstPerSourceAndCountsTheRest(t *testing.T) {
	g := newRefusalGate()
	now := time.Now()
	anon := authority.Actor{Kind: authority.ActorAnonymous, ID: "10.0.0.1"}
	audited := 0
	for i := range 200 {
		if g.admit("peer:10.0.0.1", anon, "/flinkpki.v1.EnrollmentService/Enroll", "unauthenticated", fmt.Errorf("bad token %d", i), now) {
			audited++
		}
	}
	if audited != refusalAuditBurst {
		t.Fatalf("%d refusals audited one by one in a burst, want the burst of %d", audited, refusalAuditBurst)
	}
	other := authority.Actor{Kind: authority.ActorAnonymous, ID: "10.0.0.2"}
	if !g.admit("peer:10.0.0.2", other, "/x", "unauthenticated", errors.New("e"), now) {
		t.Error("another source was held back by the first one's flood")
	}
	if !g.admit("peer:10.0.0.1", anon, "/x", "unauthenticated", errors.New("e"), now.Add(time.Second)) {
		t.Error("a second later the flooding source gets an entry of its own again")
	}

	sums := g.drain()
	if len(sums) != 1 || sums[0].n != 200-refusalAuditBurst || sums[0].kind.actor != anon || sums[0].lastErr != "bad token 199" {
		t.Fatalf("summaries = %+v, want one of %d refusals by %v ending with the last error", sums, 200-refusalAuditBurst, anon)
	}
	if again := g.drain(); len(again) != 0 {
		t.Fatalf("a second drain found %+v; counts must be taken once", again)
	}
	g.restore(sums)
	if back := g.drain(); len(back) != 1 || back[0].n != sums[0].n {
		t.Fatalf("restored counts = %+v, want %+v", back, sums)
	}
}

func TestTheRefusalGateStaysBoundedUnderManySources(t *testing.T) {
	g := newRefusalGate()
	now := time.Now()
	for i := range maxRefusalSources + 500 {
		src := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		a := authority.Actor{Kind: authority.ActorAnonymous, ID: src}
		for range refusalAuditBurst + 1 {
			g.admit("peer:"+src, a, "/x", "unauthenticated", errors.New("e"), now)
		}
	}
	if n := len(g.sources); n > maxRefusalSources+1 {
		t.Fatalf("the gate tracks %d sources, over its bound of %d and the overflow bucket", n, maxRefusalSources)
	}
	total := 0
	overflow := false
	for _, s := range g.drain() {
		total += s.n
		if s.source == overflowSource {
			overflow = true
			if s.kind.actor.ID != overflowSource {
				t.Errorf("overflow summary names actor %v; one shared actor keeps it bounded", s.kind.actor)
			}
		}
	}
	if !overflow {
		t.Error("sources past the bound were not counted in the overflow bucket")
	}
	if total == 0 {
		t.Error("no refusal was counted for a summary")
	}
}
