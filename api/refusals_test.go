package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	pb "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

func TestTheRefusalGateAuditsABurstPerSourceAndCountsTheRest(t *testing.T) {
	g := newRefusalGate()
	now := time.Now()
	anon := authority.Actor{Kind: authority.ActorAnonymous, ID: "10.0.0.1"}
	audited := 0
	for i := range 200 {
		if g.admit("peer:10.0.0.1", anon, "", "/flinkpki.v1.EnrollmentService/Enroll", "unauthenticated", fmt.Errorf("bad token %d", i), now) {
			audited++
		}
	}
	if audited != refusalAuditBurst {
		t.Fatalf("%d refusals audited one by one in a burst, want the burst of %d", audited, refusalAuditBurst)
	}
	other := authority.Actor{Kind: authority.ActorAnonymous, ID: "10.0.0.2"}
	if !g.admit("peer:10.0.0.2", other, "", "/x", "unauthenticated", errors.New("e"), now) {
		t.Error("another source was held back by the first one's flood")
	}
	if !g.admit("peer:10.0.0.1", anon, "", "/x", "unauthenticated", errors.New("e"), now.Add(time.Second)) {
		t.Error("a second later the flooding source gets an entry of its own again")
	}

	sums := g.drain()
	if len(sums) != 1 || sums[0].n != 200-refusalAuditBurst || sums[0].actor != anon || sums[0].lastErr != "bad token 199" {
		t.Fatalf("summaries = %+v, want one of %d refusals by %v ending with the last error", sums, 200-refusalAuditBurst, anon)
	}
	if again := g.drain(); len(again) != 0 {
		t.Fatalf("a second drain found %+v; counts must be taken once", again)
	}
	g.restore(sums)
	if back := g.drain(); len(back) != 1 || back[0].n != sums[0].n {
		t.Fatalf("restored counts = %+v, want %+v", back, sums)
	}
}

func TestTheRefusalGateStaysBoundedUnderManySources(t *testing.T) {
	g := newRefusalGate()
	now := time.Now()
	for i := range maxRefusalSources + 500 {
		src := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		a := authority.Actor{Kind: authority.ActorAnonymous, ID: src}
		for range refusalAuditBurst + 1 {
			g.admit("peer:"+src, a, "", "/x", "unauthenticated", errors.New("e"), now)
		}
	}
	if n := len(g.sources); n > maxRefusalSources+1 {
		t.Fatalf("the gate tracks %d sources, over its bound of %d and the overflow bucket", n, maxRefusalSources)
	}
	total := 0
	overflow := false
	for _, s := range g.drain() {
		total += s.n
		if s.source == overflowSource {
			overflow = true
			if s.actor.ID != overflowSource {
				t.Errorf("overflow summary names actor %v; one shared actor keeps it bounded", s.actor)
			}
		}
	}
	if !overflow {
		t.Error("sources past the bound were not counted in the overflow bucket")
	}
	if total == 0 {
		t.Error("no refusal was counted for a summary")
	}
}

