package authority

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/issuer"
	"github.com/flinkpki/flinkpki/store"
)

// MaxCSRSize bounds a CSR: an RSA-4096 CSR with a few SANs is under 2 KiB.
const MaxCSRSize = 8 << 10

// EnrollRequest asks for one leaf. Exactly one of CSR (init: the key was
// made in the pod) and a server-generated key (bake) is used.
type EnrollRequest struct {
	Cluster  string
	Role     string
	Holder   string
	CSR      []byte
	DNSNames []string
	IPs      []string
}

// Issued is what a holder receives.
type Issued struct {
	Key      crypto.Signer // bake only; never stored
	Chain    []*x509.Certificate
	Trusted  []*x509.Certificate
	Holder   string
	KeyType  string
	NotAfter time.Time
}

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
		return "", a.Deny(ctx, actor, cluster, "enroll.keytype", ReasonOf(err), err)
	}
	return kt, nil
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

func (a *Authority) getCluster(tx *store.Txn, name string) (*store.Cluster, error) {
	c, err := tx.Cluster(name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("cluster %q %w", name, ErrNotFound)
	}
	return c, err
}

// Enroll signs a CSR made where its key lives and records the issuance
// against its holder.
func (a *Authority) Enroll(ctx context.Context, actor Actor, req EnrollRequest) (*Issued, error) {
	iss, err := a.issue(ctx, actor, "enroll", req, nil)
	if err != nil {
		return nil, a.Deny(ctx, actor, req.Cluster, "enroll", ReasonOf(err), err)
	}
	return iss, nil
}

// Bake generates the key on the server (for image builds), signs it and
// returns it once. The key is never stored. It is taken from the pool or
// made only once issue has decided who may bake and that the request can
// be signed: an RSA key costs up to a second of a core, which a refused
// caller must not be able to spend.
func (a *Authority) Bake(ctx context.Context, actor Actor, req EnrollRequest) (*Issued, error) {
	if actor.Kind == ActorK8s {
		err := fmt.Errorf("%w: a pod's service-account token cannot bake: bake makes the key on the server, for image builds; a pod makes its own key with flinkpki init", ErrDenied)
		return nil, a.Deny(ctx, actor, req.Cluster, "bake", ReasonOf(err), err)
	}
	var key crypto.Signer
	release := func() {}
	defer func() { release() }()
	iss, err := a.issue(ctx, actor, "bake", req, func(kt ca.KeyType) (crypto.PublicKey, error) {
		if key == nil { // once, however often a conflict retries the issuance
			r, err := a.reserveBake(ctx, actor)
			if err != nil {
				return nil, err
			}
			release = r
			k, err := a.keys.Key(ctx, kt)
			if err != nil {
				return nil, err
			}
			key = k
		}
		return key.Public(), nil
	})
	if err != nil {
		return nil, a.Deny(ctx, actor, req.Cluster, "bake", ReasonOf(err), err)
	}
	iss.Key = key
	return iss, nil
}

// reserveBake admits an enrollment token's bake only while the token has a
// use left for it beside the bakes already in flight with it. A use is
// spent when a bake commits, after its key was taken or made: without the
// reservation, every concurrent bake of a one-use token would pass the
// authorisation read and cost a key (up to a second of a core for RSA),
// all but one to be refused at the commit. Other callers bake freely; the
// bound is this replica's.
func (a *Authority) reserveBake(ctx context.Context, actor Actor) (release func(), err error) {
	if actor.Kind != ActorEnrollment {
		return func() {}, nil
	}
	var left int
	err = a.st.View(ctx, func(tx *store.Txn) error {
		t, err := tx.Token(actor.ID)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: enrollment token %s was used up or deleted", ErrUnauthenticated, actor.ID)
		}
		if err != nil {
			return err
		}
		left = t.UsesLeft
		return nil
	})
	if err != nil {
		return nil, err
	}
	a.bakeMu.Lock()
	defer a.bakeMu.Unlock()
	if a.bakes[actor.ID] >= left {
		return nil, fmt.Errorf("%w: enrollment token %s has %d use(s) left and as many bakes in flight: wait for them, or use a token with more uses", ErrBusy, actor.ID, left)
	}
	if a.bakes == nil {
		a.bakes = map[string]int{}
	}
	a.bakes[actor.ID]++
	return func() {
		a.bakeMu.Lock()
		defer a.bakeMu.Unlock()
		if a.bakes[actor.ID]--; a.bakes[actor.ID] <= 0 {
			delete(a.bakes, actor.ID)
		}
	}, nil
}

