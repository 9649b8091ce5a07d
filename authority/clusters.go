package authority

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

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

// ClusterView is a cluster with its CA lineages.
type ClusterView struct {
	Cluster *store.Cluster
	CAs     []*ca.CA // internal then rest, by generation
	// records are the stored CAs by ID, for changing a state or opening a
	// key without reading the lineage a second time.
	records map[string]*store.CA
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
		return nil, a.Deny(ctx, actor, c.Name, "cluster.create", ReasonOf(err), err)
	}
	var recs []*store.CA
	for _, p := range ca.Purposes() {
		rec, err := a.createCA(ctx, c, p, 1)
		if err != nil {
			return nil, err
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
	if errors.Is(err, ErrExists) || errors.Is(err, ErrInvalid) {
		return nil, a.Deny(ctx, actor, c.Name, "cluster.create", ReasonOf(err), err)
	}
	if err != nil {
		return nil, err
	}
	a.log.InfoContext(ctx, "cluster created", "cluster", c.Name, "key_type", c.KeyType, "actor", actor.String())
	return a.GetCluster(ctx, c.Name)
}

// MaxK8sBindings bounds the service accounts bound to one cluster: every
// cluster record is read by every creation and binding change (a binding
// is unique across clusters), and a deployment has one or a few.
const MaxK8sBindings = 64

// checkBindingsFree refuses bindings another cluster already holds. It reads
// every cluster record, so a create with bindings costs one scan of the
// clusters; inside an Update that scan also guards against a concurrent
// create taking the same binding.
func checkBindingsFree(tx *store.Txn, bindings []store.K8sBinding) error {
	if len(bindings) == 0 {
		return nil
	}
	cs, _, err := tx.ListClusters("", 0)
	if err != nil {
		return err
	}
	for _, b := range bindings {
		for _, other := range cs {
			if slices.ContainsFunc(other.K8sBindings, b.SameAccount) {
				return fmt.Errorf("%w: Kubernetes service account %s/%s is already bound to cluster %q: give each Flink cluster its own service account",
					ErrInvalid, b.Namespace, b.ServiceAccount, other.Name)
			}
		}
	}
	return nil
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
	for i, b := range req.K8sBindings {
		if err := checkNewBinding(b); err != nil {
			return nil, err
		}
		if slices.ContainsFunc(req.K8sBindings[:i], b.SameAccount) {
			return nil, fmt.Errorf("%w: Kubernetes binding %s/%s is named twice", ErrInvalid, b.Namespace, b.ServiceAccount)
		}
		if b.Roles, err = bindingRoles(b); err != nil {
			return nil, err
		}
		c.K8sBindings = append(c.K8sBindings, b)
	}
	return c, nil
}

// checkNewBinding refuses a binding a cluster must not take: half of one,
// names the API server would refuse, or a namespace's default service
// account, which every pod there runs as unless told otherwise.
func checkNewBinding(b store.K8sBinding) error {
	if b.Namespace == "" || b.ServiceAccount == "" {
		return fmt.Errorf("%w: a Kubernetes binding needs both a namespace and a service account (--k8s-namespace NS --k8s-service-account SA)", ErrInvalid)
	}
	if err := checkK8sBinding(b); err != nil {
		return err
	}
	if b.ServiceAccount == "default" {
		return fmt.Errorf("%w: binding the %q service account of namespace %q would let every pod there enroll: create a dedicated service account for the Flink pods", ErrInvalid, b.ServiceAccount, b.Namespace)
	}
	return nil
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
	deny := func(err error) (*ClusterView, error) {
		return nil, a.Deny(ctx, actor, req.Name, "cluster.update", ReasonOf(err), err)
	}
	if len(req.AddK8sBindings) == 0 && len(req.RemoveK8sBindings) == 0 && req.AutoRotate == nil {
		return deny(fmt.Errorf("%w: nothing to change: add or remove a Kubernetes binding, or turn automatic rotation on or off", ErrInvalid))
	}
	for i, b := range req.AddK8sBindings {
		if err := checkNewBinding(b); err != nil {
			return deny(err)
		}
		if slices.ContainsFunc(req.AddK8sBindings[:i], b.SameAccount) || slices.ContainsFunc(req.RemoveK8sBindings, b.SameAccount) {
			return deny(fmt.Errorf("%w: Kubernetes binding %s/%s is named twice", ErrInvalid, b.Namespace, b.ServiceAccount))
		}
		roles, err := bindingRoles(b)
		if err != nil {
			return deny(err)
		}
		req.AddK8sBindings[i].Roles = roles
	}
	details := map[string]string{}
	if req.AutoRotate != nil {
		details["auto_rotate"] = strconv.FormatBool(*req.AutoRotate)
	}
	for _, b := range req.RemoveK8sBindings {
		if len(b.Roles) > 0 {
			return deny(fmt.Errorf("%w: Kubernetes binding %s/%s is removed whole: name it without roles (to change its roles, add it again with them)", ErrInvalid, b.Namespace, b.ServiceAccount))
		}
	}
	if s := bindingList(req.RemoveK8sBindings); s != "" {
		details["removed"] = s
	}
	unlock := a.clusterLock(req.Name)
	defer unlock()
	err := a.st.Update(ctx, func(tx *store.Txn) error {
		c, err := tx.Cluster(req.Name)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("cluster %q %w", req.Name, ErrNotFound)
		}
		if err != nil {
			return err
		}
		bindings := slices.Clone(c.K8sBindings)
		for _, b := range req.RemoveK8sBindings {
			if !slices.ContainsFunc(bindings, b.SameAccount) {
				return fmt.Errorf("%w: cluster %q has no Kubernetes binding %s/%s (flinkpki cluster get %s)", ErrNotFound, req.Name, b.Namespace, b.ServiceAccount, req.Name)
			}
			// Every copy: a cluster created before duplicates were refused
			// may hold one twice, and a removal must unbind it.
			bindings = slices.DeleteFunc(bindings, b.SameAccount)
		}
		// A binding this cluster holds already takes the roles given: that
		// is how its roles change, said so in the audit entry. Without
		// roles it is refused as before: widening a binding to every role
		// must be asked for by naming them.
		var fresh []store.K8sBinding
		var changed []string
		for _, b := range req.AddK8sBindings {
			i := slices.IndexFunc(bindings, b.SameAccount)
			switch {
			case i < 0:
				fresh = append(fresh, b)
				continue
			case len(b.Roles) == 0:
				return fmt.Errorf("%w: Kubernetes service account %s/%s is already bound to cluster %q%s: to change what its pods may enroll as, give the roles (%s/%s:%s for all)",
					ErrInvalid, b.Namespace, b.ServiceAccount, req.Name, rolesNote(bindings[i].Roles), b.Namespace, b.ServiceAccount, strings.Join(PodRoles, ","))
			}
			if slices.Equal(bindings[i].Roles, b.Roles) {
				continue // as it is: nothing to change, or to audit
			}
			changed = append(changed, fmt.Sprintf("%s/%s:%s->%s", b.Namespace, b.ServiceAccount, rolesText(bindings[i].Roles), rolesText(b.Roles)))
			bindings[i].Roles = b.Roles
		}
		// Set here, not before: an added account this cluster holds is a
		// change of its roles, and a retried transaction says it anew.
		delete(details, "added")
		delete(details, "roles_changed")
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
	})
	if err != nil {
		if !IsRefusal(err) {
			return nil, err
		}
		return deny(err)
	}
	a.log.InfoContext(ctx, "cluster updated", "cluster", req.Name, "actor", actor.String())
	return a.GetCluster(ctx, req.Name)
}

