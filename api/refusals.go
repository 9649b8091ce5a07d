package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/internal/tick"
	pb "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// Every refusal is audited. A flood of them from one source (a scanner
// without a token, a looping client past its rate limit) would, with an
// entry each, fill the disk and crowd the commit queue that issuances
// share. So each source gets refusalAuditRate entries of its own per
// second (burst refusalAuditBurst); past that its refusals are still
// refused and counted in the metrics, and they are audited as one summary
// entry per source and kind every refusalSummaryEvery, with their count.
const (
	refusalAuditRate    = 10
	refusalAuditBurst   = 50
	refusalSummaryEvery = 10 * time.Second
	// maxRefusalSources bounds the gate's memory. Sources beyond it share
	// one bucket, overflowSource.
	maxRefusalSources = 10000
	overflowSource    = "*"
	// All sources together get refusalAuditAllRate entries per second
	// (burst refusalAuditAllBurst): many sources (the addresses of an IPv6
	// network, say) must not add up to a flood either.
	refusalAuditAllRate  = 100
	refusalAuditAllBurst = 500
	// maxRefusalKinds bounds the kinds one source has pending (see count).
	maxRefusalKinds = 16
	// maxRefusalSummaries bounds the summary entries one flush writes: the
	// sources with the most refusals get one each, and the rest are rolled
	// up per kind of caller, action and reason (rollUp), so that refusals
	// from thousands of addresses make tens of entries, not one per
	// address and kind (up to 10,000 x 16 every refusalSummaryEvery).
	maxRefusalSummaries = 100
)

// refusalGate decides which refusals are audited one by one and keeps the
// count of the others until they are summarised.
type refusalGate struct {
	mu      sync.Mutex
	sources map[string]*refusalSource
	all     *rate.Limiter
	pruned  time.Time
	// last is the latest time a limiter was given: a caller's time taken
	// before it got the lock may be earlier, and a token bucket told an
	// earlier time than its last moves its clock back and refills the
	// same interval twice (x/time/rate does), so times never go back here.
	last time.Time
}

type refusalSource struct {
	lim     *rate.Limiter
	seen    time.Time
	pending map[refusalKind]refusalCount
}

func newRefusalSource(now time.Time) *refusalSource {
	return &refusalSource{lim: rate.NewLimiter(refusalAuditRate, refusalAuditBurst), seen: now}
}

// count adds n refusals of kind k, the latest of which was actor's and
// failed with lastErr. A source has at most maxRefusalKinds kinds pending:
// past that, a new kind is counted under no cluster, so that a caller
// naming another made-up cluster in every request still gets one summary
// per action and reason.
func (s *refusalSource) count(k refusalKind, n int, actor authority.Actor, lastErr string) {
	if s.pending == nil {
		s.pending = map[refusalKind]refusalCount{}
	}
	if _, ok := s.pending[k]; !ok && len(s.pending) >= maxRefusalKinds {
		k.cluster = ""
	}
	s.pending[k] = refusalCount{n: s.pending[k].n + n, actor: actor, lastErr: lastErr}
}

// refusalKind is what one summary entry counts: one source's refusals of
// one action, reason and cluster. The actor is not part of it: one source
// (an IPv6 /64, a service account's pods) has many.
type refusalKind struct {
	cluster, action, reason string
}

// refusalCount is how many refusals of a kind wait for their summary, and
// the latest one's actor and error, which the summary names.
type refusalCount struct {
	n       int
	actor   authority.Actor
	lastErr string
}

// refusalSummary is one summary entry to write.
type refusalSummary struct {
	source string
	kind   refusalKind
	refusalCount
}

func newRefusalGate() *refusalGate {
	return &refusalGate{sources: map[string]*refusalSource{}, all: rate.NewLimiter(refusalAuditAllRate, refusalAuditAllBurst)}
}

// admit reports whether a refusal from source gets an audit entry of its
// own; when it does not, it is counted for the next summary.
func (g *refusalGate) admit(source string, actor authority.Actor, cluster, action, reason string, err error, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Before(g.last) {
		now = g.last
	}
	g.last = now
	s, actor := g.source(source, actor, now)
	if s.lim.AllowN(now, 1) && g.all.AllowN(now, 1) {
		return true
	}
	// What the caller sent is bounded here: a cluster name that no cluster
	// can have is counted under none, and the error (which may quote it)
	// is clipped.
	s.count(refusalKind{cluster: authority.AuditCluster(cluster), action: action, reason: reason}, 1, actor, authority.ClipText(err.Error()))
	return false
}

