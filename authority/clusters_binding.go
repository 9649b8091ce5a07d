package authority

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/flinkpki/flinkpki/issuer"
	"github.com/flinkpki/flinkpki/store"
)

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

// unbind returns a copy of a cluster's bindings (held) without those of
// remove, and refuses to remove one it does not have: the stored cluster
// stays as read until the update is written whole.
func unbind(cluster string, held, remove []store.K8sBinding) ([]store.K8sBinding, error) {
	bindings := slices.Clone(held)
	for _, b := range remove {
		if !slices.ContainsFunc(bindings, b.SameAccount) {
			return nil, fmt.Errorf("%w: cluster %q has no Kubernetes binding %s/%s (flinkpki cluster get %s)", ErrNotFound, cluster, b.Namespace, b.ServiceAccount, cluster)
		}
		// Every copy: a cluster created before duplicates were refused
		// may hold one twice, and a removal must unbind it.
		bindings = slices.DeleteFunc(bindings, b.SameAccount)
	}
	return bindings, nil
}

// rebind sets, in bindings, the roles of each added binding the cluster
// holds already, and returns the added ones it does not hold (fresh), with
// each change of roles as "ns/sa:old->new" for the audit entry.
func rebind(cluster string, bindings, add []store.K8sBinding) (fresh []store.K8sBinding, changed []string, err error) {
	// A binding this cluster holds already takes the roles given: that
	// is how its roles change, said so in the audit entry. Without
	// roles it is refused as before: widening a binding to every role
	// must be asked for by naming them.
	for _, b := range add {
		i := slices.IndexFunc(bindings, b.SameAccount)
		switch {
		case i < 0:
			fresh = append(fresh, b)
			continue
		case len(b.Roles) == 0:
			return nil, nil, fmt.Errorf("%w: Kubernetes service account %s/%s is already bound to cluster %q%s: to change what its pods may enroll as, give the roles (%s/%s:%s for all)",
				ErrInvalid, b.Namespace, b.ServiceAccount, cluster, rolesNote(bindings[i].Roles), b.Namespace, b.ServiceAccount, strings.Join(PodRoles, ","))
		}
		if slices.Equal(bindings[i].Roles, b.Roles) {
			continue // as it is: nothing to change, or to audit
		}
		changed = append(changed, fmt.Sprintf("%s/%s:%s->%s", b.Namespace, b.ServiceAccount, rolesText(bindings[i].Roles), rolesText(b.Roles)))
		bindings[i].Roles = b.Roles
	}
	return fresh, changed, nil
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

// rolesNote is " as ROLES" (the roles joined by ", ") for a binding limited
// to roles, "" otherwise.
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

// checkNewBindings refuses a binding of add that cannot be made, or that
// add or alsoNamed (an update's removals) names twice, and sorts each one's
// roles in place, as the cluster stores them (all pod roles for none).
func checkNewBindings(add, alsoNamed []store.K8sBinding) error {
	for i, b := range add {
		if err := checkNewBinding(b); err != nil {
			return err
		}
		if slices.ContainsFunc(add[:i], b.SameAccount) || slices.ContainsFunc(alsoNamed, b.SameAccount) {
			return fmt.Errorf("%w: Kubernetes binding %s/%s is named twice", ErrInvalid, b.Namespace, b.ServiceAccount)
		}
		roles, err := bindingRoles(b)
		if err != nil {
			return err
		}
		add[i].Roles = roles
	}
	return nil
}
