package authority

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
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
	// Superseded is the live record of another process this issuance
	// replaced, if any (checkTakeover).
	Superseded *Superseded
}

// Enroll signs a CSR made where its key lives and records the issuance
// against its holder.
func (a *Authority) Enroll(ctx context.Context, actor Actor, req EnrollRequest) (*Issued, error) {
	iss, err := a.issue(ctx, actor, "enroll", req, nil)
	if err != nil {
		return nil, a.failed(ctx, actor, req.Cluster, "enroll", err)
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
		return nil, a.failed(ctx, actor, req.Cluster, "bake", err)
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
		return nil, a.failed(ctx, actor, req.Cluster, "bake", err)
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
	var fenceDeadline time.Time // when the issuance stops waiting for fences
	passed := false
	for attempt := 0; ; attempt++ {
		iss, err := a.issueOnce(ctx, actor, action, req, role, ips, key, passed)
		if fe := (*fencedError)(nil); errors.As(err, &fe) {
			// A rotation step of the cluster is committing: wait for it,
			// without spending an attempt.
			if fenceDeadline.IsZero() {
				fenceDeadline = time.Now().Add(fenceFor)
			}
			again, err := a.waitFence(ctx, req.Cluster, role.Purpose(), fenceDeadline)
			if err != nil {
				return nil, err
			}
			passed = !again
			attempt--
			continue
		}
		if errors.Is(err, ErrConflict) && attempt < 3 {
			continue
		}
		return iss, err
	}
}

// issueOnce is one attempt of issue: a read transaction that authorises
// the request, the signing outside any transaction, and one write (a group
// commit) that records it, which answers ErrConflict when what was read
// has changed since, and a *fencedError while a rotation step holds the
// cluster's issuances back, unless the issuance has waited for that as
// long as it may (passed).
func (a *Authority) issueOnce(ctx context.Context, actor Actor, action string, req EnrollRequest, role issuer.Role, ips []net.IP, key serverKey, passed bool) (*Issued, error) {
	var ls *lineageState
	var holder string
	var seen store.HolderMark
	var sup *Superseded
	err := a.st.View(ctx, func(tx *store.Txn) (err error) {
		ls, holder, seen, sup, err = a.readIssuance(tx, actor, req, role, passed)
		return err
	})
	if err != nil {
		return nil, err
	}
	// An issuance is under way: the key pool refills only without one. A
	// refused caller is none, or one a second would keep the pool empty.
	a.keys.Touch()
	leaf, chain, err := a.signLeaf(ctx, req, role, holder, ips, ls, key)
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
		return a.recordIssuance(tx, actor, action, role, req.Holder, ls, seen, h, sup, passed)
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
	return &Issued{Chain: chain, Trusted: ls.trusted, Holder: holder, KeyType: string(ls.keyType), NotAfter: leaf.NotAfter, Superseded: sup}, nil
}

// readIssuance is the read transaction of an issuance: it authorises the
// caller for the cluster, role and holder name, checks that the name is
// not another live process's, and loads the lineage that signs. It answers
// the holder name the leaf is issued to, the mark of the holder record as
// read, which the commit expects unchanged, and the live record of
// another process the issuance would supersede (checkTakeover).
func (a *Authority) readIssuance(tx *store.Txn, actor Actor, req EnrollRequest, role issuer.Role, passed bool) (*lineageState, string, store.HolderMark, *Superseded, error) {
	var seen store.HolderMark
	c, err := a.clusterFor(tx, actor, req.Cluster)
	if err != nil {
		return nil, "", seen, nil, err
	}
	holder, err := authorize(actor, c, role, req.Holder)
	if err != nil {
		return nil, holder, seen, nil, err
	}
	// Held back before the leaf is signed, not only at the commit.
	if err := checkFence(c, role.Purpose(), a.now(), passed); err != nil {
		return nil, holder, seen, nil, err
	}
	// Read before the commit, not in it: on etcd every read in the
	// group commit is a round trip that the whole group waits for. The
	// commit expects the record to be as read here (ExpectHolder).
	seen, sup, err := checkTakeover(tx, actor, req.Cluster, string(role.Purpose()), holder, string(role), a.now())
	if err != nil {
		return nil, holder, seen, nil, err
	}
	ls, err := a.loadLineage(tx, c, role.Purpose())
	return ls, holder, seen, sup, err
}

// signLeaf signs the leaf outside any transaction, once the caller is
// authorised: only then is the key asked for (key), so that a refused
// caller costs neither a key made nor a CSR signature checked. The key
// must be of the cluster's key type, or the cluster's TLS cipher suites
// would not match.
func (a *Authority) signLeaf(ctx context.Context, req EnrollRequest, role issuer.Role, holder string, ips []net.IP, ls *lineageState, key serverKey) (*x509.Certificate, []*x509.Certificate, error) {
	pub, err := key(ls.keyType)
	if err != nil {
		return nil, nil, err
	}
	if kt, err := ca.KeyTypeOf(pub); err != nil {
		return nil, nil, invalid(err)
	} else if kt != ls.keyType {
		return nil, nil, fmt.Errorf("%w: the key is %s but cluster %q uses %s: every process of a cluster must use the same key type, or their TLS cipher suites do not match",
			ErrInvalid, kt, req.Cluster, ls.keyType)
	}
	return issuer.Issue(ctx, issuer.Config{Now: a.now, Rand: a.rand}, ls.signer, issuer.Request{
		Cluster: req.Cluster, Holder: holder, Role: role, PublicKey: pub,
		DNSNames: req.DNSNames, IPAddresses: ips, Validity: ls.leafTTL,
	})
}

// recordIssuance is the commit of an issuance: the token use, the holder
// record h and the audit entry, together or none of them. It answers
// ErrConflict, for issue to try again, when the lineages or the holder
// record changed since readIssuance, and a *fencedError while a rotation
// step holds the cluster's issuances back; the caller's right (to role, under the
// holder name it asked for) is checked anew, as of h.Issued.
func (a *Authority) recordIssuance(tx *store.Txn, actor Actor, action string, role issuer.Role, asked string, ls *lineageState, seen store.HolderMark, h *store.Holder, sup *Superseded, passed bool) error {
	if err := a.spendToken(tx, actor, h.Issued); err != nil {
		return err
	}
	c, err := a.getCluster(tx, h.Cluster)
	if err != nil {
		return err
	}
	if !ls.current(c) {
		return ErrConflict
	}
	// A rotation step fenced the cluster since the read: this commit read
	// the fence (so a commit that read the record before it fails its
	// comparison and runs again), and waits for the step like the rest.
	if err := checkFence(c, role.Purpose(), a.now(), passed); err != nil {
		return err
	}
	// The caller may have lost the right since the read: a Kubernetes
	// binding removed or moved to another cluster meanwhile (a revoked
	// token is spendToken's).
	if _, err := authorize(actor, c, role, asked); err != nil {
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
	details := map[string]string{"holder": h.Name, "role": string(role), "serial": h.Serial, "signed_by": h.SignedBy}
	if actor.Kind == ActorK8s && actor.PodUID != "" {
		details["pod_uid"] = actor.PodUID
	}
	if sup != nil {
		details["superseded_serial"] = sup.Serial
		details["superseded_until"] = sup.NotAfter.UTC().Format(time.RFC3339)
		details["superseded_actor"] = sup.Actor
	}
	return a.audit(tx, actor, h.Cluster, action, "ok", "", details)
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
	// Revoked since the request was authenticated (a bake's key, a fence,
	// conflicts may come between), with an administrator token it was
	// made through.
	if err := madeThroughRevoked(tx, t, t.ID); err != nil {
		return err
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