// tally counts a refusal from source for the next summary, with no entry
// of its own: for refusals that come in floods by nature (requests shed
// before authentication), whose entries would wait on the store.
func (g *refusalGate) tally(source string, actor authority.Actor, action, reason string, err error, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, actor := g.source(source, actor, now)
	s.count(refusalKind{action: action, reason: reason}, 1, actor, authority.ClipText(err.Error()))
}

// source returns source's state, made if new, and the actor its refusals
// are counted under; g.mu is held.
func (g *refusalGate) source(source string, actor authority.Actor, now time.Time) (*refusalSource, authority.Actor) {
	s, ok := g.sources[source]
	if !ok {
		if len(g.sources) >= maxRefusalSources && now.Sub(g.pruned) > time.Second {
			g.prune(now)
		}
		if len(g.sources) >= maxRefusalSources {
			// One shared bucket, and one actor for its summaries, so
			// that many sources cannot grow the gate either.
			source = overflowSource
			s = g.sources[source]
			actor = authority.Actor{Kind: actor.Kind, ID: overflowSource}
		}
		if s == nil {
			s = newRefusalSource(now)
			g.sources[source] = s
		}
	}
	s.seen = now
	return s, actor
}

// Admit implements authority.RefusalGate: the authority's own refusals
// (an enrollment for the wrong role, say) go through the same gate.
func (g *refusalGate) Admit(source string, actor authority.Actor, cluster, action, reason string, err error) bool {
	return g.admit(source, actor, cluster, action, reason, err, time.Now())
}

// prune drops sources with nothing pending whose bucket has refilled.
func (g *refusalGate) prune(now time.Time) {
	full := time.Duration(float64(refusalAuditBurst)/refusalAuditRate*float64(time.Second)) + time.Second
	for k, s := range g.sources {
		if len(s.pending) == 0 && now.Sub(s.seen) > full {
			delete(g.sources, k)
		}
	}
	g.pruned = now
}

// drain takes every pending count, in a stable order.
func (g *refusalGate) drain() []refusalSummary {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []refusalSummary
	for src, s := range g.sources {
		for k, c := range s.pending {
			out = append(out, refusalSummary{source: src, kind: k, refusalCount: c})
		}
		s.pending = nil
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.source != b.source {
			return a.source < b.source
		}
		if a.kind.action != b.kind.action {
			return a.kind.action < b.kind.action
		}
		return a.kind.reason < b.kind.reason
	})
	return rollUp(out)
}

// rolledActor is the actor of a roll-up: the kind of caller, anyone.
func rolledActor(kind authority.ActorKind) authority.Actor {
	return authority.Actor{Kind: kind, ID: overflowSource, Namespace: overflowSource, ServiceAccount: overflowSource, Pod: overflowSource}
}

// rollUp keeps the maxRefusalSummaries summaries with the most refusals
// and folds the others into one per kind of caller, action and reason,
// from source overflowSource, naming how many sources it counts and the
// error of its largest part. Their order stays sums'.
func rollUp(sums []refusalSummary) []refusalSummary {
	if len(sums) <= maxRefusalSummaries {
		return sums
	}
	idx := make([]int, len(sums))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(sums[b].n, sums[a].n) })
	kept := make([]bool, len(sums))
	for _, i := range idx[:maxRefusalSummaries] {
		kept[i] = true
	}
	type foldKey struct {
		kind           authority.ActorKind
		action, reason string
	}
	type fold struct {
		sum     refusalSummary
		sources int
		largest int
	}
	folds := map[foldKey]*fold{}
	var order []foldKey
	out := make([]refusalSummary, 0, maxRefusalSummaries+8)
	for i, sum := range sums {
		if kept[i] {
			out = append(out, sum)
			continue
		}
		k := foldKey{sum.actor.Kind, sum.kind.action, sum.kind.reason}
		f := folds[k]
		if f == nil {
			f = &fold{sum: refusalSummary{source: overflowSource, kind: refusalKind{action: sum.kind.action, reason: sum.kind.reason},
				refusalCount: refusalCount{actor: rolledActor(sum.actor.Kind)}}}
			folds[k] = f
			order = append(order, k)
		}
		// sums holds one entry per source and kind: a fold counts each
		// source once per cluster it named, which is close enough here.
		f.sum.n += sum.n
		f.sources++
		if sum.n > f.largest {
			f.largest, f.sum.lastErr = sum.n, sum.lastErr
		}
	}
	for _, k := range order {
		f := folds[k]
		f.sum.lastErr = authority.ClipText(fmt.Sprintf("rolled up from %d counts of sources past the %d largest; the largest of them: %s", f.sources, maxRefusalSummaries, f.sum.lastErr))
		out = append(out, f.sum)
	}
	return out
}

