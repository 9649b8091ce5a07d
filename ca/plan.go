package ca

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Change moves one CA from one state to another. An empty To means the CA
// leaves the lineage (it is retired and no longer trusted).
type Change struct {
	CAID string
	From State
	To   State
}

// Plan is the outcome of a lifecycle decision: the changes to persist and,
// when the step was forced, the holders that would otherwise have blocked it
// (for the audit trail).
type Plan struct {
	Step     StepKind
	Changes  []Change
	Blockers []string
	Forced   bool
}

// MaxNamedHolders caps how many holder names an error message lists
// (NameList): a refusal that names fewer than its holders says where to
// find them all.
const MaxNamedHolders = 10

// BlockedError is returned when live holders still depend on the current
// state. It wraps ErrBlocked and keeps the full, sorted holder list for
// callers that show it (ca status) or audit it.
type BlockedError struct {
	Step    StepKind
	CAID    string
	Holders []string
	// Lapsed are those of Holders whose leaf has expired already and that
	// block only for the clock-skew grace (BlockersAsOf), until
	// LapsedUntil (LapsedBlockers): no listing of live holders shows them.
	Lapsed      []string
	LapsedUntil time.Time
}

// LapsedBlockers returns, sorted, those of blockers whose leaf has expired
// at now (they block only for the clock-skew grace), and when the last of
// them stops counting: a refusal or a status says why a holder the
// listings no longer show blocks.
func LapsedBlockers(blockers []string, holders []HolderView, now time.Time, leafValidity time.Duration) ([]string, time.Time) {
	blocking := map[string]bool{}
	for _, n := range blockers {
		blocking[n] = true
	}
	live := map[string]bool{}
	var lapsed []string
	var until time.Time
	for _, h := range holders {
		if !blocking[h.Name] {
			continue
		}
		if h.Live(now) {
			live[h.Name] = true
			continue
		}
		lapsed = append(lapsed, h.Name)
		if t := h.NotAfter.Add(ClockSkew(leafValidity)); t.After(until) {
			until = t
		}
	}
	// A name held twice (two roles) blocks as live when either leaf is.
	lapsed = slices.DeleteFunc(lapsed, func(n string) bool { return live[n] })
	slices.Sort(lapsed)
	return slices.Compact(lapsed), until
}

// Error names the holders, e.g. "CA activation refused: 2 live holders do
// not trust the prepared CA yet: jm-0, tm-3".
func (e *BlockedError) Error() string {
	n := len(e.Holders)
	subject := fmt.Sprintf("%d live holders", n)
	if n == 1 {
		subject = "1 live holder"
	}
	var what string
	switch e.Step {
	case StepActivate:
		what = fmt.Sprintf("CA activation refused: %s %s not trust the prepared CA yet", subject, plural(n, "does", "do"))
	default:
		what = fmt.Sprintf("CA retirement refused: %s still %s leaves signed by the retiring CA", subject, plural(n, "holds", "hold"))
	}
	return what + ": " + NameList(e.Holders) + LapsedNote(e.Lapsed, e.LapsedUntil)
}

// LapsedNote says of the blockers whose leaf has expired (BlockedError's
// Lapsed) why they still block and until when, as " (...)"; "" for none.
func LapsedNote(lapsed []string, until time.Time) string {
	if len(lapsed) == 0 {
		return ""
	}
	return fmt.Sprintf(" (%s: %s expired, and %s for the clock-skew grace until %s)", NameList(lapsed),
		plural(len(lapsed), "its leaf has", "their leaves have"), plural(len(lapsed), "counts", "count"), until.UTC().Format(time.RFC3339))
}

// Unwrap makes errors.Is(err, ErrBlocked) hold.
func (e *BlockedError) Unwrap() error { return ErrBlocked }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// NameList joins names for a person to read: all of them up to ten, else
// the first ten and how many more. Refusals and `ca status` name blocking
// holders with it (a cluster can have thousands).
func NameList(names []string) string { return NameListOf(names, len(names)) }

// NameListOf is NameList for the first names of total holders (a status
// names only the first hundred, and counts them all).
func NameListOf(names []string, total int) string {
	n := min(len(names), MaxNamedHolders)
	if total <= n {
		return strings.Join(names[:n], ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), total-n)
}

