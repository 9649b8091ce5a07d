package authority

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/flinkpki/flinkpki/store"
)

// checkTakeover refuses an issuance that would supersede a live holder
// that is another process: the record of the first would be replaced
// while its leaf is still in use, and the rotation checks, which read the
// records, would no longer see what that process trusts. Four cases are
// known to be other processes:
//   - a live holder of another role under the same name, such as a
//     JobManager and a TaskManager both named after their host;
//   - a live holder recorded by a pod of another namespace: a pod's holder
//     name is its pod name, and pods of two namespaces bound to one cluster
//     may share names (two Flink deployments of one name);
//   - a live holder recorded by a pod, taken by an enrollment token (an
//     administrator may, deliberately);
//   - a live holder that no pod recorded (a process that enrolled with a
//     token, an image's baked credentials), taken by a pod.
//
// The same role, and for pods the same namespace, supersedes itself: that
// is a process starting again. It returns the mark of what it read, which
// the commit expects unchanged, and the live record it would supersede
// when nothing says that record's process is the one starting again: a
// pod's record replaced by the same pod name is (a pod speaks for itself
// only), but a token's or an image's holder name may be another process
// of the same name (two TaskManagers on one host, pods of an older image),
// which the rotation checks would then no longer see. The caller is told,
// and the audit entry says so.
func checkTakeover(tx *store.Txn, actor Actor, cluster, purpose, name, role string, now time.Time) (store.HolderMark, *Superseded, error) {
	old, mark, err := tx.MarkHolder(cluster, purpose, name)
	if errors.Is(err, store.ErrNotFound) {
		return mark, nil, nil
	}
	if err != nil {
		return mark, nil, err
	}
	if now.After(old.NotAfter) { // valid through NotAfter (ca.HolderView.Live)
		return mark, nil, nil
	}
	err = refuseTakeover(old, actor, cluster, name, role)
	if err != nil || (actor.Kind == ActorK8s && podNamespace(old.Actor) != "") {
		return mark, nil, err
	}
	return mark, &Superseded{Serial: old.Serial, NotAfter: old.NotAfter, Actor: old.Actor}, nil
}

// Superseded is the live holder record an issuance replaced when nothing
// says it was the same process starting again (checkTakeover).
type Superseded struct {
	Serial   string
	NotAfter time.Time
	Actor    string // who obtained it, as in the audit trail
}

// refuseTakeover is checkTakeover's refusal of a live record old that is
// known to be another process's.
func refuseTakeover(old *store.Holder, actor Actor, cluster, name, role string) error {
	until := old.NotAfter.UTC().Format(time.RFC3339)
	if old.Role != role {
		return fmt.Errorf("%w: holder %q of cluster %q is a live %s (leaf valid until %s): give the %s a holder name of its own (--holder), or release the %s first (flinkpki holder release --cluster %s %s)",
			ErrInvalid, name, cluster, old.Role, until, role, old.Role, cluster, name)
	}
	ns := podNamespace(old.Actor)
	switch {
	case ns == "" && actor.Kind == ActorK8s:
		return fmt.Errorf("%w: holder %q of cluster %q is a live process that %s (leaf valid until %s), not a pod: a pod cannot take its name; release its record if it is gone (flinkpki holder release --cluster %s %s)",
			ErrDenied, name, cluster, recordedBy(old.Actor), until, cluster, name)
	case ns == "":
	case actor.Kind == ActorK8s && ns != actor.Namespace:
		return fmt.Errorf("%w: holder %q of cluster %q is a live pod of namespace %q (leaf valid until %s), not this pod of namespace %q: a pod's holder name is its pod name, so give each Flink deployment its own flinkpki cluster, or release the other pod's record if it is gone (flinkpki holder release --cluster %s %s)",
			ErrDenied, name, cluster, ns, until, actor.Namespace, cluster, name)
	case actor.Kind == ActorEnrollment:
		return fmt.Errorf("%w: holder %q of cluster %q is a live pod of namespace %q (leaf valid until %s): an enrollment token cannot take a pod's name; give this process a holder name of its own (--holder), or release the pod's record if it is gone (flinkpki holder release --cluster %s %s)",
			ErrDenied, name, cluster, ns, until, cluster, name)
	}
	return nil
}

// recordedBy says how a holder record that no pod made came to be, from
// its actor: "enrolled with an enrollment token", "was baked or issued by
// an administrator".
func recordedBy(actor string) string {
	switch {
	case strings.HasPrefix(actor, string(ActorEnrollment)+":"):
		return "enrolled with an enrollment token"
	case strings.HasPrefix(actor, string(ActorAdmin)+":"):
		return "was issued by an administrator"
	}
	return "no pod recorded"
}

// podNamespace is the namespace of the pod that recorded a holder, read
// from the record's actor (Actor.String: "k8s:NAMESPACE/SA/pod=NAME"), or
// "" when no pod did.
func podNamespace(actor string) string {
	rest, ok := strings.CutPrefix(actor, string(ActorK8s)+":")
	if !ok {
		return ""
	}
	ns, _, _ := strings.Cut(rest, "/")
	return ns
}