// serverKey supplies the leaf's public key once the issuance is
// authorised: bake's, of the cluster's key type, or the checked CSR's.
type serverKey func(ca.KeyType) (crypto.PublicKey, error)

// issue is the shared path of Enroll and Bake: authorise, sign outside any
// transaction, then commit the holder record, the token use and the audit
// entry together. Enroll's key is the CSR's (key nil: its CSR is checked
// after the authorisation); Bake's comes from key, asked only after the
// request and the caller passed. action (enroll or bake) names the audit
// entry, so the trail tells the keys the server made from those it never saw.
func (a *Authority) issue(ctx context.Context, actor Actor, action string, req EnrollRequest, key serverKey) (*Issued, error) {
	role, err := issuer.ParseRole(req.Role)
	if err != nil {
		return nil, invalid(err)
	}
	ips, err := parseIPs(req.IPs)
	if err != nil {
		return nil, err
	}
	if key != nil {
		// What the issuer would refuse of the request, before a key is made.
		if err := issuer.CheckSANs(role, req.DNSNames, ips); err != nil {
			return nil, err
		}
	} else {
		// The CSR's signature is checked once the caller is authorised for
		// the cluster and role, like bake's key is made: a pod of any
		// namespace authenticates, and an RSA signature to check costs
		// far more than the authorisation read.
		var pub crypto.PublicKey
		key = func(ca.KeyType) (crypto.PublicKey, error) {
			if pub == nil { // once, however often a conflict retries the issuance
				csr, err := issuer.CheckCSR(req.CSR, MaxCSRSize)
				if err != nil {
					return nil, err
				}
				if err := issuer.MatchCSR(csr, req.DNSNames, ips); err != nil {
					return nil, err
				}
				pub = csr.PublicKey
			}
			return pub, nil
		}
	}
	for attempt := 0; ; attempt++ {
		iss, err := a.issueOnce(ctx, actor, action, req, role, ips, key)
		if errors.Is(err, ErrConflict) && attempt < 3 {
			continue
		}
		return iss, err
	}
}

