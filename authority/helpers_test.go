package authority_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/internal/etcdtest"
	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/etcd"
)

const day = 24 * time.Hour

var admin = authoritytest.Admin

// system is the actor of the offline admin commands (bootstrap, revoke-token).
var system = authority.Actor{Kind: authority.ActorSystem, ID: "test"}

// status returns the cluster's lifecycle status, failing the test on error.
func status(t testing.TB, e *authoritytest.Env, cluster string) *authority.Status {
	t.Helper()
	st, err := e.Authority.Status(e.Ctx, cluster)
	if err != nil {
		t.Fatalf("status of cluster %q: %v", cluster, err)
	}
	return st
}

// summary renders everything Status reports, so two states compare as
// strings and a difference reads as a diff.
func summary(st *authority.Status) string {
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	var b strings.Builder
	fmt.Fprintf(&b, "cluster %s generations=%v live=%d earliest=%s\n",
		st.Cluster.Name, st.Cluster.Generations, st.LiveHolders, ts(st.EarliestExpiry))
	for _, l := range st.Lineages {
		fmt.Fprintf(&b, "%s next=%s %s at=%s due=%v blockers=%v\n", l.Purpose, l.Next.Kind, l.Next.CAID, ts(l.Next.At), l.Next.Due, l.Blockers)
		for _, c := range l.CAs {
			fmt.Fprintf(&b, "  %s %s gen=%d created=%s activated=%s retiring=%s signed=%d trusting=%d fp=%s\n",
				c.CA.ID, c.CA.State, c.CA.Generation, ts(c.CA.Created), ts(c.CA.Activated), ts(c.CA.Retiring),
				c.LiveSigned, c.LiveTrusting, c.CA.Fingerprint())
		}
	}
	return b.String()
}

// lineage returns the cluster's CAs of one purpose.
func lineage(t testing.TB, e *authoritytest.Env, cluster string, p ca.Purpose) ca.Lineage {
	t.Helper()
	v, err := e.Authority.GetCluster(e.Ctx, cluster)
	if err != nil {
		t.Fatalf("get cluster %q: %v", cluster, err)
	}
	return v.Lineage(p)
}

// certIDs names certificates by the CA of the lineage they are, or by
// subject when they belong to none, for readable failures.
func certIDs(l ca.Lineage, certs []*x509.Certificate) []string {
	var out []string
	for _, c := range certs {
		name := c.Subject.CommonName
		for _, x := range l {
			if x.Cert.Equal(c) {
				name = x.ID
			}
		}
		out = append(out, name)
	}
	return out
}

// wantCreds checks who signed a holder's leaf and exactly which CAs its
// truststore holds.
func wantCreds(t testing.TB, c *authoritytest.Creds, signer *ca.CA, trusted ...*ca.CA) {
	t.Helper()
	if !c.Issuer().Equal(signer.Cert) {
		t.Errorf("%s: leaf signed by %q, want %s", c.Holder, c.Issuer().Subject.CommonName, signer.ID)
	}
	if err := c.Leaf().CheckSignatureFrom(signer.Cert); err != nil {
		t.Errorf("%s: leaf signature does not verify under %s: %v", c.Holder, signer.ID, err)
	}
	var want, got []string
	for _, x := range trusted {
		want = append(want, x.ID)
	}
	got = certIDs(ca.Lineage(trusted), c.Trusted)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s: truststore holds %v, want %v", c.Holder, got, want)
	}
}

func mustTalk(t testing.TB, a, b *authoritytest.Creds) {
	t.Helper()
	if err := authoritytest.Handshake(a, b); err != nil {
		t.Errorf("%s and %s cannot talk: %v", a.Holder, b.Holder, err)
	}
}

// mustNotTalk requires both directions to fail, the refusing side naming
// an unknown authority.
func mustNotTalk(t testing.TB, a, b *authoritytest.Creds) {
	t.Helper()
	for _, p := range [][2]*authoritytest.Creds{{a, b}, {b, a}} {
		err := authoritytest.Handshake(p[0], p[1])
		if err == nil {
			t.Errorf("%s and %s can talk, want a refusal", a.Holder, b.Holder)
		} else if !strings.Contains(err.Error(), "unknown authority") {
			t.Errorf("%s and %s fail to talk for the wrong reason: %v", a.Holder, b.Holder, err)
		}
	}
}

// lastAudit returns the newest audit entry of a cluster.
func lastAudit(t testing.TB, e *authoritytest.Env, cluster string) *store.AuditEntry {
	t.Helper()
	es := e.Audit(cluster)
	if len(es) == 0 {
		t.Fatalf("cluster %q has no audit entries", cluster)
	}
	return es[len(es)-1]
}

// wantAudit checks the newest audit entry of a cluster.
func wantAudit(t testing.TB, e *authoritytest.Env, cluster, action, outcome, actor string) *store.AuditEntry {
	t.Helper()
	got := lastAudit(t, e, cluster)
	if got.Action != action || got.Outcome != outcome || got.Actor != actor {
		t.Errorf("newest audit entry is %s/%s by %s (%s), want %s/%s by %s",
			got.Action, got.Outcome, got.Actor, got.Reason, action, outcome, actor)
	}
	return got
}

// recorder is an Observer that counts what the Authority reports.
type recorder struct {
	mu      sync.Mutex
	issued  int
	denied  map[string]int
	blocked []string
	// rotations is what the last scheduler tick reported.
	rotations []authority.RotationWait
}

func (r *recorder) Issued(string, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.issued++
}

func (r *recorder) Denied(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.denied == nil {
		r.denied = map[string]int{}
	}
	r.denied[reason]++
}

func (r *recorder) Rotations(waits []authority.RotationWait) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rotations = append([]authority.RotationWait(nil), waits...)
	for _, w := range waits {
		if w.Blocked {
			r.blocked = append(r.blocked, w.Cluster+"/"+w.Purpose+":"+w.Step)
		}
	}
}

// lastRotations renders what the last tick reported, one lineage a line.
func (r *recorder) lastRotations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, w := range r.rotations {
		out = append(out, fmt.Sprintf("%s/%s waits for %s blocked=%v failed=%v", w.Cluster, w.Purpose, w.Step, w.Blocked, w.Failed))
	}
	return out
}

func (r *recorder) blockedSteps() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.blocked...)
}

// onEtcd runs the authority on etcd cluster c, with cfg's other settings.
func onEtcd(c *etcdtest.Cluster, cfg etcd.Config) authoritytest.Option {
	return authoritytest.WithBackend(func(ctx context.Context) (store.Backend, error) {
		cfg.Endpoints = c.Endpoints()
		return etcd.Open(ctx, cfg)
	})
}