// TestRefusalSummariesAreWrittenPeriodicallyAndOnce drives the summary loop
// against a real authority and store: the counted refusals show up as
// summary entries while the loop runs, and the final flush after it ends
// neither loses nor repeats a count.
func TestRefusalSummariesAreWrittenPeriodicallyAndOnce(t *testing.T) {
	env := authoritytest.New(t)
	s := New(Config{Authority: env.Authority})
	s.summaryEvery = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.RunRefusalSummaries(ctx); close(done) }()

	anon := authority.Actor{Kind: authority.ActorAnonymous, ID: "10.0.0.9"}
	refuseN := func(n int) {
		for i := range n {
			_ = s.refuse(context.Background(), "peer:10.0.0.9", anon, "", "/flinkpki.v1.EnrollmentService/Enroll", "unauthenticated", fmt.Errorf("bad token %d", i))
		}
	}
	counted := func() (individual, summarised int) {
		for _, e := range env.Audit("") {
			if e.Outcome != "denied" || e.Details["reason"] != "unauthenticated" {
				continue
			}
			if e.Actor != anon.String() {
				t.Fatalf("refusal audited as %q, want %q", e.Actor, anon.String())
			}
			if c, ok := e.Details["count"]; ok {
				n, _ := strconv.Atoi(c)
				summarised += n
			} else {
				individual++
			}
		}
		return
	}

	// The first burst goes one by one; the bucket refills at
	// refusalAuditRate a second while they are written, so on a slow
	// machine more do too: refuse until one is counted for a summary (the
	// summary loop may take it at once, so count the summarised too). The
	// rest must arrive as summaries while the loop runs, none lost and none
	// twice.
	sent := 0
	for sent < refusalAuditBurst+70 || s.refusals.pendingCount()+summarisedSoFar(counted) == 0 {
		if sent == 100_000 {
			t.Fatal("100,000 refusals and none counted for a summary")
		}
		refuseN(1)
		sent++
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ind, sum := counted()
		if ind >= refusalAuditBurst && sum > 0 && ind+sum == sent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the loop had time to run: %d one by one, %d summarised; want at least %d one by one, the rest of %d summarised", ind, sum, refusalAuditBurst, sent)
		}
		time.Sleep(10 * time.Millisecond)
	}

	refuseN(30) // the bucket has barely refilled: these wait for the final flush
	sent += 30
	cancel()
	<-done
	if err := s.FlushRefusals(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.FlushRefusals(context.Background()); err != nil { // nothing left: no entry
		t.Fatal(err)
	}
	if ind, sum := counted(); ind+sum != sent {
		t.Fatalf("%d one by one + %d summarised = %d refusals audited, want %d", ind, sum, ind+sum, sent)
	}
}

// summarisedSoFar is the refusals counted already holds in summaries.
func summarisedSoFar(counted func() (int, int)) int {
	_, sum := counted()
	return sum
}

// pendingCount is how many refusals wait for their summary.
func (g *refusalGate) pendingCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, s := range g.sources {
		for _, c := range s.pending {
			n += c.n
		}
	}
	return n
}

// TestManySourcesTogetherGetOnlyTheSharedShare: each source has its burst,
// but a thousand sources at once (an IPv6 network's addresses, say) get
// refusalAuditAllBurst entries between them; the rest are counted for the
// summaries, none lost.
func TestManySourcesTogetherGetOnlyTheSharedShare(t *testing.T) {
	g := newRefusalGate()
	now := time.Now()
	audited := 0
	const sources = 1000
	for i := range sources {
		src := fmt.Sprintf("10.1.%d.%d", i>>8, i&255)
		if g.admit("peer:"+src, authority.Actor{Kind: authority.ActorAnonymous, ID: src}, "", "/x", "unauthenticated", errors.New("e"), now) {
			audited++
		}
	}
	if audited != refusalAuditAllBurst {
		t.Fatalf("%d refusals from %d sources audited one by one, want the shared burst of %d", audited, sources, refusalAuditAllBurst)
	}
	counted := 0
	for _, s := range g.drain() {
		counted += s.n
	}
	if audited+counted != sources {
		t.Fatalf("%d audited + %d counted for summaries, want %d", audited, counted, sources)
	}
}

// TestAnIPv6SourceIsItsSlash64: one host usually holds a whole /64, so its
// addresses are one source; IPv4 addresses stay one each.
func TestAnIPv6SourceIsItsSlash64(t *testing.T) {
	at := func(addr string) context.Context {
		ap := netip.MustParseAddrPort(addr)
		return peer.NewContext(context.Background(), &peer.Peer{Addr: net.TCPAddrFromAddrPort(ap)})
	}
	for addr, want := range map[string]string{
		"[2001:db8:1:2:aaaa::1]:4000": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::9]:4001": "2001:db8:1:2::/64",
		"[2001:db8:1:3::1]:4000":      "2001:db8:1:3::/64",
		"10.0.0.7:5000":               "10.0.0.7",
		"[::ffff:10.0.0.7]:5000":      "10.0.0.7",
	} {
		if got := PeerSource(at(addr)); got != want {
			t.Errorf("PeerSource(%s) = %q, want %q", addr, got, want)
		}
	}
}