func (a *Authority) issueOnce(ctx context.Context, actor Actor, action string, req EnrollRequest, role issuer.Role, ips []net.IP, key serverKey) (*Issued, error) {
	var ls *lineageState
	var holder string
	var seen store.HolderMark
	err := a.st.View(ctx, func(tx *store.Txn) error {
		c, err := a.clusterFor(tx, actor, req.Cluster)
		if err != nil {
			return err
		}
		if holder, err = authorize(actor, c, role, req.Holder); err != nil {
			return err
		}
		// Read before the commit, not in it: on etcd every read in the
		// group commit is a round trip that the whole group waits for. The
		// commit expects the record to be as read here (ExpectHolder).
		if seen, err = checkTakeover(tx, actor, req.Cluster, string(role.Purpose()), holder, string(role), a.now()); err != nil {
			return err
		}
		ls, err = a.loadLineage(tx, c, role.Purpose())
		return err
	})
	if err != nil {
		return nil, err
	}
	// An issuance is under way: the key pool refills only without one. A
	// refused caller is none, or one a second would keep the pool empty.
	a.keys.Touch()
	pub, err := key(ls.keyType)
	if err != nil {
		return nil, err
	}
	if kt, err := ca.KeyTypeOf(pub); err != nil {
		return nil, invalid(err)
	} else if kt != ls.keyType {
		return nil, fmt.Errorf("%w: the key is %s but cluster %q uses %s: every process of a cluster must use the same key type, or their TLS cipher suites do not match",
			ErrInvalid, kt, req.Cluster, ls.keyType)
	}
	leaf, chain, err := issuer.Issue(ctx, issuer.Config{Now: a.now, Rand: a.rand}, ls.signer, issuer.Request{
		Cluster: req.Cluster, Holder: holder, Role: role, PublicKey: pub,
		DNSNames: req.DNSNames, IPAddresses: ips, Validity: ls.leafTTL,
	})
	if err != nil {
		return nil, err
	}
	now := a.now().UTC()
	h := &store.Holder{
		Cluster: req.Cluster, Purpose: string(role.Purpose()), Name: holder, Role: string(role),
		Serial: leaf.SerialNumber.Text(16), NotAfter: leaf.NotAfter, SignedBy: ls.signer.CA().ID,
		Trusts: ls.trustID, Issued: now, Actor: actor.String(),
	}
	err = a.st.Batch(ctx, func(tx *store.Txn) error {
		if err := a.spendToken(tx, actor, now); err != nil {
			return err
		}
		c, err := a.getCluster(tx, req.Cluster)
		if err != nil {
			return err
		}
		if !ls.current(c) {
			return ErrConflict
		}
		// The caller may have lost the right since the read: a Kubernetes
		// binding removed or moved to another cluster meanwhile (a revoked
		// token is spendToken's).
		if _, err := authorize(actor, c, role, req.Holder); err != nil {
			return err
		}
		// Another process took or renewed the name since the check: check
		// again (the retry reads it anew), so that two processes of
		// different roles enrolling under one name at once cannot both pass.
		if err := tx.ExpectHolder(seen); errors.Is(err, store.ErrChanged) {
			return ErrConflict
		} else if err != nil {
			return err
		}
		if err := tx.PutHolder(h); err != nil {
			return err
		}
		return a.audit(tx, actor, req.Cluster, action, "ok", "", map[string]string{
			"holder": holder, "role": string(role), "serial": h.Serial, "signed_by": h.SignedBy})
	})
	if errors.Is(err, store.ErrUnavailable) && a.recorded(ctx, h) {
		// The store did not answer the commit, but the commit was made
		// (an etcd member that hung after the cluster took it): the caller
		// gets the leaf its token use already paid for, instead of a retry
		// that spends another use (or finds a one-use token used up).
		err = nil
	}
	if err != nil {
		return nil, err
	}
	a.obs.Issued(req.Cluster, string(role))
	return &Issued{Chain: chain, Trusted: ls.trusted, Holder: holder, KeyType: string(ls.keyType), NotAfter: leaf.NotAfter}, nil
}

// recorded reports whether h, an issuance whose commit the store did not
// confirm, is recorded all the same: its holder record holds h's serial
// (random, so no other issuance's). The issuance's commit writes that
// record, the token use and the audit entry together, or none of them.
func (a *Authority) recorded(ctx context.Context, h *store.Holder) bool {
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	got := false
	_ = a.st.View(c, func(tx *store.Txn) error {
		rec, err := tx.Holder(h.Cluster, h.Purpose, h.Name)
		got = err == nil && rec.Serial == h.Serial
		return nil
	})
	return got
}

