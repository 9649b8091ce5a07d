package authority

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/store"
)

// holderViews reads the holders of one purpose as the ca package sees them.
func holderViews(tx *store.Txn, cluster string, p ca.Purpose) ([]ca.HolderView, error) {
	var out []ca.HolderView
	err := tx.ForEachHolder(cluster, string(p), func(h *store.Holder) (bool, error) {
		out = append(out, ca.HolderView{Name: h.Name, SignedBy: h.SignedBy, Trusts: h.Trusts, NotAfter: h.NotAfter})
		return true, nil
	})
	return out, err
}

func parsePurpose(s string) (ca.Purpose, error) {
	if s == "" {
		return ca.PurposeInternal, nil
	}
	p, err := ca.ParsePurpose(s)
	if err != nil {
		return "", invalid(err)
	}
	return p, nil
}

// Prepare creates the next CA of a lineage. From now on every truststore
// issued for the purpose trusts it, while the active CA keeps signing.
func (a *Authority) Prepare(ctx context.Context, actor Actor, cluster, purpose string) error {
	if err := a.prepare(ctx, actor, cluster, purpose, nil); err != nil {
		return a.failed(ctx, actor, cluster, "ca.prepare", err)
	}
	return nil
}

// prepare makes the next CA of a lineage, outside any transaction, and
// stores it as prepared; check, when set, runs first in the transaction
// that stores it, and its error refuses the step (the scheduler's
// stillDue).
func (a *Authority) prepare(ctx context.Context, actor Actor, cluster, purpose string, check func(*store.Txn) error) error {
	p, err := parsePurpose(purpose)
	if err != nil {
		return err
	}
	unlock := a.clusterLock(cluster)
	defer unlock()
	var c *store.Cluster
	var gen int
	err = a.st.View(ctx, func(tx *store.Txn) error {
		v, err := a.clusterView(tx, cluster)
		if err != nil {
			return err
		}
		c = v.Cluster
		if gen, err = ca.PlanPrepare(v.Lineage(p), a.now()); err != nil {
			return err
		}
		gen = max(gen, c.Generations[string(p)]+1)
		return nil
	})
	if err != nil {
		return err
	}
	rec, err := a.createCA(ctx, c, p, gen)
	if err != nil {
		return err
	}
	rec.State = string(ca.StatePrepared)
	rec.Activated = time.Time{}
	return a.st.Update(ctx, func(tx *store.Txn) error {
		if check != nil {
			if err := check(tx); err != nil {
				return err
			}
		}
		v, err := a.clusterView(tx, cluster)
		if err != nil {
			return err
		}
		if _, err := ca.PlanPrepare(v.Lineage(p), a.now()); err != nil {
			return err
		}
		if !v.Cluster.Created.Equal(c.Created) || v.Cluster.KeyType != c.KeyType || v.Cluster.CAValidity != c.CAValidity {
			// The CA was made for the record read before: the cluster was
			// deleted and made again meanwhile (on another replica: the
			// lock is this process's), or its CA settings changed.
			return fmt.Errorf("%w: cluster %q was made again or changed while its next CA was made: run the step again", ErrConflict, cluster)
		}
		if v.Cluster.Generations[string(p)] >= gen {
			return ErrConflict
		}
		v.Cluster.Generations[string(p)] = gen
		v.Cluster.Epoch++
		if err := tx.PutCluster(v.Cluster); err != nil {
			return err
		}
		if err := tx.PutCA(rec); err != nil {
			return err
		}
		return a.audit(tx, actor, cluster, "ca.prepare", "ok", "", map[string]string{"ca": rec.ID, "purpose": string(p)})
	})
}

// Activate makes the prepared CA sign; the active one starts retiring. It is
// refused, naming the holders, while a live holder does not trust the
// prepared CA, unless force is set.
func (a *Authority) Activate(ctx context.Context, actor Actor, cluster, purpose string, force bool) error {
	action, plan := stepPlan(ca.StepActivate, force)
	return a.transition(ctx, actor, cluster, purpose, action, plan)
}

// Retire drops the retiring CA from trust. It is refused, naming the
// holders, while a live holder's leaf was signed by it, unless force is set.
func (a *Authority) Retire(ctx context.Context, actor Actor, cluster, purpose string, force bool) error {
	action, plan := stepPlan(ca.StepRetire, force)
	return a.transition(ctx, actor, cluster, purpose, action, plan)
}

