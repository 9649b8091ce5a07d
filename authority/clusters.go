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
	"github.com/flinkpki/flinkpki/issuer"
	"github.com/flinkpki/flinkpki/store"
)

// CreateClusterRequest describes a new cluster.
type CreateClusterRequest struct {
	Name         string
	KeyType      string
	CAValidity   time.Duration // 0: ca.DefaultCAValidity
	LeafValidity time.Duration // 0: issuer.DefaultLeafValidity
	K8sBindings  []store.K8sBinding
	NoAutoRotate bool
}

// MinLeafValidity is the shortest leaf validity a cluster may have. It only
// keeps out nonsense such as 1ns, a leaf expired before its pod reads it:
// flinkpki's own tests run the rotation schedule on one-second leaves.
const MinLeafValidity = time.Second

// CreateCluster creates a cluster with its own internal CA and its own REST
// CA, neither of which signs anything else. It refuses a Kubernetes binding
// another cluster holds: one service account's token would enroll into
// both, so the clusters would no longer be isolated from each other.
func (a *Authority) CreateCluster(ctx context.Context, actor Actor, req CreateClusterRequest) (*ClusterView, error) {
	c, err := a.newCluster(req)
	if err != nil {
		return nil, a.Deny(ctx, actor, req.Name, "cluster.create", "invalid", err)
	}
	unlock := a.clusterLock(c.Name)
	defer unlock()
	if err := a.st.View(ctx, func(tx *store.Txn) error {
		if _, err := tx.Cluster(c.Name); err == nil {
			return fmt.Errorf("cluster %q %w", c.Name, ErrExists)
		}
		return checkBindingsFree(tx, c.K8sBindings)
	}); err != nil {
		return nil, a.failed(ctx, actor, c.Name, "cluster.create", err)
	}
	var recs []*store.CA
	for _, p := range ca.Purposes() {
		rec, err := a.createCA(ctx, c, p, 1)
		if err != nil {
			return nil, a.failed(ctx, actor, c.Name, "cluster.create", err)
		}
		recs = append(recs, rec)
		c.Generations[string(p)] = 1
	}
	err = a.st.Update(ctx, func(tx *store.Txn) error {
		if _, err := tx.Cluster(c.Name); err == nil {
			return fmt.Errorf("cluster %q %w", c.Name, ErrExists)
		}
		if err := checkBindingsFree(tx, c.K8sBindings); err != nil {
			return err
		}
		if err := tx.PutCluster(c); err != nil {
			return err
		}
		for _, r := range recs {
			if err := tx.PutCA(r); err != nil {
				return err
			}
		}
		return a.audit(tx, actor, c.Name, "cluster.create", "ok", "", map[string]string{
			"key_type": c.KeyType, "internal_ca": recs[0].ID, "rest_ca": recs[1].ID})
	})
	if err != nil {
		return nil, a.failed(ctx, actor, c.Name, "cluster.create", err)
	}
	a.log.InfoContext(ctx, "cluster created", "cluster", c.Name, "key_type", c.KeyType, "actor", actor.String())
	return a.GetCluster(ctx, c.Name)
}

func (a *Authority) newCluster(req CreateClusterRequest) (*store.Cluster, error) {
	if issuer.ValidateCluster(req.Name) != nil {
		// issuer's own words are about a certificate request, not this one.
		return nil, fmt.Errorf("%w: cluster name %q must be 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit", ErrInvalid, req.Name)
	}
	kt, err := ca.ParseKeyType(req.KeyType)
	if err != nil {
		return nil, invalid(err)
	}
	c := &store.Cluster{
		Name: req.Name, KeyType: string(kt), CAValidity: req.CAValidity, LeafValidity: req.LeafValidity,
		AutoRotate: !req.NoAutoRotate, Created: a.now().UTC(), Generations: map[string]int{}, Epoch: 1,
	}
	if c.CAValidity == 0 {
		c.CAValidity = ca.DefaultCAValidity
	}
	if c.LeafValidity == 0 {
		c.LeafValidity = issuer.DefaultLeafValidity
	}
	if c.LeafValidity > 0 && c.LeafValidity < MinLeafValidity {
		return nil, fmt.Errorf("%w: leaf validity %s is too short: use at least %s; a leaf must outlive the pod that holds it (default %dd)",
			ErrInvalid, c.LeafValidity, MinLeafValidity, issuer.DefaultLeafValidity/(24*time.Hour))
	}
	if err := ca.ValidateValidity(c.CAValidity, c.LeafValidity, ca.DefaultMargin(c.LeafValidity)); err != nil {
		return nil, invalid(err)
	}
	if n := len(req.K8sBindings); n > MaxK8sBindings {
		return nil, fmt.Errorf("%w: %d Kubernetes bindings: a cluster takes at most %d; give each deployment its own cluster", ErrInvalid, n, MaxK8sBindings)
	}
	c.K8sBindings = slices.Clone(req.K8sBindings)
	if err := checkNewBindings(c.K8sBindings, nil); err != nil {
		return nil, err
	}
	return c, nil
}

