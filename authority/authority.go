// Package authority is flinkpki's application core: it ties the domain
// packages (ca, issuer) to the store. It creates clusters, signs and records
// issuances, applies the CA lifecycle's safety rules, runs the automatic
// rotation schedule and writes the audit trail. It knows nothing of gRPC: the
// api package authenticates callers and maps errors to status codes.
package authority

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/flinkpki/flinkpki/store"
)

// Sentinel errors; api maps them (and those of ca, issuer and store) to
// gRPC codes in one place.
var (
	// ErrInvalid reports a request that can never succeed as written.
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound reports a cluster, holder or token that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists reports a cluster that already exists.
	ErrExists = errors.New("already exists")
	// ErrDenied reports a caller that is authenticated but not allowed.
	ErrDenied = errors.New("permission denied")
	// ErrUnauthenticated reports a missing, unknown, expired or spent credential.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrConflict reports a concurrent change; the caller may retry.
	ErrConflict = errors.New("concurrent change, retry")
	// ErrAuditBroken reports an audit trail whose hash chain does not
	// verify where a request needs it to.
	ErrAuditBroken = errors.New("the audit trail is broken")
	// ErrLastAdmin refuses an online revocation that would leave no
	// administrator token as long-lived as the longest valid now.
	ErrLastAdmin = errors.New("administration would end")
)

// Observer receives the events metrics are made of. All methods must be
// cheap and safe for concurrent use. A nil Observer in Config is a no-op.
type Observer interface {
	Issued(cluster, role string)
	Denied(reason string)
	// Rotations replaces the rotation gauges with what one whole scheduler
	// tick saw (nothing on a replica that does not lead).
	Rotations(waits []RotationWait)
}

// RotationWait is one lineage with automatic rotation on, as a scheduler
// tick left it.
type RotationWait struct {
	Cluster, Purpose string
	// Step is the step the lineage waits for: prepare, activate or retire.
	Step string
	// Blocked is true when Step is due but live holders hold it back.
	Blocked bool
	// Failed is true when the tick could not read or step the lineage (it
	// logged why); Step and Blocked are then unknown, and an observer keeps
	// what the last tick said.
	Failed bool
}

type nopObserver struct{}

func (nopObserver) Issued(string, string)    {}
func (nopObserver) Denied(string)            {}
func (nopObserver) Rotations([]RotationWait) {}

// Config wires an Authority. Nil fields get defaults.
type Config struct {
	Store    *store.Store
	Now      func() time.Time
	Rand     io.Reader
	Logger   *slog.Logger
	Observer Observer
	// KeyPool supplies server-side keys for bake; nil generates on demand.
	KeyPool KeySource
	// AuditMinAge is how old an audit entry must be before PruneAudit
	// removes it (0: any age), so that an administrator token, stolen or
	// not, cannot take its own recent actions out of the trail.
	AuditMinAge time.Duration
}

// Authority is safe for concurrent use.
type Authority struct {
	st     *store.Store
	minAge time.Duration // Config.AuditMinAge
	now    func() time.Time
	rand   io.Reader
	log    *slog.Logger
	obs    Observer
	keys   KeySource
	lineMu sync.RWMutex
	lines  map[string]*lineageState // cluster/purpose -> signing state, by epoch
	// sched is the scheduler's next steps per cluster, by epoch.
	schedMu sync.Mutex
	sched   map[string]scheduled
	lockMu  sync.Mutex
	locks   map[string]*clusterMutex
	// gate, when set, decides which refusals of callers other than
	// administrators get an audit entry of their own (SetRefusalGate).
	gate RefusalGate
	// bakeMu guards bakes: the bakes in flight per enrollment token
	// (reserveBake).
	bakeMu sync.Mutex
	bakes  map[string]int
	// waitLogged is when the scheduler last logged each lineage that waits
	// (blocked, or failing), so a wait of a week is a line an hour, not one
	// a tick (schedulerLogEvery).
	waitMu     sync.Mutex
	waitLogged map[string]time.Time
	// fences are the polls of rotation steps' fences that issuances wait
	// for, by cluster/purpose (fenceWatch).
	fenceMu sync.Mutex
	fences  map[string]chan struct{}
}

// Logger returns the logger the authority writes to, for the periodic
// work around it (a panic in a tick is logged there).
func (a *Authority) Logger() *slog.Logger { return a.log }

