package api

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/k8sauth"
	"github.com/flinkpki/flinkpki/token"
)

// MaxBearerSize bounds the authorization header: a projected
// service-account token is about 1 KiB, a flinkpki token under 100 bytes.
const MaxBearerSize = 8 << 10

type actorKey struct{}

// actorFrom returns the authenticated actor of a request.
func actorFrom(ctx context.Context) authority.Actor {
	a, _ := ctx.Value(actorKey{}).(authority.Actor)
	return a
}

// Authenticator turns bearer credentials into actors.
type Authenticator struct {
	auth   *authority.Authority
	k8s    *k8sauth.Verifier // nil when offline verification is not configured
	review *k8sauth.Reviewer // nil when TokenReview is not enabled
	// reviews bounds, per source address, the tokens that only the API
	// server can judge (TokenReview without offline verification): each
	// is a request to the API server that a caller without any valid
	// credential would otherwise cause at will.
	reviews *limiter
	// accountReviews bounds, per service account, the reviews of tokens
	// that passed offline verification: any pod can mint a token for the
	// audience, and must not be able to make the server call the API
	// server at will either. It admits what the enrollment limit does
	// (serve --enroll-rate, --enroll-burst), or its defaults when that is
	// off: a Flink cluster of 1,000 TaskManagers starting at once.
	accountReviews *limiter
	// reviewing holds a token for each TokenReview in flight
	// (MaxReviewsInFlight).
	reviewing chan struct{}
	// staleJWKS hears of each token signed by a key the JWKS lacks that
	// is sent to the API server instead; nil: nobody listens.
	staleJWKS func(error)
	// unknownJWKSKey counts each token signed by a key the JWKS lacks.
	unknownJWKSKey func()
}

// Per source address: a pod starting needs one review, a node of
// restarting pods a few.
const (
	reviewsPerSecond = 10
	reviewBurst      = 50
	// MaxReviewsInFlight bounds the TokenReviews waiting on the API server
	// at once. Each holds a request slot until its answer (up to the
	// review's timeout, 5 s), so a slow API server, or tokens made up to be
	// reviewed slowly from many addresses, would otherwise hold the slots
	// that administrators and pods with other credentials need.
	MaxReviewsInFlight = 256
)

// accountReviewLimiter is accountReviews for the enrollment limit's rate
// and burst, 0 meaning serve's defaults.
func accountReviewLimiter(perSecond float64, burst int) *limiter {
	if perSecond <= 0 {
		perSecond, burst = 200, 2000
	}
	return newLimiter(perSecond, burst)
}

// bearer extracts the bearer string from the request metadata.
func bearer(ctx context.Context) (string, error) {
	// ValueFromIncomingContext reads the one key without copying the
	// request's whole metadata map, which FromIncomingContext does.
	vals := metadata.ValueFromIncomingContext(ctx, "authorization")
	if len(vals) == 0 {
		return "", fmt.Errorf("%w: no token: pass --token-file or set FLINKPKI_TOKEN_FILE", authority.ErrUnauthenticated)
	}
	if len(vals) > 1 {
		return "", fmt.Errorf("%w: more than one authorization header", authority.ErrUnauthenticated)
	}
	v := vals[0]
	if len(v) > MaxBearerSize {
		return "", fmt.Errorf("%w: authorization header is %d bytes, over the %d-byte limit", authority.ErrUnauthenticated, len(v), MaxBearerSize)
	}
	scheme, cred, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(cred) == "" {
		return "", fmt.Errorf("%w: authorization header must be \"Bearer <token>\"", authority.ErrUnauthenticated)
	}
	return strings.TrimSpace(cred), nil
}

// Authenticate resolves the request's credentials to an actor.
func (a *Authenticator) Authenticate(ctx context.Context) (authority.Actor, error) {
	return a.authenticate(ctx, call{})
}

// call is what authenticate knows of the call a credential comes with.
type call struct {
	// adminOnly says the call needs an administrator, which a
	// service-account token never is: the API server is then not asked
	// about one, since the call is refused whatever the review says.
	adminOnly bool
	// req is the request message (nil for a stream): a service account
	// that its cluster and role refuse is not reviewed either.
	req any
}