// callEnrollAs sends req through the server's authentication interceptor,
// as a caller at addr with bearer (none when empty).
func callEnrollAs(s *Server, addr, bearer string, req *pb.EnrollRequest) error {
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr))})
	if bearer != "" {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+bearer))
	}
	_, err := s.unaryAuth(ctx, req, &grpc.UnaryServerInfo{FullMethod: pb.EnrollmentService_Enroll_FullMethodName},
		func(ctx context.Context, r any) (any, error) { return s.Enroll(ctx, r.(*pb.EnrollRequest)) })
	return err
}

// TestAFloodOfRefusalsStaysBoundedWhateverTheCallerVaries: the gate's
// promise (a burst of entries per source, then summaries) holds when a
// caller varies what it controls: an enrollment token naming another
// made-up cluster, 4 KiB long, in every request; unauthenticated callers
// using every address of one IPv6 /64; a pod of any namespace (any pod can
// mint a token for the audience) probing made-up cluster names. Each
// flood of 1,000 writes at most the burst plus a few summaries, and no
// entry carries more than a clipped text and no made-up cluster name.
func TestAFloodOfRefusalsStaysBoundedWhateverTheCallerVaries(t *testing.T) {
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders"})
	s := New(Config{Authority: e.Authority, EnrollRate: 200, EnrollBurst: 2000}) // serve's defaults
	bearer, _, err := e.Authority.CreateToken(e.Ctx, authoritytest.Offline, "orders", "taskmanager", 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	pod := authority.Actor{Kind: authority.ActorK8s, Namespace: "random-app", ServiceAccount: "web", Pod: "web-1"}
	pad := strings.Repeat("x", 4096)
	const n = 1000
	for _, tt := range []struct {
		name   string
		refuse func(i int) error
	}{
		{"an enrollment token naming made-up clusters", func(i int) error {
			return callEnrollAs(s, "10.0.0.1:4000", bearer, &pb.EnrollRequest{Cluster: fmt.Sprintf("c%d-%s", i, pad), Role: "taskmanager"})
		}},
		{"no token, from every address of one /64", func(i int) error {
			return callEnrollAs(s, fmt.Sprintf("[2001:db8:1:2::%x]:4000", i+1), "", &pb.EnrollRequest{})
		}},
		{"an unbound pod naming made-up clusters", func(i int) error {
			_, err := e.Authority.KeyType(e.Ctx, pod, fmt.Sprintf("c%d", i), "taskmanager", "")
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.Audit(""))
			start := time.Now()
			for i := range n {
				if err := tt.refuse(i); err == nil {
					t.Fatalf("request %d was not refused", i)
				}
			}
			// The source's bucket refills at refusalAuditRate a second
			// while the flood runs (longer on a loaded machine).
			refill := int(time.Since(start).Seconds()*refusalAuditRate) + 1
			if err := s.FlushRefusals(context.Background()); err != nil {
				t.Fatal(err)
			}
			entries := e.Audit("")[before:]
			if most := refusalAuditBurst + refill + maxRefusalKinds + 1; len(entries) > most {
				t.Errorf("%d refusals wrote %d audit entries, want at most %d (the burst and its refill, then summaries)", n, len(entries), most)
			}
			for _, en := range entries {
				if len(en.Reason) > authority.MaxRefusalText || len(en.Cluster) > 63 {
					t.Fatalf("an entry of %d bytes of reason names cluster %.80q", len(en.Reason), en.Cluster)
				}
			}
		})
	}
}

