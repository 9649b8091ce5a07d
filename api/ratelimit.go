package api

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// limiter bounds enrollment requests per identity (an enrollment token, a
// Kubernetes service account in a namespace, an administrator token), so
// one leaked or looping credential cannot monopolise the signer. The burst
// is sized for a large cluster starting at once with one shared token.
type limiter struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	byActor map[string]*actorLimit
	pruned  time.Time
}

type actorLimit struct {
	l    *rate.Limiter
	seen time.Time
}

// maxTrackedIdentities bounds the limiter's memory; idle entries go first.
const maxTrackedIdentities = 100000

func newLimiter(perSecond float64, burst int) *limiter {
	if perSecond <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = int(perSecond)
	}
	return &limiter{rate: rate.Limit(perSecond), burst: burst, byActor: map[string]*actorLimit{}}
}

// allow takes one request of identity, or returns a ResourceExhausted
// status that says when to retry.
func (l *limiter) allow(identity string) error {
	if d := l.wait(identity); d > 0 {
		return status.Errorf(codes.ResourceExhausted, "enrollment rate limit of %g/s (burst %d) reached for %s: retry in %s", float64(l.rate), l.burst, identity, d)
	}
	return nil
}

// wait takes one request of identity and answers 0, or answers how long
// until it could (rounded to the millisecond) and takes nothing.
func (l *limiter) wait(identity string) time.Duration {
	if l == nil {
		return 0
	}
	// The time is read, and the bucket told, under the lock, so that each
	// bucket sees times in order: told an earlier time than its last, a
	// token bucket moves its clock back and refills the same interval
	// twice (x/time/rate does).
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	a, ok := l.byActor[identity]
	if !ok {
		if len(l.byActor) >= maxTrackedIdentities || now.Sub(l.pruned) > time.Minute {
			l.prune(now)
		}
		a = &actorLimit{l: rate.NewLimiter(l.rate, l.burst)}
		l.byActor[identity] = a
	}
	a.seen = now
	r := a.l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return max(d.Round(time.Millisecond), time.Millisecond)
	}
	return 0
}

// prune drops identities idle long enough for their bucket to be full.
func (l *limiter) prune(now time.Time) {
	full := time.Duration(float64(l.burst)/float64(l.rate)*float64(time.Second)) + time.Second
	for k, a := range l.byActor {
		if now.Sub(a.seen) > full {
			delete(l.byActor, k)
		}
	}
	l.pruned = now
}