// deniedBeforeReview is the refusal of a service-account token for which
// the API server was not asked, since the answer could not change it:
// actor is the token's service account when the JWKS verified it, else
// the zero Actor, audited as the anonymous caller it is.
type deniedBeforeReview struct {
	actor authority.Actor
	err   error
}

func (e *deniedBeforeReview) Error() string { return e.err.Error() }
func (e *deniedBeforeReview) Unwrap() error { return e.err }

// authenticate is Authenticate for the call c.
func (a *Authenticator) authenticate(ctx context.Context, c call) (authority.Actor, error) {
	raw, err := bearer(ctx)
	if err != nil {
		return authority.Actor{}, err
	}
	if token.LooksLikeJWT(raw) {
		id, err := a.verifyK8s(ctx, raw, c)
		if status.Code(err) == codes.ResourceExhausted {
			return authority.Actor{}, err
		}
		if _, ok := err.(*deniedBeforeReview); ok {
			return authority.Actor{}, err
		}
		if errors.Is(err, k8sauth.ErrReviewUnavailable) {
			// No answer about the token: init retries Unavailable. Why
			// not (the API server's address, the server's token file) is
			// for the log, not for a caller that has not authenticated.
			return authority.Actor{}, &UnavailableError{Message: k8sauth.ErrReviewUnavailable.Error() + ": retry later (the flinkpki server log has the cause)", Cause: err}
		}
		if err != nil {
			return authority.Actor{}, fmt.Errorf("%w: %v", authority.ErrUnauthenticated, err)
		}
		return podActor(id), nil
	}
	t, err := token.Parse(raw)
	if err != nil {
		return authority.Actor{}, fmt.Errorf("%w: %v", authority.ErrUnauthenticated, err)
	}
	return a.auth.Authenticate(ctx, t)
}

// podActor is the actor of a pod's service-account token.
func podActor(id *k8sauth.Identity) authority.Actor {
	return authority.Actor{Kind: authority.ActorK8s, Namespace: id.Namespace, ServiceAccount: id.ServiceAccount, Pod: id.Pod, PodUID: id.PodUID}
}

// forCallers lists the services a credential other than an
// administrator's may call (an enrollment token, a pod's service-account
// token). Every other service that is not public needs an administrator,
// one added later too: the list says what is open, not what is closed.
var forCallers = map[string]bool{
	"flinkpki.v1.EnrollmentService": true,
}

// adminOnly reports whether every method of service svc needs an
// administrator.
func adminOnly(svc string) bool { return !public[svc] && !forCallers[svc] }

// onlyEnrolls says what a credential other than an administrator's may do.
var onlyEnrolls = map[authority.ActorKind]string{
	authority.ActorEnrollment: "an enrollment token may only enroll or bake for its cluster and role",
	authority.ActorK8s:        "a Kubernetes service-account token may only enroll the pod it was issued to",
}

// public lists services that need no token (health and reflection).
var public = map[string]bool{
	"grpc.health.v1.Health":                    true,
	"grpc.reflection.v1.ServerReflection":      true,
	"grpc.reflection.v1alpha.ServerReflection": true,
}

// Public reports whether a method (/service/method) needs no token: health
// and reflection.
func Public(fullMethod string) bool { return public[serviceOf(fullMethod)] }

func serviceOf(fullMethod string) string {
	s := strings.TrimPrefix(fullMethod, "/")
	if i := strings.LastIndex(s, "/"); i >= 0 {
		return s[:i]
	}
	return s
}