// TestRefusalSummariesStayFewUnderManySources: a thousand addresses each
// refused for 18 methods past the global bucket used to make 18,000
// summary entries (and WARN lines) every ten seconds. A flush writes at
// most maxRefusalSummaries of its own, the largest, and rolls the rest up
// per kind of caller, action and reason, losing no count.
func TestRefusalSummariesStayFewUnderManySources(t *testing.T) {
	g := newRefusalGate()
	now := time.Now()
	loud := authority.Actor{Kind: authority.ActorAnonymous, ID: "10.9.9.9"}
	for i := range refusalAuditAllBurst { // empties the global bucket
		src := fmt.Sprintf("10.8.%d.%d", i/refusalAuditBurst, i%refusalAuditBurst)
		if !g.admit("peer:"+src, authority.Actor{Kind: authority.ActorAnonymous, ID: src}, "", "/x", "unauthenticated", errors.New("e"), now) {
			t.Fatal("a refusal within the global burst was not audited")
		}
	}
	for range 400 {
		g.admit("peer:10.9.9.9", loud, "", "/flinkpki.v1.EnrollmentService/Enroll", "unauthenticated", errors.New("loud"), now)
	}
	counted := 400
	for i := range 1000 {
		src := fmt.Sprintf("10.1.%d.%d", i>>8, i&255)
		a := authority.Actor{Kind: authority.ActorAnonymous, ID: src}
		for m := range 18 {
			if g.admit("peer:"+src, a, "", fmt.Sprintf("/flinkpki.v1.S/M%d", m), "unauthenticated", errors.New("quiet"), now) {
				t.Fatal("a refusal was audited on its own with the global bucket empty")
			}
			counted++
		}
	}
	sums := g.drain()
	if len(sums) > maxRefusalSummaries+18 {
		t.Fatalf("a flush writes %d summaries, want at most %d and one roll-up per method", len(sums), maxRefusalSummaries+18)
	}
	total, rolled, loudKept := 0, 0, false
	for _, s := range sums {
		total += s.n
		if s.source == overflowSource {
			rolled++
			if s.actor.String() != "anonymous:*" || !strings.Contains(s.lastErr, "rolled up from") {
				t.Errorf("roll-up %+v does not say what it is", s)
			}
		}
		if s.actor == loud {
			loudKept = true
		}
	}
	if total != counted {
		t.Errorf("the summaries count %d refusals, want %d: none may be lost", total, counted)
	}
	if rolled != 18 || !loudKept {
		t.Errorf("%d roll-ups (want one per method, 18), loudest source kept on its own: %v", rolled, loudKept)
	}
}

// TestLateTimesDoNotRefillTheAuditBudget: a refusal's time is taken before
// the gate's lock, so one may come in earlier than the last the gate saw.
// Such a time must not move the buckets' clocks back (x/time/rate then
// refills the same interval twice): over ten seconds of refusals, half of
// them stamped 0.9 s late, one source gets at most its burst and its rate
// of entries.
func TestLateTimesDoNotRefillTheAuditBudget(t *testing.T) {
	g := newRefusalGate()
	anon := authority.Actor{Kind: authority.ActorAnonymous, ID: "10.0.0.1"}
	now := time.Unix(1700000000, 0)
	audited := 0
	for range 10 {
		now = now.Add(time.Second)
		for i := range 40 {
			stamp := now
			if i%2 == 1 {
				stamp = now.Add(-900 * time.Millisecond)
			}
			if g.admit("peer:10.0.0.1", anon, "", "/flinkpki.v1.EnrollmentService/Enroll", "unauthenticated", errors.New("bad token"), stamp) {
				audited++
			}
		}
	}
	if most := refusalAuditBurst + 10*refusalAuditRate; audited > most {
		t.Fatalf("%d refusals audited one by one in 10 s, want at most %d (burst %d, %d/s)", audited, most, refusalAuditBurst, refusalAuditRate)
	}
}

