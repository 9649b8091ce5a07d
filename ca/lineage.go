package ca

import (
	"fmt"
	"slices"
	"time"
)

// Lineage is the set of CAs of one cluster and one purpose. It holds at most
// one CA in each state; retired CAs have left it.
type Lineage []*CA

// HolderView is what the lifecycle rules need to know about one holder (a pod)
// from its latest issuance.
type HolderView struct {
	Name string
	// SignedBy is the ID of the CA that signed the holder's leaf.
	SignedBy string
	// Trusts lists the IDs of the CAs in the holder's truststore.
	Trusts []string
	// NotAfter is the expiry of the holder's leaf.
	NotAfter time.Time
}

// Live reports whether the holder's leaf is still valid at now. A
// certificate is valid through its notAfter (RFC 5280; Go's x509 and the
// JDK agree), so a leaf that expires exactly at now is still live.
func (h HolderView) Live(now time.Time) bool { return !now.After(h.NotAfter) }

func (l Lineage) inState(s State) *CA {
	for _, c := range l {
		if c != nil && c.State == s {
			return c
		}
	}
	return nil
}

// Active returns the CA that signs leaves, or nil.
func (l Lineage) Active() *CA { return l.inState(StateActive) }

// Prepared returns the CA waiting to be activated, or nil.
func (l Lineage) Prepared() *CA { return l.inState(StatePrepared) }

// Retiring returns the CA waiting to be retired, or nil.
func (l Lineage) Retiring() *CA { return l.inState(StateRetiring) }

// TrustBundle returns every CA of the lineage, oldest generation first, so
// that the same lineage always yields the same truststore.
func (l Lineage) TrustBundle() []*CA {
	out := make([]*CA, 0, len(l))
	for _, c := range l {
		if c != nil {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b *CA) int { return a.Generation - b.Generation })
	return out
}

// TrustIDs returns the IDs of TrustBundle, the value to record as a holder's
// Trusts when its truststore is issued.
func (l Lineage) TrustIDs() []string {
	b := l.TrustBundle()
	ids := make([]string, len(b))
	for i, c := range b {
		ids[i] = c.ID
	}
	return ids
}

// Check reports a lineage that breaks the model: more than one CA in a state,
// mixed purposes, or duplicate IDs. Plans refuse such a lineage rather than
// guess which CA was meant.
func (l Lineage) Check() error {
	seenState := map[State]string{}
	seenID := map[string]bool{}
	var purpose Purpose
	for _, c := range l {
		if c == nil {
			return fmt.Errorf("%w: the lineage holds a nil CA", ErrInvalidRequest)
		}
		if purpose == "" {
			purpose = c.Purpose
		} else if c.Purpose != purpose {
			return fmt.Errorf("%w: the lineage mixes %s and %s CAs", ErrInvalidRequest, purpose, c.Purpose)
		}
		if seenID[c.ID] {
			return fmt.Errorf("%w: the lineage holds CA %s twice", ErrInvalidRequest, c.ID)
		}
		seenID[c.ID] = true
		switch c.State {
		case StatePrepared, StateActive, StateRetiring:
		default:
			return fmt.Errorf("%w: CA %s has unknown state %q", ErrInvalidRequest, c.ID, c.State)
		}
		if other, ok := seenState[c.State]; ok {
			return fmt.Errorf("%w: CAs %s and %s are both %s", ErrInvalidRequest, other, c.ID, c.State)
		}
		seenState[c.State] = c.ID
	}
	return nil
}

func (l Lineage) byID(id string) int {
	return slices.IndexFunc(l, func(c *CA) bool { return c != nil && c.ID == id })
}

// Apply returns the lineage after a plan took effect at the given time. It
// copies the CAs it changes and never modifies l, so a caller can persist the
// result first and keep the old lineage if persisting fails.
func (l Lineage) Apply(p Plan, at time.Time) Lineage {
	out := slices.Clone(l)
	for _, ch := range p.Changes {
		i := out.byID(ch.CAID)
		if i < 0 {
			continue
		}
		if ch.To == "" {
			out = slices.Delete(out, i, i+1)
			continue
		}
		c := *out[i]
		c.State = ch.To
		switch ch.To {
		case StateActive:
			c.Activated = at
		case StateRetiring:
			c.Retiring = at
		}
		out[i] = &c
	}
	return out
}