// authorize authenticates a call and enforces the administrator-only
// services; finer checks (cluster and role scope) happen in the authority.
// req is the request message (nil for a stream, whose message comes
// later): its refusals are audited under the cluster it names, so that
// audit list --cluster shows the attempts on a cluster too.
func (s *Server) authorize(ctx context.Context, fullMethod string, req any) (context.Context, error) {
	svc := serviceOf(fullMethod)
	if public[svc] {
		return ctx, nil
	}
	action := actionOf(fullMethod)
	actor, err := s.authn.authenticate(ctx, call{adminOnly: adminOnly(svc), req: req})
	if err != nil && ctx.Err() != nil {
		// The request ended while its credential was judged (a token read,
		// a TokenReview under way): its caller gave up, or its time ran
		// out. That says nothing of the credential: no refusal.
		return ctx, status.FromContextError(ctx.Err()).Err()
	}
	if status.Code(err) == codes.Unavailable {
		// The API server gave no answer about the token: no refusal
		// either (the request log has it, with the reason).
		return ctx, err
	}
	if d, ok := err.(*deniedBeforeReview); ok {
		err := d.err
		if adminOnly(svc) {
			err = needsAdmin(fullMethod, authority.ActorK8s)
		}
		if d.actor.Kind == "" {
			return ctx, s.refuse(ctx, "peer:"+PeerSource(ctx), anonymous(ctx), requestCluster(req), action, "permission_denied", err)
		}
		return ctx, s.refuse(ctx, "denied:"+d.actor.Source(), d.actor, requestCluster(req), action, "permission_denied", err)
	}
	if err != nil {
		reason := "unauthenticated"
		if status.Code(err) == codes.ResourceExhausted {
			reason = "rate_limited"
		}
		return ctx, s.refuse(ctx, "peer:"+PeerSource(ctx), anonymous(ctx), requestCluster(req), action, reason, err)
	}
	id := actor.Source()
	if adminOnly(svc) && actor.Kind != authority.ActorAdmin {
		// Through the gate: any pod can get a token that authenticates
		// (a projected token for the audience), and must not be able to
		// write an audit entry per call.
		err := needsAdmin(fullMethod, actor.Kind)
		return ctx, s.refuse(ctx, "denied:"+id, actor, requestCluster(req), action, "permission_denied", err)
	}
	if svc == "flinkpki.v1.EnrollmentService" {
		if err := s.limit.allow(id); err != nil {
			s.refuse(ctx, id, actor, requestCluster(req), action, "rate_limited", err)
			return ctx, err
		}
	}
	return context.WithValue(ctx, actorKey{}, actor), nil
}

// anonymous is the actor of a request refused before it authenticated:
// the address it came from.
func anonymous(ctx context.Context) authority.Actor {
	return authority.Actor{Kind: authority.ActorAnonymous, ID: peerHost(ctx)}
}

// needsAdmin refuses a credential of kind k a call of fullMethod, which
// needs an administrator.
func needsAdmin(fullMethod string, k authority.ActorKind) error {
	return fmt.Errorf("%w: %s needs an administrator token; %s", authority.ErrDenied, fullMethod, onlyEnrolls[k])
}

func (s *Server) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := s.authorize(ctx, info.FullMethod, req)
	if err != nil {
		return nil, toStatus(err)
	}
	resp, err := handler(ctx, req)
	if err != nil {
		if action, ok := reads[info.FullMethod]; ok {
			err = s.refuseRead(ctx, action, req, err)
		}
	}
	return resp, toStatus(err)
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w wrappedStream) Context() context.Context { return w.ctx }

func (s *Server) streamAuth(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := s.authorize(ss.Context(), info.FullMethod, nil)
	if err != nil {
		return toStatus(err)
	}
	return toStatus(handler(srv, wrappedStream{ss, ctx}))
}