// UpdateClusterRequest changes what may change in a cluster after its
// creation: the Kubernetes service accounts that may enroll for it, and
// its automatic rotation. Its CAs, key type and validities stay: they
// shape every leaf it issued and its rotation schedule.
type UpdateClusterRequest struct {
	Name                              string
	AddK8sBindings, RemoveK8sBindings []store.K8sBinding
	AutoRotate                        *bool // nil: unchanged
}

// UpdateCluster applies req in one audited transaction (cluster.update),
// or refuses it whole, changing nothing. A binding another cluster holds
// is refused, as is removing one it does not have. Adding one this cluster
// holds sets its roles (audited as roles_changed), and is refused without
// roles. A removed service account's pods enroll no more from the next
// request on; the leaves they hold stay valid until they expire (holder
// release).
func (a *Authority) UpdateCluster(ctx context.Context, actor Actor, req UpdateClusterRequest) (*ClusterView, error) {
	fail := func(err error) (*ClusterView, error) {
		return nil, a.failed(ctx, actor, req.Name, "cluster.update", err)
	}
	if err := checkClusterUpdate(req); err != nil {
		return fail(err)
	}
	unlock := a.clusterLock(req.Name)
	defer unlock()
	err := a.st.Update(ctx, func(tx *store.Txn) error {
		return a.applyClusterUpdate(tx, actor, req)
	})
	if err != nil {
		return fail(err)
	}
	a.log.InfoContext(ctx, "cluster updated", "cluster", req.Name, "actor", actor.String())
	return a.GetCluster(ctx, req.Name)
}

// checkClusterUpdate refuses, before the store is read, an update that
// changes nothing or names a binding it cannot add or remove. It sorts
// the roles of each added binding in place (req.AddK8sBindings), as the
// cluster stores them.
func checkClusterUpdate(req UpdateClusterRequest) error {
	if len(req.AddK8sBindings) == 0 && len(req.RemoveK8sBindings) == 0 && req.AutoRotate == nil {
		return fmt.Errorf("%w: nothing to change: add or remove a Kubernetes binding, or turn automatic rotation on or off", ErrInvalid)
	}
	if err := checkNewBindings(req.AddK8sBindings, req.RemoveK8sBindings); err != nil {
		return err
	}
	for _, b := range req.RemoveK8sBindings {
		if len(b.Roles) > 0 {
			return fmt.Errorf("%w: Kubernetes binding %s/%s is removed whole: name it without roles (to change its roles, add it again with them)", ErrInvalid, b.Namespace, b.ServiceAccount)
		}
	}
	return nil
}

// applyClusterUpdate is UpdateCluster's transaction: it reads the cluster,
// edits its bindings and automatic rotation, and writes it with its audit
// entry, which says what was asked and what the bindings' edit found.
func (a *Authority) applyClusterUpdate(tx *store.Txn, actor Actor, req UpdateClusterRequest) error {
	c, err := a.getCluster(tx, req.Name)
	if err != nil {
		return err
	}
	bindings, err := unbind(req.Name, c.K8sBindings, req.RemoveK8sBindings)
	if err != nil {
		return err
	}
	fresh, changed, err := rebind(req.Name, bindings, req.AddK8sBindings)
	if err != nil {
		return err
	}
	details := map[string]string{}
	if req.AutoRotate != nil {
		details["auto_rotate"] = strconv.FormatBool(*req.AutoRotate)
	}
	if s := bindingList(req.RemoveK8sBindings); s != "" {
		details["removed"] = s
	}
	if s := bindingList(fresh); s != "" {
		details["added"] = s
	}
	if len(changed) > 0 {
		details["roles_changed"] = strings.Join(changed, ",")
	}
	if err := checkBindingsFree(tx, fresh); err != nil {
		return err
	}
	// Only an update that adds is held to the bound: a cluster stored
	// with more by an earlier version can still shrink and change.
	if n := len(bindings) + len(fresh); len(fresh) > 0 && n > MaxK8sBindings {
		return fmt.Errorf("%w: cluster %q would have %d Kubernetes bindings: a cluster takes at most %d; remove some first, or give each deployment its own cluster", ErrInvalid, req.Name, n, MaxK8sBindings)
	}
	c.K8sBindings = append(bindings, fresh...)
	if req.AutoRotate != nil {
		c.AutoRotate = *req.AutoRotate
	}
	if err := tx.PutCluster(c); err != nil {
		return err
	}
	return a.audit(tx, actor, c.Name, "cluster.update", "ok", "", details)
}