// PlanPrepare decides whether a new CA may be prepared and returns its
// generation. Only one rotation runs at a time: a prepared CA must be
// activated and a retiring CA retired first. An empty lineage yields
// generation 1, which Create makes active. The time argument keeps every
// plan function's shape the same; preparing does not depend on it today.
func PlanPrepare(l Lineage, _ time.Time) (int, error) {
	if err := l.Check(); err != nil {
		return 0, err
	}
	if p := l.Prepared(); p != nil {
		return 0, fmt.Errorf("%w: CA %s is already prepared; activate it first", ErrRotationInProgress, p.ID)
	}
	if r := l.Retiring(); r != nil {
		return 0, fmt.Errorf("%w: CA %s is still retiring; retire it first", ErrRotationInProgress, r.ID)
	}
	gen := 0
	for _, c := range l {
		gen = max(gen, c.Generation)
	}
	return gen + 1, nil
}

// ActivateBlockers returns, sorted, the live holders whose truststore lacks
// the prepared CA: activating now would hand them peers they cannot verify.
func ActivateBlockers(l Lineage, holders []HolderView, now time.Time) []string {
	p := l.Prepared()
	if p == nil {
		return nil
	}
	return blockers(holders, now, func(h HolderView) bool { return !slices.Contains(h.Trusts, p.ID) })
}

// RetireBlockers returns, sorted, the live holders whose leaf the retiring CA
// signed: retiring now would make their peers reject them.
func RetireBlockers(l Lineage, holders []HolderView, now time.Time) []string {
	r := l.Retiring()
	if r == nil {
		return nil
	}
	return blockers(holders, now, func(h HolderView) bool { return h.SignedBy == r.ID })
}

func blockers(holders []HolderView, now time.Time, blocks func(HolderView) bool) []string {
	var out []string
	for _, h := range holders {
		if h.Live(now) && blocks(h) {
			out = append(out, h.Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// PlanActivate decides whether the prepared CA may start signing. It is
// refused while any live holder does not trust the prepared CA, unless force
// is set (then the blockers are returned for the audit trail). On success the
// prepared CA becomes active and the active one retiring.
func PlanActivate(l Lineage, holders []HolderView, now time.Time, force bool) (Plan, error) {
	if err := l.Check(); err != nil {
		return Plan{}, err
	}
	p := l.Prepared()
	if p == nil {
		return Plan{}, fmt.Errorf("%w: %s", ErrNoPreparedCA, nextStep(l))
	}
	if r := l.Retiring(); r != nil {
		return Plan{}, fmt.Errorf("%w: CA %s is still retiring; retire it before activating %s", ErrRotationInProgress, r.ID, p.ID)
	}
	plan := Plan{Step: StepActivate, Blockers: ActivateBlockers(l, holders, now)}
	if len(plan.Blockers) > 0 {
		if !force {
			return Plan{}, &BlockedError{Step: StepActivate, CAID: p.ID, Holders: plan.Blockers}
		}
		plan.Forced = true
	}
	if a := l.Active(); a != nil {
		plan.Changes = append(plan.Changes, Change{CAID: a.ID, From: StateActive, To: StateRetiring})
	}
	plan.Changes = append(plan.Changes, Change{CAID: p.ID, From: StatePrepared, To: StateActive})
	return plan, nil
}

// nextStep says where a lineage stands and which step comes next, for a
// step that does not apply to it (run twice, say, when unsure that the
// first run took).
func nextStep(l Lineage) string {
	a, p, r := l.Active(), l.Prepared(), l.Retiring()
	switch {
	case a == nil:
		return "the lineage has no active CA"
	case r != nil:
		return fmt.Sprintf("CA %s is active and %s is retiring (the activation is done); the next step is ca retire", a.ID, r.ID)
	case p != nil:
		return fmt.Sprintf("CA %s is prepared; the next step is ca activate", p.ID)
	default:
		return fmt.Sprintf("CA %s is active and no rotation is in progress (a retirement, if there was one, is done); the next step is ca prepare", a.ID)
	}
}

// PlanRetire decides whether the retiring CA may leave the lineage (and so
// every truststore issued from now on). It is refused while any live holder's
// leaf was signed by it, unless force is set.
func PlanRetire(l Lineage, holders []HolderView, now time.Time, force bool) (Plan, error) {
	if err := l.Check(); err != nil {
		return Plan{}, err
	}
	r := l.Retiring()
	if r == nil {
		return Plan{}, fmt.Errorf("%w: %s", ErrNoRetiringCA, nextStep(l))
	}
	plan := Plan{Step: StepRetire, Blockers: RetireBlockers(l, holders, now)}
	if len(plan.Blockers) > 0 {
		if !force {
			return Plan{}, &BlockedError{Step: StepRetire, CAID: r.ID, Holders: plan.Blockers}
		}
		plan.Forced = true
	}
	plan.Changes = []Change{{CAID: r.ID, From: StateRetiring}}
	return plan, nil
}