// bindingList renders bindings as "ns/sa,ns/sa" for the audit trail.
func bindingList(bs []store.K8sBinding) string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Namespace + "/" + b.ServiceAccount
		if len(b.Roles) > 0 {
			out[i] += ":" + strings.Join(b.Roles, "+")
		}
	}
	return strings.Join(out, ",")
}

// PodRoles are the roles a pod may enroll for with its service-account
// token, sorted: never rest-client, whose certificate lets its holder
// submit jobs.
var PodRoles = []string{string(issuer.RoleJobManager), string(issuer.RoleRESTServer), string(issuer.RoleTaskManager)}

// rolesText names a binding's roles for the audit trail: "all" for none.
func rolesText(roles []string) string {
	if len(roles) == 0 {
		return "all"
	}
	return strings.Join(roles, "+")
}

// rolesNote is ", as ROLES" for a binding limited to roles, "" otherwise.
func rolesNote(roles []string) string {
	if len(roles) == 0 {
		return ""
	}
	return " as " + strings.Join(roles, ", ")
}

// bindingRoles checks and sorts a binding's roles (none: every pod role).
func bindingRoles(b store.K8sBinding) ([]string, error) {
	var out []string
	for _, r := range b.Roles {
		if !slices.Contains(PodRoles, r) {
			return nil, fmt.Errorf("%w: Kubernetes binding %s/%s names role %q: a pod may enroll as %s (rest-client material is handed out by an administrator)",
				ErrInvalid, b.Namespace, b.ServiceAccount, r, strings.Join(PodRoles, ", "))
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out, nil
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

// GetCluster returns a cluster and its CAs.
func (a *Authority) GetCluster(ctx context.Context, name string) (*ClusterView, error) {
	var v *ClusterView
	err := a.st.View(ctx, func(tx *store.Txn) error {
		var err error
		v, err = a.clusterView(tx, name)
		return err
	})
	return v, err
}

func (a *Authority) clusterView(tx *store.Txn, name string) (*ClusterView, error) {
	c, err := tx.Cluster(name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("cluster %q %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	recs, err := tx.CAs(name)
	if err != nil {
		return nil, err
	}
	v := &ClusterView{Cluster: c, records: make(map[string]*store.CA, len(recs))}
	for _, r := range recs {
		d, err := a.domainCA(r)
		if err != nil {
			return nil, err
		}
		v.CAs = append(v.CAs, d)
		v.records[r.ID] = r
	}
	slices.SortFunc(v.CAs, func(x, y *ca.CA) int { return lineageOrder(x.Purpose, x.Generation, y.Purpose, y.Generation) })
	return v, nil
}

// lineageEpoch names one state of a cluster's lineages: every lifecycle
// change bumps the cluster's Epoch, and a cluster deleted and made again
// under its name has another Created. What is derived from the lineages
// alone (the signing state, the scheduler's next steps) is kept per epoch.
type lineageEpoch struct {
	created time.Time
	epoch   int64
}

func epochOf(c *store.Cluster) lineageEpoch { return lineageEpoch{created: c.Created, epoch: c.Epoch} }

// current reports whether c's lineages are still at this epoch.
func (e lineageEpoch) current(c *store.Cluster) bool {
	return e.epoch == c.Epoch && e.created.Equal(c.Created)
}

// lineageOrder orders a cluster's CAs: internal before rest, each lineage
// by generation.
func lineageOrder(xp ca.Purpose, xg int, yp ca.Purpose, yg int) int {
	if xp != yp {
		if xp == ca.PurposeInternal {
			return -1
		}
		return 1
	}
	return xg - yg
}

// Lineage returns the CAs of one purpose.
func (v *ClusterView) Lineage(p ca.Purpose) ca.Lineage {
	var l ca.Lineage
	for _, c := range v.CAs {
		if c.Purpose == p {
			l = append(l, c)
		}
	}
	return l
}

// NextStep is the next rotation step of one lineage at now. It depends on
// the CAs and the leaf validity alone; whether a due step is blocked is for
// the holders to say, when the step is planned.
func (v *ClusterView) NextStep(p ca.Purpose, now time.Time) ca.Step {
	return lineageNextStep(v.Lineage(p), v.Cluster.LeafValidity, now)
}

// lineageNextStep is a lineage's next rotation step for its cluster's leaf
// validity, with the margin that validity gets.
func lineageNextStep(l ca.Lineage, leaf time.Duration, now time.Time) ca.Step {
	return ca.NextStep(l, leaf, ca.DefaultMargin(leaf), now)
}

func (a *Authority) domainCA(r *store.CA) (*ca.CA, error) {
	cert, err := x509.ParseCertificate(r.CertDER)
	if err != nil {
		return nil, fmt.Errorf("%w: stored CA certificate %s/%s: %v", store.ErrCorrupt, r.Cluster, r.ID, err)
	}
	return caOf(r, cert), nil
}

// caOf is the domain CA of a stored record with its certificate.
func caOf(r *store.CA, cert *x509.Certificate) *ca.CA {
	return &ca.CA{
		ID: r.ID, Cluster: r.Cluster, Purpose: ca.Purpose(r.Purpose), Generation: r.Generation,
		State: ca.State(r.State), Cert: cert, Created: r.Created, Activated: r.Activated, Retiring: r.Retiring,
	}
}

// ListClusters returns one page of clusters, in name order.
func (a *Authority) ListClusters(ctx context.Context, after string, limit int) ([]*ClusterView, string, error) {
	return clusterPage(ctx, a, after, limit, a.clusterView)
}

// clusterPage reads get of each cluster of one page, in name order, in one
// read transaction, and returns them with the next page's token.
func clusterPage[T any](ctx context.Context, a *Authority, after string, limit int, get func(tx *store.Txn, name string) (T, error)) ([]T, string, error) {
	var out []T
	var next string
	err := a.st.View(ctx, func(tx *store.Txn) error {
		// A read that etcd compacted away runs again from the top.
		out, next = out[:0], ""
		cs, n, err := tx.ListClusters(after, limit)
		if err != nil {
			return err
		}
		next = n
		for _, c := range cs {
			v, err := get(tx, c.Name)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	return out, next, err
}

// forClusterPages calls fn with get of every cluster, a page of 500 at a
// time, each page read in one transaction, until the last page or an error.
func forClusterPages[T any](ctx context.Context, a *Authority, get func(tx *store.Txn, name string) (T, error), fn func(page []T) error) error {
	for after := ""; ; {
		page, next, err := clusterPage(ctx, a, after, 500, get)
		if err != nil {
			return err
		}
		if err := fn(page); err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		after = next
	}
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
		return a.Deny(ctx, actor, name, "cluster.delete", "not_found", err)
	}
	return err
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

// CheckK8sBinding refuses a namespace and service account no Kubernetes
// token can carry, as the server does: for a client to refuse them before
// asking it.
func CheckK8sBinding(namespace, serviceAccount string) error {
	return checkK8sBinding(store.K8sBinding{Namespace: namespace, ServiceAccount: serviceAccount})
}

// checkK8sBinding refuses a binding no Kubernetes token can carry: the
// namespace must be a DNS-1123 label and the service account a DNS-1123
// subdomain, as the API server requires of them.
func checkK8sBinding(b store.K8sBinding) error {
	if errs := validation.IsDNS1123Label(b.Namespace); len(errs) > 0 {
		return fmt.Errorf("%w: Kubernetes namespace %q is not a valid namespace name: %s", ErrInvalid, b.Namespace, errs[0])
	}
	if errs := validation.IsDNS1123Subdomain(b.ServiceAccount); len(errs) > 0 {
		return fmt.Errorf("%w: Kubernetes service account %q is not a valid service account name: %s", ErrInvalid, b.ServiceAccount, errs[0])
	}
	return nil
}