// checkTakeover refuses an issuance that would supersede a live holder
// that is another process: the record of the first would be replaced
// while its leaf is still in use, and the rotation checks, which read the
// records, would no longer see what that process trusts. Two cases are
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
// the commit expects unchanged.
func checkTakeover(tx *store.Txn, actor Actor, cluster, purpose, name, role string, now time.Time) (store.HolderMark, error) {
	old, mark, err := tx.MarkHolder(cluster, purpose, name)
	if errors.Is(err, store.ErrNotFound) {
		return mark, nil
	}
	if err != nil {
		return mark, err
	}
	if now.After(old.NotAfter) { // valid through NotAfter (ca.HolderView.Live)
		return mark, nil
	}
	until := old.NotAfter.UTC().Format(time.RFC3339)
	if old.Role != role {
		return mark, fmt.Errorf("%w: holder %q of cluster %q is a live %s (leaf valid until %s): give the %s a holder name of its own (--holder), or release the %s first (flinkpki holder release --cluster %s %s)",
			ErrInvalid, name, cluster, old.Role, until, role, old.Role, cluster, name)
	}
	ns := podNamespace(old.Actor)
	switch {
	case ns == "" && actor.Kind == ActorK8s:
		return mark, fmt.Errorf("%w: holder %q of cluster %q is a live process that %s (leaf valid until %s), not a pod: a pod cannot take its name; release its record if it is gone (flinkpki holder release --cluster %s %s)",
			ErrDenied, name, cluster, recordedBy(old.Actor), until, cluster, name)
	case ns == "":
	case actor.Kind == ActorK8s && ns != actor.Namespace:
		return mark, fmt.Errorf("%w: holder %q of cluster %q is a live pod of namespace %q (leaf valid until %s), not this pod of namespace %q: a pod's holder name is its pod name, so give each Flink deployment its own flinkpki cluster, or release the other pod's record if it is gone (flinkpki holder release --cluster %s %s)",
			ErrDenied, name, cluster, ns, until, actor.Namespace, cluster, name)
	case actor.Kind == ActorEnrollment:
		return mark, fmt.Errorf("%w: holder %q of cluster %q is a live pod of namespace %q (leaf valid until %s): an enrollment token cannot take a pod's name; give this process a holder name of its own (--holder), or release the pod's record if it is gone (flinkpki holder release --cluster %s %s)",
			ErrDenied, name, cluster, ns, until, cluster, name)
	}
	return mark, nil
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

// spendToken takes one use of an enrollment token, in the transaction that
// records the issuance it pays for.
func (a *Authority) spendToken(tx *store.Txn, actor Actor, now time.Time) error {
	if actor.Kind != ActorEnrollment {
		return nil
	}
	t, err := tx.Token(actor.ID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: enrollment token %s was used up or deleted", ErrUnauthenticated, actor.ID)
	}
	if err != nil {
		return err
	}
	if !t.Expires.After(now) {
		return fmt.Errorf("%w: enrollment token %s expired at %s", ErrUnauthenticated, t.ID, t.Expires.Format(time.RFC3339))
	}
	if t.UsesLeft <= 0 {
		return fmt.Errorf("%w: enrollment token %s was used up", ErrUnauthenticated, t.ID)
	}
	t.UsesLeft--
	if t.UsesLeft == 0 {
		return tx.DeleteToken(t.ID)
	}
	return tx.PutToken(t)
}

func parseIPs(in []string) ([]net.IP, error) {
	var out []net.IP
	for _, s := range in {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("%w: %q is not an IP address", ErrInvalid, s)
		}
		out = append(out, ip)
	}
	return out, nil
}

// ReasonOf gives a refusal a short, bounded label for metrics and the
// audit trail: "error" for a fault that is not a refusal (the store is down,
// say), "canceled" when the caller went away.
func ReasonOf(err error) string {
	switch {
	case errors.Is(err, ErrUnauthenticated):
		return "unauthenticated"
	case errors.Is(err, ErrDenied):
		return "permission_denied"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrExists):
		return "exists"
	case errors.Is(err, issuer.ErrBadCSR), errors.Is(err, issuer.ErrWeakKey), errors.Is(err, issuer.ErrUnsupportedKey):
		return "bad_csr"
	case errors.Is(err, ca.ErrBlocked):
		return "blocked"
	case errors.Is(err, ca.ErrRotationInProgress), errors.Is(err, ca.ErrNoActiveCA), errors.Is(err, ca.ErrNoPreparedCA), errors.Is(err, ca.ErrNoRetiringCA),
		errors.Is(err, ErrAuditBroken), errors.Is(err, ErrLastAdmin):
		return "failed_precondition" // a lifecycle step out of order, a broken trail
	case errors.Is(err, ErrInvalid), errors.Is(err, issuer.ErrInvalidRequest), errors.Is(err, issuer.ErrUnknownRole), errors.Is(err, ca.ErrInvalidValidity):
		return "invalid"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "error"
}

// IsRefusal reports whether err refuses a request (ReasonOf names a
// refusal), as opposed to a fault (the store is down) or a caller that went
// away, which no audit entry records as refused.
func IsRefusal(err error) bool {
	r := ReasonOf(err)
	return r != "error" && r != "canceled"
}