type planFunc func(ca.Lineage, []ca.HolderView, time.Time) (ca.Plan, error)

// stepPlan is the audited action and the plan of an activate (kind
// ca.StepActivate) or a retire (ca.StepRetire), by hand or automatic.
func stepPlan(kind ca.StepKind, force bool) (string, planFunc) {
	if kind == ca.StepRetire {
		return "ca.retire", func(l ca.Lineage, hs []ca.HolderView, now time.Time) (ca.Plan, error) {
			return ca.PlanRetire(l, hs, now, force)
		}
	}
	return "ca.activate", func(l ca.Lineage, hs []ca.HolderView, now time.Time) (ca.Plan, error) {
		return ca.PlanActivate(l, hs, now, force)
	}
}

// transition decides and persists one activate or retire in a single
// transaction, so the decision is made on exactly the state it changes.
func (a *Authority) transition(ctx context.Context, actor Actor, cluster, purpose, action string, plan planFunc) error {
	p, err := parsePurpose(purpose)
	if err == nil {
		unlock := a.clusterLock(cluster)
		err = a.withFence(ctx, cluster, p, func(ctx context.Context) error {
			return a.st.Update(ctx, func(tx *store.Txn) error {
				return a.applyPlan(tx, actor, cluster, p, action, plan)
			})
		})
		unlock()
		err = contended(err, action, cluster)
	}
	if err != nil {
		if IsRefusal(err) {
			err = withNextSteps(err, cluster)
		}
		return a.failed(ctx, actor, cluster, action, err)
	}
	return nil
}

// contended words a step whose commit kept losing to issuances into the
// cluster (on etcd, each changes the holders the step read) as the
// conflict it is, safe to run again, instead of a store that is down.
func contended(err error, action, cluster string) error {
	if !errors.Is(err, store.ErrContended) {
		return err
	}
	return fmt.Errorf("%w: %s of cluster %q could not commit: issuances into the cluster kept changing its holders meanwhile (%v); the step is safe to run again, best once enrollment slows down",
		ErrConflict, action, cluster, err)
}

// withNextSteps adds to a step refused for live holders what an
// administrator can do about them, so the one line they read is enough to
// go on: ca names the holders; the commands are the CLI's. A refusal
// that names only some of them says where the full list is.
func withNextSteps(err error, cluster string) error {
	var be *ca.BlockedError
	if !errors.As(err, &be) || len(be.Holders) == 0 {
		return err
	}
	next := fmt.Sprintf("restart them so they enroll again (for a baked image, bake a new one under a new --holder, roll it out, then release the old holder), release departed ones (flinkpki holder release --cluster %s NAME), or use --force", cluster)
	if len(be.Holders) == 1 {
		next = fmt.Sprintf("restart it so it enrolls again (for a baked image, bake a new one under a new --holder, roll it out, then release this one), release it if it is gone (flinkpki holder release --cluster %s %s), or use --force", cluster, be.Holders[0])
	}
	if len(be.Holders) > ca.MaxNamedHolders {
		next += fmt.Sprintf("; all %d: flinkpki holder list --cluster %s --blocking", len(be.Holders), cluster)
	}
	return fmt.Errorf("%w; %s", err, next)
}

func (a *Authority) applyPlan(tx *store.Txn, actor Actor, cluster string, p ca.Purpose, action string, plan planFunc) error {
	v, err := a.clusterView(tx, cluster)
	if err != nil {
		return err
	}
	hs, err := holderViews(tx, cluster, p)
	if err != nil {
		return err
	}
	now := a.now().UTC()
	pl, err := plan(v.Lineage(p), hs, ca.BlockersAsOf(now, v.Cluster.LeafValidity))
	if be := (*ca.BlockedError)(nil); errors.As(err, &be) {
		be.Lapsed, be.LapsedUntil = ca.LapsedBlockers(be.Holders, hs, now, v.Cluster.LeafValidity)
	}
	if err != nil {
		return err
	}
	details := map[string]string{"purpose": string(p)}
	for _, ch := range pl.Changes {
		r := v.records[ch.CAID]
		if r == nil {
			return fmt.Errorf("CA %s vanished during %s", ch.CAID, action)
		}
		details[ch.CAID] = fmt.Sprintf("%s->%s", ch.From, orRetired(ch.To))
		if ch.To == "" {
			if err := tx.DeleteCA(cluster, r.ID); err != nil {
				return err
			}
			continue
		}
		r.State = string(ch.To)
		switch ch.To {
		case ca.StateActive:
			r.Activated = now
		case ca.StateRetiring:
			r.Retiring = now
		}
		if err := tx.UpdateCA(r); err != nil {
			return err
		}
	}
	v.Cluster.Epoch++
	if v.Cluster.StepFencePurpose == string(p) { // the step is taken: the lineage's issuances go on
		v.Cluster.StepFence, v.Cluster.StepFencePurpose = time.Time{}, ""
	}
	if err := tx.PutCluster(v.Cluster); err != nil {
		return err
	}
	outcome := "ok"
	if pl.Forced {
		outcome = "forced"
		listed, total := firstHolders(slices.Clone(pl.Blockers))
		details["overridden_blockers"] = strings.Join(listed, ",")
		details["overridden_blockers_total"] = strconv.Itoa(total)
	}
	return a.audit(tx, actor, cluster, action, outcome, "", details)
}