// New returns an Authority.
func New(cfg Config) (*Authority, error) {
	if cfg.Store == nil {
		return nil, errors.New("authority: a store is required")
	}
	a := &Authority{st: cfg.Store, now: cfg.Now, rand: cfg.Rand, log: cfg.Logger, obs: cfg.Observer, keys: cfg.KeyPool, minAge: cfg.AuditMinAge}
	if a.now == nil {
		a.now = time.Now
	}
	if a.rand == nil {
		a.rand = rand.Reader
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.obs == nil {
		a.obs = nopObserver{}
	}
	if a.keys == nil {
		a.keys = onDemandKeys{rand: a.rand}
	}
	a.locks = map[string]*clusterMutex{}
	a.lines = map[string]*lineageState{}
	a.sched = map[string]scheduled{}
	a.fences = map[string]chan struct{}{}
	return a, nil
}

// clusterLock serialises lifecycle changes of one cluster in this process,
// so CA creation (slow, outside the transaction) is not done twice. The
// transaction still re-checks the stored state, which is what protects
// several replicas.
// An entry lives while someone holds or waits for it, so the map holds the
// names in use, not every name ever asked for.
func (a *Authority) clusterLock(name string) func() {
	a.lockMu.Lock()
	m, ok := a.locks[name]
	if !ok {
		m = &clusterMutex{}
		a.locks[name] = m
	}
	m.users++
	a.lockMu.Unlock()
	m.Lock()
	return func() {
		m.Unlock()
		a.lockMu.Lock()
		if m.users--; m.users == 0 {
			delete(a.locks, name)
		}
		a.lockMu.Unlock()
	}
}

// clusterMutex is one cluster's lock and how many hold or wait for it
// (guarded by Authority.lockMu).
type clusterMutex struct {
	sync.Mutex
	users int
}

// Actor is who asked: an administrator, an enrollment token or a Kubernetes
// workload. Its String form is what the audit trail records.
type Actor struct {
	Kind           ActorKind
	ID             string // administrator or enrollment token id; an anonymous request's address
	Namespace      string
	ServiceAccount string
	Pod            string
	// PodUID is the UID of the pod a service-account token was bound to:
	// the audit trail of its issuances names it, so that two instances
	// of one pod name (a StatefulSet's, or a copied token of an earlier
	// one) can be told apart.
	PodUID string
	// TokenCluster and TokenRole scope an enrollment token, and
	// TokenClusterCreated names the incarnation of TokenCluster it was
	// made for (zero for tokens made before it was recorded).
	TokenCluster        string
	TokenRole           string
	TokenClusterCreated time.Time
}

// ActorKind tells how the actor authenticated.
type ActorKind string

// The actor kinds.
const (
	ActorAnonymous  ActorKind = "anonymous"
	ActorAdmin      ActorKind = "admin"
	ActorEnrollment ActorKind = "enrollment-token"
	ActorK8s        ActorKind = "k8s"
	ActorSystem     ActorKind = "system"
)

// String is the audit form of the actor.
func (a Actor) String() string {
	switch a.Kind {
	case ActorAdmin:
		return "admin:" + a.ID
	case ActorEnrollment:
		return "enrollment-token:" + a.ID
	case ActorK8s:
		return fmt.Sprintf("k8s:%s/%s/pod=%s", a.Namespace, a.ServiceAccount, a.Pod)
	case ActorSystem:
		return "system:" + a.ID
	}
	if a.ID != "" {
		return "anonymous:" + a.ID // the address the request came from
	}
	return "anonymous"
}

// Source is who a flood of refusals is counted against: the service
// account for a Kubernetes workload (all its pods), the actor otherwise.
func (a Actor) Source() string {
	if a.Kind == ActorK8s {
		return "k8s:" + a.Namespace + "/" + a.ServiceAccount
	}
	return a.String()
}

// System is the actor of the automatic rotation schedule.
var System = Actor{Kind: ActorSystem, ID: "scheduler"}

// audit appends one entry in tx.
func (a *Authority) audit(tx *store.Txn, actor Actor, cluster, action, outcome, reason string, details map[string]string) error {
	return tx.AppendAudit(&store.AuditEntry{
		Time: a.now().UTC(), Actor: actor.String(), Cluster: cluster,
		Action: action, Outcome: outcome, Reason: reason, Details: details,
	})
}

// AuditBackup records that actor took a copy of the store: n bytes of it
// were sent, and err is why the copy stopped short (nil when it did not).
func (a *Authority) AuditBackup(ctx context.Context, actor Actor, n int64, err error) error {
	outcome, reason := "ok", ""
	if err != nil {
		outcome, reason = "error", err.Error()
	}
	return a.st.Update(ctx, func(tx *store.Txn) error {
		return a.audit(tx, actor, "", "store.backup", outcome, reason, map[string]string{"bytes": strconv.FormatInt(n, 10)})
	})
}

// invalid marks err, which says in its own words what is wrong with a
// request (issuer's, ca's), as ErrInvalid without restating it: "invalid
// request: invalid certificate request: ..." would say it twice.
func invalid(err error) error { return marked{err, ErrInvalid} }

// marked is err, which says in its own words what happened, reported as
// the sentinel as (for api's status codes and ReasonOf) without its text.
type marked struct{ err, as error }

func (e marked) Error() string        { return e.err.Error() }
func (e marked) Unwrap() error        { return e.err }
func (e marked) Is(target error) bool { return target == e.as }