// restore puts back counts whose summary could not be written.
func (g *refusalGate) restore(sums []refusalSummary) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, sum := range sums {
		s := g.sources[sum.source]
		if s == nil {
			s = newRefusalSource(time.Now())
			g.sources[sum.source] = s
		}
		actor, lastErr := sum.actor, sum.lastErr
		if c, ok := s.pending[sum.kind]; ok {
			actor, lastErr = c.actor, c.lastErr // counted since the drain: newer
		}
		s.count(sum.kind, sum.n, actor, lastErr)
	}
}

// Shed records a request that the server's stream gate refused, or ended
// to make room, before its authentication (reason says which): counted in
// the metrics and audited in the next summary of its source, never on its
// own, since the gate runs on a connection's reader, which must not wait
// for the store, and sheds come in floods.
func (s *Server) Shed(ctx context.Context, method, reason string, err error) {
	text := plainError(err)
	s.refusals.tally("peer:"+PeerSource(ctx), anonymous(ctx), actionOf(method), reason, text, time.Now())
	s.auth.DenyUnaudited(reason, text)
}

// refuse refuses a request: audited on its own while its source stays
// under the gate's rate, counted for the next summary past it. It returns
// err.
func (s *Server) refuse(ctx context.Context, source string, actor authority.Actor, cluster, action, reason string, err error) error {
	text := plainError(err)
	if s.refusals.admit(source, actor, cluster, action, reason, text, time.Now()) {
		s.auth.DenyAudited(ctx, actor, cluster, action, reason, text)
	} else {
		s.auth.DenyUnaudited(reason, text)
	}
	return err
}

// plainError is err as the audit trail and the log say it: a gRPC status's
// message without Go's "rpc error: code = ... desc =" around it (the
// reason names the kind).
func plainError(err error) error {
	if st, ok := status.FromError(err); ok && st.Code() != codes.OK {
		return errors.New(st.Message())
	}
	return err
}

// reads are the calls that change nothing, with their audit action: the
// server audits their refusals itself (refuseRead). The authority audits
// the refusals of the other calls (writes), past authentication.
var reads = map[string]string{
	pb.ClusterService_GetCluster_FullMethodName:    "cluster.get",
	pb.ClusterService_ListClusters_FullMethodName:  "cluster.list",
	pb.ClusterService_ListTokens_FullMethodName:    "token.list",
	pb.AuthorityService_GetStatus_FullMethodName:   "ca.status",
	pb.AuthorityService_ListHolders_FullMethodName: "holder.list",
	pb.AuditService_ListAudit_FullMethodName:       "audit.list",
	pb.AuditService_VerifyAudit_FullMethodName:     "audit.verify",
}

// writes are the other calls, with the audit action their refusals are
// found under: the authority's own name for the call where it audits it
// (it does not audit the listing of administrator tokens, whose name is
// only for refusals before it is reached).
var writes = map[string]string{
	pb.ClusterService_CreateCluster_FullMethodName:   "cluster.create",
	pb.ClusterService_UpdateCluster_FullMethodName:   "cluster.update",
	pb.ClusterService_DeleteCluster_FullMethodName:   "cluster.delete",
	pb.ClusterService_CreateToken_FullMethodName:     "token.create",
	pb.ClusterService_RevokeToken_FullMethodName:     "token.revoke",
	pb.AuthorityService_Prepare_FullMethodName:       "ca.prepare",
	pb.AuthorityService_Activate_FullMethodName:      "ca.activate",
	pb.AuthorityService_Retire_FullMethodName:        "ca.retire",
	pb.AuthorityService_ReleaseHolder_FullMethodName: "holder.release",
	pb.EnrollmentService_Enroll_FullMethodName:       "enroll",
	pb.EnrollmentService_Bake_FullMethodName:         "bake",
	pb.AuditService_PruneAudit_FullMethodName:        "audit.archive",
	pb.AdminService_Backup_FullMethodName:            "store.backup",
	pb.AdminService_CreateAdminToken_FullMethodName:  "admin_token.create",
	pb.AdminService_ListAdminTokens_FullMethodName:   "admin_token.list",
	pb.AdminService_RevokeAdminToken_FullMethodName:  "admin_token.revoke",
}

