package authority_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/ca"
)

// TestExpiriesAgreeWithStatus: the expiry gauges' lean read (each holder's
// expiry alone) reports, page by page, the CAs and the earliest live leaf
// expiry that the full status reports, for a cluster whose leaves expire
// at different times, one whose leaves all expired, one that never
// enrolled, and one whose earliest leaf was superseded by a later one.
func TestExpiriesAgreeWithStatus(t *testing.T) {
	e := authoritytest.New(t)
	const leaf = 30 * day
	names := []string{"a-staggered", "b-expired", "c-empty", "d-superseded", "e-rotating"}
	for _, n := range names {
		l := leaf
		if n == "b-expired" {
			l = 10 * day
		}
		e.CreateCluster(authority.CreateClusterRequest{Name: n, CAValidity: 400 * day, LeafValidity: l})
	}
	t0 := e.Clock.Now()
	for i := range 5 {
		e.Enroll("a-staggered", "taskmanager", fmt.Sprintf("tm-%d", i))
		e.Enroll("b-expired", "taskmanager", fmt.Sprintf("tm-%d", i))
		e.Clock.Add(day)
	}
	e.Enroll("d-superseded", "jobmanager", "jm")
	e.Enroll("e-rotating", "taskmanager", "tm")
	if err := e.Authority.Prepare(e.Ctx, admin, "e-rotating", "internal"); err != nil {
		t.Fatal(err)
	}
	e.Clock.Add(10 * day)
	e.Enroll("d-superseded", "jobmanager", "jm") // its first leaf was the earliest
	e.Enroll("d-superseded", "taskmanager", "tm")
	for i := range 3 {
		e.Enroll("a-staggered", "taskmanager", fmt.Sprintf("tm-%d", i)) // a newer leaf each
	}
	e.Clock.Add(12 * day) // day 27: b-expired's leaves have expired

	var got []*authority.Expiry
	for after := ""; ; {
		page, next, err := e.Authority.Expiries(e.Ctx, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page...)
		if next == "" {
			break
		}
		after = next
	}
	if len(got) != len(names) {
		t.Fatalf("Expiries in pages of 2 returned %d clusters, want %d", len(got), len(names))
	}
	live := 0
	for i, x := range got {
		st := status(t, e, names[i])
		if x.Cluster != names[i] {
			t.Fatalf("Expiries[%d] is %s, want %s", i, x.Cluster, names[i])
		}
		if !x.EarliestExpiry.Equal(st.EarliestExpiry) {
			t.Errorf("%s: Expiries says the earliest live leaf expires at %v, Status says %v", x.Cluster, x.EarliestExpiry, st.EarliestExpiry)
		}
		if x.LiveHolders != st.LiveHolders {
			t.Errorf("%s: Expiries counts %d live holders, Status %d", x.Cluster, x.LiveHolders, st.LiveHolders)
		}
		var want, have []string
		for _, l := range st.Lineages {
			for _, c := range l.CAs {
				want = append(want, c.CA.ID+" "+string(c.CA.State)+" "+c.CA.Cert.NotAfter.String())
			}
		}
		for _, c := range x.CAs {
			have = append(have, c.ID+" "+string(c.State)+" "+c.NotAfter.String())
		}
		if !slices.Equal(have, want) {
			t.Errorf("%s: Expiries has CAs %v, Status %v", x.Cluster, have, want)
		}
		// The next steps, from each CA's validity alone, are the ones
		// Status plans from the parsed certificates.
		var wantNext, haveNext []string
		for _, l := range st.Lineages {
			if l.Next.Kind != ca.StepNone {
				wantNext = append(wantNext, fmt.Sprint(l.Purpose, " ", l.Next.Kind, " ", l.Next.At))
			}
		}
		for _, n := range x.Next {
			haveNext = append(haveNext, fmt.Sprint(n.Purpose, " ", n.Kind, " ", n.At))
		}
		if !slices.Equal(haveNext, wantNext) || len(haveNext) != 2 || !x.AutoRotate {
			t.Errorf("%s: Expiries has next steps %v (auto-rotate %v), Status %v", x.Cluster, haveNext, x.AutoRotate, wantNext)
		}
		if !x.EarliestExpiry.IsZero() {
			live++
		}
	}
	// What the scenario is built to show, so a wrong Status cannot hide a
	// wrong Expiries: two clusters without a live leaf; a-staggered's
	// earliest is tm-3's, enrolled on day 3 (tm-0 to tm-2 enrolled again on
	// day 15); d-superseded's is day 15's, its jobmanager's first leaf of
	// day 5 superseded.
	if live != 3 || !got[1].EarliestExpiry.IsZero() || !got[2].EarliestExpiry.IsZero() {
		t.Errorf("%d clusters with a live leaf (b-expired %v, c-empty %v), want 3 and neither of those", live, got[1].EarliestExpiry, got[2].EarliestExpiry)
	}
	var counts []int
	for _, x := range got {
		counts = append(counts, x.LiveHolders)
	}
	if want := []int{5, 0, 0, 2, 1}; !slices.Equal(counts, want) {
		t.Errorf("live holders per cluster %v, want %v (%v)", counts, want, names)
	}
	if want := t0.Add(3*day + leaf); !got[0].EarliestExpiry.Equal(want) {
		t.Errorf("a-staggered's earliest live leaf expires at %v, want tm-3's, %v", got[0].EarliestExpiry, want)
	}
	if want := t0.Add(15*day + leaf); !got[3].EarliestExpiry.Equal(want) {
		t.Errorf("d-superseded's earliest live leaf expires at %v, want day 15's, %v", got[3].EarliestExpiry, want)
	}
	// e-rotating's internal lineage has a prepared CA: it waits to
	// activate it, a leaf lifetime and the clock skew after its making.
	if n := got[4].Next[0]; n.Purpose != ca.PurposeInternal || n.Kind != ca.StepActivate || !n.At.Equal(t0.Add(5*day).Add(leaf+ca.ClockSkew(leaf))) {
		t.Errorf("e-rotating's internal next step: %+v; want activate, a leaf lifetime after day 5's prepare", n)
	}
	if n := got[0].Next[0]; n.Kind != ca.StepPrepare || !n.At.Equal(got[0].CAs[0].NotAfter.Add(-(2*leaf + ca.DefaultMargin(leaf)))) {
		t.Errorf("a-staggered's internal next step: %+v; want prepare two leaf lifetimes and the margin before its CA expires", n)
	}
	if len(got[4].CAs) < 3 {
		t.Errorf("e-rotating has %d CAs after a rotation, want its internal lineage of two and its REST CA", len(got[4].CAs))
	}
}