// createCA makes one CA of a lineage; the first generation is active.
func (a *Authority) createCA(ctx context.Context, c *store.Cluster, p ca.Purpose, gen int) (*store.CA, error) {
	dom, key, err := ca.Create(ctx, ca.Config{Now: a.now, Rand: a.rand}, ca.CreateRequest{
		Cluster: c.Name, Purpose: p, Generation: gen, KeyType: ca.KeyType(c.KeyType), Validity: c.CAValidity,
	})
	if err != nil {
		return nil, fmt.Errorf("create %s CA for cluster %q: %w", p, c.Name, err)
	}
	der, err := ca.MarshalKey(key)
	if err != nil {
		return nil, err
	}
	return &store.CA{
		Cluster: c.Name, ID: dom.ID, Purpose: string(p), Generation: gen, State: string(dom.State),
		CertDER: dom.Cert.Raw, Key: der, Created: dom.Created, Activated: dom.Activated,
	}, nil
}

// DeleteCluster removes a cluster with its CAs, holders and tokens. The audit
// trail keeps its history.
func (a *Authority) DeleteCluster(ctx context.Context, actor Actor, name string) error {
	unlock := a.clusterLock(name)
	defer unlock()
	// A refusal changes nothing: no token goes before the cluster is known.
	err := a.st.View(ctx, func(tx *store.Txn) error {
		_, err := tx.Cluster(name)
		return err
	})
	if err == nil {
		err = a.revokeClusterTokens(ctx, actor, name)
	}
	if err == nil {
		err = a.st.Update(ctx, func(tx *store.Txn) error {
			if err := tx.DeleteCluster(name); err != nil {
				return err
			}
			return a.audit(tx, actor, name, "cluster.delete", "ok", "", nil)
		})
		if err == nil {
			a.forgetCluster(name)
			a.log.InfoContext(ctx, "cluster deleted", "cluster", name, "actor", actor.String())
		}
	}
	if errors.Is(err, store.ErrNotFound) { // before the tokens, or deleted meanwhile
		err = fmt.Errorf("cluster %q %w", name, ErrNotFound)
	}
	if err != nil {
		return a.failed(ctx, actor, name, "cluster.delete", err)
	}
	return nil
}

// revokeClusterTokens deletes a cluster's enrollment tokens before the
// cluster itself, in chunks (deleteInChunks), each audited as token.delete.
// Unlike its CAs and holders they are not under the cluster's key prefix,
// so they cannot go as one range, and in the cluster's own transaction
// thousands of them would pass etcd's --max-txn-ops. Revoking them first is
// safe: the cluster is going, and if its deletion then fails it merely has
// no tokens left.
func (a *Authority) revokeClusterTokens(ctx context.Context, actor Actor, name string) error {
	find := func(tx *store.Txn, after string, emit func(string) bool) error {
		return tx.ForEachToken(func(t *store.Token) (bool, error) {
			if t.Cluster == name && t.ID > after { // tokens come in ID order
				return emit(t.ID), nil
			}
			return true, nil
		})
	}
	remove := func(tx *store.Txn, id string) (bool, error) {
		t, err := tx.Token(id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return false, nil // spent or pruned since the scan
		case err != nil:
			return false, err
		case t.Cluster != name:
			return false, nil
		}
		return true, tx.DeleteToken(id)
	}
	audit := func(tx *store.Txn, n int) error {
		return a.audit(tx, actor, name, "token.delete", "ok", "", map[string]string{"count": strconv.Itoa(n), "because": "cluster.delete"})
	}
	_, err := deleteInChunks(ctx, a, find, remove, audit)
	return err
}