// actionOf is the audit action of a call: what the authority names it,
// so that a refusal before the call reaches the authority (an unknown
// token, a wrong kind of token, a rate limit, the stream gate) is found
// under the same name as one after. A method the server does not serve
// keeps the name it was called by.
func actionOf(method string) string {
	if a, ok := writes[method]; ok {
		return a
	}
	if a, ok := reads[method]; ok {
		return a
	}
	return method
}

// refuseRead audits a read's refusal (a cluster that does not exist, a bad
// page token), through the same gate as other floods: a script that polls
// a deleted cluster gets its first entries and then a summary, not an
// entry per poll. Faults that are no refusal (the store is down, the
// caller went away) are not audited.
func (s *Server) refuseRead(ctx context.Context, action string, req any, err error) error {
	if !authority.IsRefusal(err) {
		return err
	}
	reason := authority.ReasonOf(err)
	actor := actorFrom(ctx)
	return s.refuse(ctx, "read:"+actor.String(), actor, requestCluster(req), action, reason, err)
}

// requestCluster is the cluster a request names, or "" (the refusal gate
// and authority.AuditCluster bound what a caller may put there).
func requestCluster(req any) string {
	switch r := req.(type) {
	case interface{ GetCluster() string }:
		return r.GetCluster()
	case *pb.CreateClusterRequest:
		return r.GetName()
	case *pb.GetClusterRequest:
		return r.GetName()
	case *pb.UpdateClusterRequest:
		return r.GetName()
	case *pb.DeleteClusterRequest:
		return r.GetName()
	}
	return ""
}

// requestRole is the role an enrollment or a bake asks for ("" for other
// requests).
func requestRole(req any) string {
	if r, ok := req.(interface{ GetRole() string }); ok {
		return r.GetRole()
	}
	return ""
}

// RunRefusalSummaries writes the summary entries every
// refusalSummaryEvery until ctx ends. Call FlushRefusals after it has
// returned and the gRPC server has stopped, so no count is lost.
func (s *Server) RunRefusalSummaries(ctx context.Context) {
	tick.Every(ctx, s.auth.Logger(), s.summaryEvery, func(time.Time) {
		// Not under ctx: ending the loop must not cancel a summary in
		// flight, whose counts would then be written again by the final
		// flush. A failure is logged by the authority, and the counts wait
		// for the next tick.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(s.summaryEvery, 5*time.Second))
		_ = s.FlushRefusals(fctx)
		cancel()
	})
}

// FlushRefusals writes a summary entry for every source and kind of
// refusal counted since the last one. What cannot be written is kept for
// the next flush.
func (s *Server) FlushRefusals(ctx context.Context) error {
	sums := s.refusals.drain()
	for i, sum := range sums {
		if err := s.auth.AuditRefusals(ctx, sum.actor, sum.kind.cluster, sum.kind.action, sum.kind.reason, sum.n, sum.lastErr); err != nil {
			s.refusals.restore(sums[i:])
			return err
		}
	}
	return nil
}

// PeerSource is who a flood from the request's address is counted
// against, by the refusal gate here and by the server's stream bounds: the
// address itself for IPv4, its /64 for IPv6, where one host commonly holds
// a whole /64 and could otherwise be 2^64 sources.
func PeerSource(ctx context.Context) string {
	host := peerHost(ctx)
	addr, err := netip.ParseAddr(host)
	if err != nil || addr.Is4() || addr.Is4In6() {
		return host
	}
	p, err := addr.Prefix(64)
	if err != nil {
		return host
	}
	return p.String()
}

// peerHost is the address a request came from, without its port: the
// actor of an unauthenticated refusal.
func peerHost(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
		return host
	}
	return p.Addr.String()
}