// TestShedRequestsAreAuditedInSummariesOnly: requests the stream gate sheds
// before authentication get no audit entry of their own (the gate must not
// wait for the store), but each is counted, by address, method and
// reason, in the next summary.
func TestShedRequestsAreAuditedInSummariesOnly(t *testing.T) {
	env := authoritytest.New(t)
	s := New(Config{Authority: env.Authority})
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort("10.0.0.7:4242"))})
	for range 3 {
		s.Shed(ctx, "/flinkpki.v1.EnrollmentService/Enroll", "gave_way", errors.New("ended to make room"))
	}
	if n := len(env.Audit("")); n != 0 {
		t.Fatalf("%d audit entries before the summary, want none", n)
	}
	if err := s.FlushRefusals(context.Background()); err != nil {
		t.Fatal(err)
	}
	entries := env.Audit("")
	if len(entries) != 1 {
		t.Fatalf("audit after the flush: %+v, want one summary", entries)
	}
	e := entries[0]
	if e.Outcome != "denied" || e.Details["reason"] != "gave_way" || e.Details["count"] != "3" || e.Action != "enroll" || !strings.Contains(e.Actor, "10.0.0.7") {
		t.Errorf("summary %+v, want 3 gave_way refusals of Enroll by 10.0.0.7", e)
	}
}

// TestARequestThatEndsWhileItsTokenIsReadIsNoRefusal: a request whose
// context has ended by the time its token is looked up (its caller gave
// up) ends as CANCELLED, and is neither refused as unauthenticated nor
// audited: nothing was wrong with the token.
func TestARequestThatEndsWhileItsTokenIsReadIsNoRefusal(t *testing.T) {
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders"})
	s := New(Config{Authority: e.Authority})
	bearer, _, err := e.Authority.CreateToken(e.Ctx, authoritytest.Offline, "orders", "taskmanager", 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	before := len(e.Audit(""))
	ctx, cancel := context.WithCancel(peer.NewContext(context.Background(), &peer.Peer{Addr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort("10.0.0.9:1"))}))
	cancel()
	ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+bearer))
	_, err = s.unaryAuth(ctx, &pb.EnrollRequest{Cluster: "orders", Role: "taskmanager", Holder: "tm-0"}, &grpc.UnaryServerInfo{FullMethod: pb.EnrollmentService_Enroll_FullMethodName},
		func(context.Context, any) (any, error) { t.Fatal("the handler ran"); return nil, nil })
	if status.Code(err) != codes.Canceled {
		t.Fatalf("a request ended before its token was read: %v, want Canceled", err)
	}
	if after := e.Audit(""); len(after) != before {
		t.Fatalf("it was audited: %+v", after[before:])
	}
}

// TestEveryCallIsAuditedUnderTheAuthoritysActionName: a refusal before
// a call reaches the authority (an unknown token, a rate limit, the
// stream gate) is audited under the short name the authority gives the
// call ("enroll", "cluster.list"), so one filter finds every refusal of
// it; every method of every flinkpki service has one.
func TestEveryCallIsAuditedUnderTheAuthoritysActionName(t *testing.T) {
	for _, sd := range []grpc.ServiceDesc{pb.ClusterService_ServiceDesc, pb.AuthorityService_ServiceDesc,
		pb.EnrollmentService_ServiceDesc, pb.AuditService_ServiceDesc, pb.AdminService_ServiceDesc} {
		var names []string
		for _, m := range sd.Methods {
			names = append(names, m.MethodName)
		}
		for _, st := range sd.Streams {
			names = append(names, st.StreamName)
		}
		for _, n := range names {
			method := "/" + sd.ServiceName + "/" + n
			if a := actionOf(method); strings.HasPrefix(a, "/") || strings.Contains(a, "Service") {
				t.Errorf("%s is audited as %q, want the authority's short name", method, a)
			}
		}
	}
	if a := actionOf("/flinkpki.v1.ClusterService/NoSuchCall"); a != "/flinkpki.v1.ClusterService/NoSuchCall" {
		t.Errorf("a method the server does not serve is audited as %q, want the name it was called by", a)
	}
}
