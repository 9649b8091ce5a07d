package authority

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flinkpki/flinkpki/ca"
)

// ErrBusy reports that the server is at its bound of concurrent expensive
// work; the caller may retry.
var ErrBusy = fmt.Errorf("server busy")

// KeyPool supplies server-side keys for bake. RSA key generation costs tens
// of milliseconds per key on a 2-core machine, so a burst of image builds
// would queue behind it: the pool keeps up to Size ready keys per RSA key
// type that has been asked for, in memory only, and refills them while the
// server is idle. Keys are handed out once and never stored. Generation on
// demand is bounded to Workers at a time.
type KeyPool struct {
	size      int
	rand      io.Reader
	sem       chan struct{}
	idle      time.Duration
	refillers int
	lastUse   atomic.Int64 // unix nanos of the last issuance of any kind
	log       *slog.Logger
	// refill makes the pool's keys: ca.KeyType.GenerateKey (tests
	// replace it).
	refill func(ca.KeyType, io.Reader) (crypto.Signer, error)

	mu      sync.Mutex
	pools   map[ca.KeyType]chan crypto.Signer
	filling map[ca.KeyType]int // keys being generated for each pool
	wake    chan struct{}
}

// KeyPoolConfig sizes a KeyPool. Zero values pick defaults.
type KeyPoolConfig struct {
	Size    int           // ready keys per pooled key type (default 200)
	Workers int           // concurrent generations on demand (default GOMAXPROCS)
	Idle    time.Duration // quiet time before refilling (default 1s)
	// Refillers is how many keys are generated at once while refilling
	// (default GOMAXPROCS: an idle server has its cores to spare, and a
	// request that arrives meanwhile waits for at most one generation).
	Refillers int
	Rand      io.Reader
	// Prewarm lists key types to fill from the start.
	Prewarm []ca.KeyType
	// Logger hears a refill that panicked (default: slog's default).
	Logger *slog.Logger
}

// NewKeyPool returns a pool; call Run to refill it in the background.
func NewKeyPool(cfg KeyPoolConfig) *KeyPool {
	if cfg.Size <= 0 {
		cfg.Size = 200
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Idle <= 0 {
		cfg.Idle = time.Second
	}
	if cfg.Refillers <= 0 {
		cfg.Refillers = runtime.GOMAXPROCS(0)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &KeyPool{size: cfg.Size, rand: cfg.Rand, sem: make(chan struct{}, cfg.Workers), idle: cfg.Idle, refillers: cfg.Refillers, log: cfg.Logger, refill: ca.KeyType.GenerateKey,
		pools: map[ca.KeyType]chan crypto.Signer{}, filling: map[ca.KeyType]int{}, wake: make(chan struct{}, 1)}
	for _, kt := range cfg.Prewarm {
		p.pool(kt)
	}
	return p
}

func pooled(kt ca.KeyType) bool { return kt.Algorithm() == x509.RSA }

func (p *KeyPool) pool(kt ca.KeyType) chan crypto.Signer {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.pools[kt]
	if !ok && pooled(kt) {
		c = make(chan crypto.Signer, p.size)
		p.pools[kt] = c
	}
	return c
}

// Touch implements KeySource: it marks activity, which postpones refilling.
func (p *KeyPool) Touch() { p.lastUse.Store(time.Now().UnixNano()) }

// Key implements KeySource.
func (p *KeyPool) Key(ctx context.Context, kt ca.KeyType) (crypto.Signer, error) {
	p.Touch()
	if c := p.pool(kt); c != nil {
		select {
		case k := <-c:
			p.signal()
			return k, nil
		default:
		}
		p.signal()
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: no key generator free before the deadline; retry", ErrBusy)
	}
	defer func() { <-p.sem }()
	return kt.GenerateKey(p.rand)
}

func (p *KeyPool) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run refills the pools whenever the server has been idle, with Refillers
// generations at once, until ctx ends.
func (p *KeyPool) Run(ctx context.Context) {
	p.signal()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		}
		var wg sync.WaitGroup
		for range p.refillers {
			wg.Go(func() {
				for p.refillOne(ctx) {
				}
			})
		}
		wg.Wait()
	}
}

// refillOne waits for idleness and adds one key; false when all are full.
func (p *KeyPool) refillOne(ctx context.Context) bool {
	for {
		quiet := time.Since(time.Unix(0, p.lastUse.Load()))
		if quiet >= p.idle {
			break
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(p.idle - quiet):
		}
	}
	p.mu.Lock()
	var kt ca.KeyType
	var c chan crypto.Signer
	for t, ch := range p.pools {
		if len(ch)+p.filling[t] < cap(ch) { // a slot no other refiller is filling
			kt, c = t, ch
			p.filling[t]++
			break
		}
	}
	p.mu.Unlock()
	if c == nil {
		return false
	}
	k, err := p.generate(kt)
	if err != nil {
		return false
	}
	select {
	case c <- k:
	default:
	}
	return ctx.Err() == nil
}

// generate makes one key for the pool and releases its filling slot. A
// panic in the generation (a bug, or a broken random source) is logged and
// stops this refill, not the server: the pool serves what it holds and
// Key generates on demand; the next wake-up tries again.
func (p *KeyPool) generate(kt ca.KeyType) (k crypto.Signer, err error) {
	defer func() {
		p.mu.Lock()
		p.filling[kt]--
		p.mu.Unlock()
		if r := recover(); r != nil {
			err = fmt.Errorf("key generation panicked: %v", r)
			p.log.Error("the bake key pool's refill panicked; bake generates keys on demand until a refill succeeds",
				slog.String("key_type", string(kt)), slog.String("panic", fmt.Sprint(r)), slog.String("stack", string(debug.Stack())))
		}
	}()
	return p.refill(kt, p.rand)
}

// Ready reports the number of ready keys per pooled key type.
func (p *KeyPool) Ready() map[ca.KeyType]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[ca.KeyType]int{}
	for t, c := range p.pools {
		out[t] = len(c)
	}
	return out
}