// verifyK8s checks a service-account token offline against the JWKS and,
// when enabled, with a TokenReview as well, which also catches tokens of
// deleted pods. Both must agree on who the token is for.
func (a *Authenticator) verifyK8s(ctx context.Context, raw string, c call) (*k8sauth.Identity, error) {
	if a.k8s == nil && a.review == nil {
		return nil, errors.New("Kubernetes service-account tokens are not enabled on this server (serve --k8s-issuer --k8s-jwks-file, or --k8s-tokenreview)")
	}
	var id *k8sauth.Identity
	var unknownKey error
	if a.k8s != nil {
		var err error
		if id, err = a.k8s.Verify(ctx, raw); err != nil {
			if errors.Is(err, k8sauth.ErrUnknownKey) && a.unknownJWKSKey != nil && a.review == nil {
				// Nothing else to go by: the count (and its alert) may
				// include made-up key IDs. With TokenReview it counts
				// only tokens the API server vouched for, below.
				a.unknownJWKSKey()
			}
			// Signed by a key the JWKS file does not hold yet (the
			// cluster rotated its signing key): the API server judges the
			// token alone, as without --k8s-jwks-file (bounded per source
			// address), so pods keep enrolling until the file is
			// refreshed. Not for a call that needs an administrator, which
			// no service-account token is.
			if a.review == nil || c.adminOnly || !errors.Is(err, k8sauth.ErrUnknownKey) {
				return nil, err
			}
			unknownKey = err
		}
	}
	if a.review != nil {
		if id != nil && c.adminOnly {
			return id, nil // refused by authorize without the API server's word
		}
		if rid, ok := a.review.Cached(raw); ok { // its answer to this token a moment ago
			return agreed(id, rid)
		}
		if err := a.beforeReview(ctx, id, c); err != nil {
			return nil, err
		}
		if id == nil { // the API server is the only judge
			if err := a.reviews.allow("review:" + PeerSource(ctx)); err != nil {
				return nil, status.Errorf(codes.ResourceExhausted, "too many Kubernetes tokens from %s for the API server to review (%g/s, burst %d): retry later", peerHost(ctx), float64(reviewsPerSecond), reviewBurst)
			}
		} else if err := a.accountReviews.allow("review:" + id.Namespace + "/" + id.ServiceAccount); err != nil {
			return nil, status.Errorf(codes.ResourceExhausted, "too many tokens of service account %s/%s for the API server to review (%g/s, burst %d): retry later", id.Namespace, id.ServiceAccount, float64(a.accountReviews.rate), a.accountReviews.burst)
		}
		select {
		case a.reviewing <- struct{}{}:
		default:
			return nil, status.Errorf(codes.ResourceExhausted, "the Kubernetes API server has %d TokenReviews of this server to answer: retry later", MaxReviewsInFlight)
		}
		rid, err := func() (*k8sauth.Identity, error) {
			defer func() { <-a.reviewing }() // even if Review panics
			return a.review.Review(ctx, raw)
		}()
		if err != nil {
			return nil, err
		}
		if unknownKey != nil {
			// Only once the API server vouched for the token: a made-up
			// key ID says nothing about the file.
			if a.unknownJWKSKey != nil {
				a.unknownJWKSKey()
			}
			if a.staleJWKS != nil {
				a.staleJWKS(unknownKey)
			}
		}
		return agreed(id, rid)
	}
	return id, nil
}

// beforeReview refuses, without asking the API server, a token that no
// review could make acceptable for call c: one for a call that needs an
// administrator, or, when the JWKS verified the token as id, one for an
// enrollment whose cluster does not bind id's service account for its
// role. A token the JWKS did not verify (TokenReview alone, or a key the
// file lacks) is reviewed before its claims are looked at: answering from
// them would tell anyone with a self-signed token which clusters exist
// and what they bind (within the per-address bound on reviews).
func (a *Authenticator) beforeReview(ctx context.Context, id *k8sauth.Identity, c call) error {
	if c.adminOnly {
		// id is nil: verified tokens are refused without a review in
		// verifyK8s, as the service account they are.
		return &deniedBeforeReview{err: authority.ErrDenied} // authorize says which call
	}
	if id == nil || c.req == nil {
		return nil
	}
	actor := podActor(id)
	if err := a.auth.PreauthorizeK8s(ctx, actor, requestCluster(c.req), requestRole(c.req)); err != nil {
		return &deniedBeforeReview{actor: actor, err: err}
	}
	return nil
}

// agreed is the identity of a token that the API server vouches for as rid,
// and that the JWKS (when configured) proved to be id: both must name the
// same service account and pod.
func agreed(id, rid *k8sauth.Identity) (*k8sauth.Identity, error) {
	if id == nil {
		return rid, nil
	}
	if rid.Namespace != id.Namespace || rid.ServiceAccount != id.ServiceAccount || (rid.Pod != "" && rid.Pod != id.Pod) {
		return nil, fmt.Errorf("%w: the API server vouches for %s (pod %q), the token says %s (pod %q)", k8sauth.ErrReview, rid.Subject, rid.Pod, id.Subject, id.Pod)
	}
	return id, nil
}