func orRetired(s ca.State) string {
	if s == "" {
		return "retired"
	}
	return string(s)
}

// ReleaseHolder declares a holder gone, so it no longer blocks rotation.
func (a *Authority) ReleaseHolder(ctx context.Context, actor Actor, cluster, holder, purpose string) (int, error) {
	if purpose != "" && !slices.Contains(ca.Purposes(), ca.Purpose(purpose)) {
		err := fmt.Errorf("%w: purpose %q: use internal or rest, or none for both", ErrInvalid, purpose)
		return 0, a.failed(ctx, actor, cluster, "holder.release", err)
	}
	n := 0
	err := a.st.Update(ctx, func(tx *store.Txn) error {
		n = 0
		if _, err := a.getCluster(tx, cluster); err != nil {
			return err
		}
		for _, p := range ca.Purposes() {
			if purpose != "" && string(p) != purpose {
				continue
			}
			if _, err := tx.Holder(cluster, string(p), holder); err == nil {
				if err := tx.DeleteHolder(cluster, string(p), holder); err != nil {
					return err
				}
				n++
			}
		}
		if n == 0 && purpose != "" {
			return fmt.Errorf("holder %q of cluster %q %w among %s holders: it holds no %s credentials (flinkpki holder list --cluster %s shows each holder's purpose)", holder, cluster, ErrNotFound, purpose, purpose, cluster)
		}
		if n == 0 {
			return fmt.Errorf("holder %q of cluster %q %w (flinkpki holder list --cluster %s)", holder, cluster, ErrNotFound, cluster)
		}
		return a.audit(tx, actor, cluster, "holder.release", "ok", "", map[string]string{"holder": holder})
	})
	if err != nil {
		return 0, a.failed(ctx, actor, cluster, "holder.release", err)
	}
	return n, nil
}

// ListHolders returns the holders of a cluster; expired ones only when asked.
func (a *Authority) ListHolders(ctx context.Context, cluster string, includeExpired bool) ([]*store.Holder, error) {
	hs, _, err := a.ListHoldersPage(ctx, cluster, includeExpired, "", 0)
	return hs, err
}

// ListHoldersPage returns up to limit holders of a cluster (all when limit
// is 0) in purpose and name order, after the page token a previous page
// returned, and the token of the next page ("" after the last).
func (a *Authority) ListHoldersPage(ctx context.Context, cluster string, includeExpired bool, after string, limit int) ([]*store.Holder, string, error) {
	var afterPurpose, afterName string
	if after != "" {
		p, n, ok := strings.Cut(after, "/")
		if _, err := ca.ParsePurpose(p); !ok || err != nil || n == "" {
			return nil, "", fmt.Errorf("%w: page token %q is not one this server returned: start again without it", ErrInvalid, after)
		}
		afterPurpose, afterName = p, n
	}
	var out []*store.Holder
	next := ""
	now := a.now()
	err := a.st.View(ctx, func(tx *store.Txn) error {
		out, next = nil, ""
		if _, err := a.getCluster(tx, cluster); err != nil {
			return err
		}
		return tx.ForEachHolderAfter(cluster, afterPurpose, afterName, func(h *store.Holder) (bool, error) {
			if !includeExpired && now.After(h.NotAfter) { // valid through NotAfter (ca.HolderView.Live)
				return true, nil
			}
			if limit > 0 && len(out) == limit {
				last := out[len(out)-1]
				next = last.Purpose + "/" + last.Name
				return false, nil
			}
			out = append(out, h)
			return true, nil
		})
	})
	return out, next, err
}
