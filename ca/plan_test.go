package ca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeCA is a lineage member without a real key: the plans only read IDs,
// states and times.
func fakeCA(gen int, state State, created time.Time, validity time.Duration) *CA {
	return &CA{
		ID: IDFor(PurposeInternal, gen), Cluster: "orders", Purpose: PurposeInternal,
		Generation: gen, State: state, Created: created,
		Cert: &x509.Certificate{NotBefore: created, NotAfter: created.Add(validity)},
	}
}

func holder(name, signedBy string, notAfter time.Time, trusts ...string) HolderView {
	return HolderView{Name: name, SignedBy: signedBy, Trusts: trusts, NotAfter: notAfter}
}

func TestPlanPrepare(t *testing.T) {
	t.Parallel()
	y := 365 * 24 * time.Hour
	tests := []struct {
		name    string
		lineage Lineage
		want    int
		wantErr error
	}{
		{"an empty lineage starts at generation 1", nil, 1, nil},
		{"an active CA alone is followed by the next generation", Lineage{fakeCA(3, StateActive, t0, y)}, 4, nil},
		{"a prepared CA blocks another prepare", Lineage{fakeCA(1, StateActive, t0, y), fakeCA(2, StatePrepared, t0, y)}, 0, ErrRotationInProgress},
		{"a retiring CA blocks another prepare", Lineage{fakeCA(1, StateRetiring, t0, y), fakeCA(2, StateActive, t0, y)}, 0, ErrRotationInProgress},
		{"two active CAs are an inconsistent lineage", Lineage{fakeCA(1, StateActive, t0, y), fakeCA(2, StateActive, t0, y)}, 0, ErrInvalidRequest},
		{"a CA in an unknown state is refused", Lineage{&CA{ID: "internal-1", Purpose: PurposeInternal, State: "weird"}}, 0, ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := PlanPrepare(tt.lineage, t0)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("PlanPrepare = %d, %v; want %d, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestPlanActivateHonoursHolderLiveness(t *testing.T) {
	t.Parallel()
	y := 365 * 24 * time.Hour
	l := Lineage{fakeCA(1, StateActive, t0, y), fakeCA(2, StatePrepared, t0, y)}
	now := t0.Add(30 * 24 * time.Hour)
	tests := []struct {
		name        string
		holders     []HolderView
		wantBlocked []string
	}{
		{"no holders means nothing blocks", nil, nil},
		{"a live holder that trusts the prepared CA does not block", []HolderView{holder("jm-0", "internal-1", now.Add(time.Hour), "internal-1", "internal-2")}, nil},
		{"a live holder one nanosecond from expiry blocks", []HolderView{holder("jm-0", "internal-1", now.Add(time.Nanosecond), "internal-1")}, []string{"jm-0"}},
		{"a holder expiring exactly now still blocks: its leaf is valid through its notAfter", []HolderView{holder("jm-0", "internal-1", now, "internal-1")}, []string{"jm-0"}},
		{"a holder expired a nanosecond ago does not block", []HolderView{holder("jm-0", "internal-1", now.Add(-time.Nanosecond), "internal-1")}, nil},
		{"blockers are sorted and named once", []HolderView{
			holder("tm-3", "internal-1", now.Add(time.Hour), "internal-1"),
			holder("jm-0", "internal-1", now.Add(time.Hour)),
			holder("tm-3", "internal-1", now.Add(time.Hour), "internal-1"),
			holder("tm-1", "internal-1", now.Add(time.Hour), "internal-1", "internal-2"),
		}, []string{"jm-0", "tm-3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			plan, err := PlanActivate(l, tt.holders, now, false)
			if len(tt.wantBlocked) == 0 {
				if err != nil {
					t.Fatalf("PlanActivate refused: %v", err)
				}
				want := []Change{{CAID: "internal-1", From: StateActive, To: StateRetiring}, {CAID: "internal-2", From: StatePrepared, To: StateActive}}
				if !slices.Equal(plan.Changes, want) || plan.Forced {
					t.Fatalf("plan = %+v, want changes %+v", plan, want)
				}
				return
			}
			var be *BlockedError
			if !errors.Is(err, ErrBlocked) || !errors.As(err, &be) {
				t.Fatalf("PlanActivate error = %v, want a BlockedError", err)
			}
			if !slices.Equal(be.Holders, tt.wantBlocked) {
				t.Fatalf("blockers = %v, want %v", be.Holders, tt.wantBlocked)
			}
			if got := ActivateBlockers(l, tt.holders, now); !slices.Equal(got, tt.wantBlocked) {
				t.Fatalf("ActivateBlockers = %v, want %v", got, tt.wantBlocked)
			}
		})
	}
}

func TestPlanActivateRefusals(t *testing.T) {
	t.Parallel()
	y := 365 * 24 * time.Hour
	tests := []struct {
		name    string
		lineage Lineage
		wantErr error
	}{
		{"without a prepared CA there is nothing to activate", Lineage{fakeCA(1, StateActive, t0, y)}, ErrNoPreparedCA},
		{"a retiring CA must be retired first", Lineage{fakeCA(1, StateRetiring, t0, y), fakeCA(2, StateActive, t0, y), fakeCA(3, StatePrepared, t0, y)}, ErrRotationInProgress},
		{"a lineage mixing purposes is refused", Lineage{fakeCA(1, StateActive, t0, y), {ID: "rest-2", Purpose: PurposeREST, State: StatePrepared}}, ErrInvalidRequest},
	}
	for _, tt := range tests {
		if _, err := PlanActivate(tt.lineage, nil, t0, true); !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: error = %v, want %v", tt.name, err, tt.wantErr)
		}
	}
}

func TestPlanActivateWithForceRecordsTheBlockers(t *testing.T) {
	t.Parallel()
	l := Lineage{fakeCA(1, StateActive, t0, time.Hour*9000), fakeCA(2, StatePrepared, t0, time.Hour*9000)}
	hs := []HolderView{holder("tm-0", "internal-1", t0.Add(time.Hour), "internal-1")}
	plan, err := PlanActivate(l, hs, t0, true)
	if err != nil {
		t.Fatalf("forced PlanActivate: %v", err)
	}
	if !plan.Forced || !slices.Equal(plan.Blockers, []string{"tm-0"}) || len(plan.Changes) != 2 {
		t.Fatalf("plan = %+v, want a forced plan naming tm-0", plan)
	}
}

func TestBlockedErrorMessages(t *testing.T) {
	t.Parallel()
	many := make([]string, 12)
	for i := range many {
		many[i] = fmt.Sprintf("tm-%02d", i)
	}
	tests := []struct {
		name string
		err  *BlockedError
		want string
	}{
		{"activation names the holders", &BlockedError{Step: StepActivate, Holders: []string{"jm-0", "tm-3"}},
			"CA activation refused: 2 live holders do not trust the prepared CA yet: jm-0, tm-3"},
		{"activation speaks of one holder in the singular", &BlockedError{Step: StepActivate, Holders: []string{"jm-0"}},
			"CA activation refused: 1 live holder does not trust the prepared CA yet: jm-0"},
		{"retirement names the holders", &BlockedError{Step: StepRetire, Holders: []string{"jm-0", "tm-3"}},
			"CA retirement refused: 2 live holders still hold leaves signed by the retiring CA: jm-0, tm-3"},
		{"a long list is cut after ten names", &BlockedError{Step: StepRetire, Holders: many},
			"CA retirement refused: 12 live holders still hold leaves signed by the retiring CA: tm-00, tm-01, tm-02, tm-03, tm-04, tm-05, tm-06, tm-07, tm-08, tm-09 and 2 more"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
}

func TestPlanRetire(t *testing.T) {
	t.Parallel()
	y := 365 * 24 * time.Hour
	l := Lineage{fakeCA(1, StateRetiring, t0, y), fakeCA(2, StateActive, t0, y)}
	now := t0.Add(60 * 24 * time.Hour)
	tests := []struct {
		name        string
		holders     []HolderView
		force       bool
		wantBlocked []string
	}{
		{"holders signed by the active CA do not block", []HolderView{holder("jm-0", "internal-2", now.Add(time.Hour), "internal-1", "internal-2")}, false, nil},
		{"a live holder signed by the retiring CA blocks", []HolderView{holder("tm-3", "internal-1", now.Add(time.Nanosecond)), holder("jm-0", "internal-1", now.Add(time.Hour))}, false, []string{"jm-0", "tm-3"}},
		{"a holder signed by the retiring CA that expires now still blocks: its leaf is valid through its notAfter", []HolderView{holder("tm-3", "internal-1", now)}, false, []string{"tm-3"}},
		{"a holder signed by the retiring CA that expired a nanosecond ago does not block", []HolderView{holder("tm-3", "internal-1", now.Add(-time.Nanosecond))}, false, nil},
		{"force overrides the blockers", []HolderView{holder("tm-3", "internal-1", now.Add(time.Hour))}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			plan, err := PlanRetire(l, tt.holders, now, tt.force)
			if len(tt.wantBlocked) > 0 {
				var be *BlockedError
				if !errors.As(err, &be) || !errors.Is(err, ErrBlocked) || !slices.Equal(be.Holders, tt.wantBlocked) {
					t.Fatalf("PlanRetire error = %v, want blockers %v", err, tt.wantBlocked)
				}
				return
			}
			if err != nil {
				t.Fatalf("PlanRetire refused: %v", err)
			}
			if want := []Change{{CAID: "internal-1", From: StateRetiring}}; !slices.Equal(plan.Changes, want) {
				t.Fatalf("changes = %+v, want %+v", plan.Changes, want)
			}
			if plan.Forced != (tt.force && len(RetireBlockers(l, tt.holders, now)) > 0) {
				t.Fatalf("Forced = %v", plan.Forced)
			}
		})
	}
}

func TestPlanRetireWithoutARetiringCA(t *testing.T) {
	t.Parallel()
	l := Lineage{fakeCA(1, StateActive, t0, time.Hour)}
	if _, err := PlanRetire(l, nil, t0, true); !errors.Is(err, ErrNoRetiringCA) {
		t.Fatalf("PlanRetire error = %v, want ErrNoRetiringCA", err)
	}
}

func TestApplyChangesStatesAndTimesWithoutTouchingTheInput(t *testing.T) {
	t.Parallel()
	y := 365 * 24 * time.Hour
	l := Lineage{fakeCA(1, StateActive, t0, y), fakeCA(2, StatePrepared, t0, y)}
	plan, err := PlanActivate(l, nil, t0, false)
	if err != nil {
		t.Fatal(err)
	}
	at := t0.Add(time.Hour)
	after := l.Apply(plan, at)
	if l[0].State != StateActive || l[1].State != StatePrepared {
		t.Fatal("Apply modified its input")
	}
	if r := after.Retiring(); r == nil || r.ID != "internal-1" || !r.Retiring.Equal(at) {
		t.Fatalf("retiring CA = %+v", r)
	}
	if a := after.Active(); a == nil || a.ID != "internal-2" || !a.Activated.Equal(at) {
		t.Fatalf("active CA = %+v", a)
	}
	plan, err = PlanRetire(after, nil, at, false)
	if err != nil {
		t.Fatal(err)
	}
	final := after.Apply(plan, at)
	if len(final) != 1 || final[0].ID != "internal-2" {
		t.Fatalf("after retire the lineage is %v, want internal-2 alone", final.TrustIDs())
	}
}

func TestTrustBundleIsOrderedByGeneration(t *testing.T) {
	t.Parallel()
	y := 365 * 24 * time.Hour
	l := Lineage{fakeCA(3, StatePrepared, t0, y), fakeCA(1, StateRetiring, t0, y), fakeCA(2, StateActive, t0, y)}
	if got, want := l.TrustIDs(), []string{"internal-1", "internal-2", "internal-3"}; !slices.Equal(got, want) {
		t.Fatalf("TrustIDs = %v, want %v", got, want)
	}
	if l.Active().ID != "internal-2" || l.Prepared().ID != "internal-3" || l.Retiring().ID != "internal-1" {
		t.Fatal("state accessors return the wrong CAs")
	}
}

// TestAStepThatDoesNotApplyNamesTheNextOne: an operator unsure whether a
// step took runs it again; the refusal says where the lineage stands and
// which step comes next, never one that would be refused in turn.
func TestAStepThatDoesNotApplyNamesTheNextOne(t *testing.T) {
	t.Parallel()
	y := 365 * 24 * time.Hour
	afterActivate := Lineage{fakeCA(1, StateRetiring, t0, y), fakeCA(2, StateActive, t0, y)}
	steady := Lineage{fakeCA(2, StateActive, t0, y)}
	prepared := Lineage{fakeCA(1, StateActive, t0, y), fakeCA(2, StatePrepared, t0, y)}
	tests := []struct {
		name string
		plan func(Lineage, []HolderView, time.Time, bool) (Plan, error)
		l    Lineage
		want error
		next string
	}{
		{"activate run twice", PlanActivate, afterActivate, ErrNoPreparedCA, "the next step is ca retire"},
		{"activate with nothing prepared", PlanActivate, steady, ErrNoPreparedCA, "the next step is ca prepare"},
		{"retire run twice", PlanRetire, steady, ErrNoRetiringCA, "the next step is ca prepare"},
		{"retire before activate", PlanRetire, prepared, ErrNoRetiringCA, "the next step is ca activate"},
	}
	for _, tt := range tests {
		_, err := tt.plan(tt.l, nil, t0, false)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.next) {
			t.Errorf("%s: error = %v, want %v saying %q", tt.name, err, tt.want, tt.next)
		}
	}
	// Each named step is one the lineage takes.
	if _, err := PlanRetire(afterActivate, nil, t0, false); err != nil {
		t.Errorf("retire after activate: %v", err)
	}
	if _, err := PlanActivate(prepared, nil, t0, false); err != nil {
		t.Errorf("activate after prepare: %v", err)
	}
	if _, err := PlanPrepare(steady, t0); err != nil {
		t.Errorf("prepare on a steady lineage: %v", err)
	}
}
