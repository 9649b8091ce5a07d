package authority

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/flinkpki/flinkpki/issuer"
	"github.com/flinkpki/flinkpki/store"
)

// authorize decides whether actor may obtain credentials for cluster and
// role, and which holder name they are recorded under.
func authorize(actor Actor, c *store.Cluster, role issuer.Role, holder string) (string, error) {
	switch actor.Kind {
	case ActorAdmin:
	case ActorEnrollment:
		if actor.TokenCluster != c.Name {
			return "", fmt.Errorf("%w: token is for cluster %q, not %q", ErrDenied, actor.TokenCluster, c.Name)
		}
		if actor.TokenRole != string(role) {
			return "", fmt.Errorf("%w: token is for role %s, not %s", ErrDenied, actor.TokenRole, role)
		}
		// Deleting a cluster revokes its tokens, but one made while the
		// deletion ran (or on another replica) could outlive it.
		if !actor.TokenClusterCreated.IsZero() && !actor.TokenClusterCreated.Equal(c.Created) {
			return "", fmt.Errorf("%w: token was made for an earlier cluster named %q, deleted since: create a new one with flinkpki token create", ErrDenied, c.Name)
		}
	case ActorK8s:
		i := slices.IndexFunc(c.K8sBindings, store.K8sBinding{Namespace: actor.Namespace, ServiceAccount: actor.ServiceAccount}.SameAccount)
		if i < 0 {
			return "", notBound(actor, c.Name)
		}
		if actor.Pod == "" {
			return "", fmt.Errorf("%w: the service-account token is not bound to a pod: use a projected token volume", ErrDenied)
		}
		if role == issuer.RoleRESTClient {
			return "", fmt.Errorf("%w: a pod's service-account token cannot obtain %s material: a REST client certificate lets its holder submit jobs, so an administrator hands it out (an administrator token, or flinkpki token create --cluster %s --role %s)",
				ErrDenied, role, c.Name, role)
		}
		if roles := c.K8sBindings[i].Roles; len(roles) > 0 && !slices.Contains(roles, string(role)) {
			return "", fmt.Errorf("%w: service account %s/%s may enroll for cluster %q as %s only, not %s: give the pods of each role their own service account, or an administrator widens the binding (flinkpki cluster update %s --add-k8s-binding %s/%s:%s,%s)",
				ErrDenied, actor.Namespace, actor.ServiceAccount, c.Name, strings.Join(roles, ", "), role, c.Name, actor.Namespace, actor.ServiceAccount, strings.Join(roles, ","), role)
		}
		holder = actor.Pod // a pod can only ever speak for itself
	default:
		return "", fmt.Errorf("%w: a token is required", ErrUnauthenticated)
	}
	if err := issuer.ValidateHolder(holder); err != nil {
		if holder == "" {
			return "", fmt.Errorf("%w: a holder name is required (--holder, the pod name)", ErrInvalid)
		}
		return "", invalid(err)
	}
	return holder, nil
}

// KeyType authorises a request without spending anything and returns the
// key type the holder must generate. init calls it before making its key.
func (a *Authority) KeyType(ctx context.Context, actor Actor, cluster, role, holder string) (string, error) {
	r, err := issuer.ParseRole(role)
	if err != nil {
		return "", a.Deny(ctx, actor, cluster, "enroll.keytype", "invalid", invalid(err))
	}
	var kt string
	err = a.st.View(ctx, func(tx *store.Txn) error {
		c, err := a.clusterFor(tx, actor, cluster)
		if err != nil {
			return err
		}
		if _, err := authorize(actor, c, r, holder); err != nil {
			return err
		}
		kt = c.KeyType
		return nil
	})
	if err != nil {
		return "", a.failed(ctx, actor, cluster, "enroll.keytype", err)
	}
	return kt, nil
}

// PreauthorizeK8s answers the refusal that authorize would give actor, a
// pod's service account, for credentials of cluster and role, before the
// API server is asked about its token: any pod can mint a token for the
// audience, and one whose account is bound to nothing it asks for must not
// spend the API server's reviews (nor the slots that bound them) that the
// cluster's own pods need. It changes nothing and audits nothing (its
// caller does). nil when authorize might accept, or when the store cannot
// say (the request then goes on, and meets the store again).
func (a *Authority) PreauthorizeK8s(ctx context.Context, actor Actor, cluster, role string) error {
	r, err := issuer.ParseRole(role)
	if actor.Kind != ActorK8s || err != nil {
		return nil
	}
	var refused error
	a.st.View(ctx, func(tx *store.Txn) error {
		c, err := a.clusterFor(tx, actor, cluster)
		if err == nil {
			_, err = authorize(actor, c, r, actor.Pod)
		}
		if errors.Is(err, ErrDenied) {
			refused = err
		}
		return nil
	})
	return refused
}

// clusterFor reads the cluster a caller asks to enroll in. A caller that
// is not an administrator learns nothing of clusters it may not use: an
// enrollment token for another cluster is refused before the store is
// read, and a Kubernetes service account hears that it is not bound
// whether or not the cluster exists. With "not found" for one and "denied"
// for the other, any token could be used to list the cluster names.
func (a *Authority) clusterFor(tx *store.Txn, actor Actor, name string) (*store.Cluster, error) {
	if actor.Kind == ActorEnrollment && actor.TokenCluster != name {
		return nil, fmt.Errorf("%w: token is for cluster %q, not %q", ErrDenied, actor.TokenCluster, name)
	}
	c, err := a.getCluster(tx, name)
	if actor.Kind == ActorK8s && errors.Is(err, ErrNotFound) {
		return nil, notBound(actor, name)
	}
	return c, err
}

// notBound refuses a service account that no binding of cluster names.
func notBound(actor Actor, cluster string) error {
	return fmt.Errorf("%w: service account %s/%s is not bound to cluster %q: check --cluster (a service account binds one cluster; an administrator binds it with flinkpki cluster update %s --add-k8s-binding %s/%s)",
		ErrDenied, actor.Namespace, actor.ServiceAccount, cluster, cluster, actor.Namespace, actor.ServiceAccount)
}
