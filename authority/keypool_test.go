package authority_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/ca"
)

// TestKeyPoolHandsOutEachKeyOnceAndRefillsOnlyWhenIdle: the pool fills to
// its size and no further, every key leaves it once, nothing is generated
// for it while requests keep arriving, and it fills again once they stop.
func TestKeyPoolHandsOutEachKeyOnceAndRefillsOnlyWhenIdle(t *testing.T) {
	// The idle time is long against the 25 ms between touches below, so a
	// loaded CI machine would have to stall a sleep 40-fold to break it.
	const size, idle = 3, time.Second
	rsa2048 := ca.KeyType("rsa-2048")
	pool := authority.NewKeyPool(authority.KeyPoolConfig{Size: size, Idle: idle, Refillers: 2, Prewarm: []ca.KeyType{rsa2048}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go pool.Run(ctx)

	waitReady := func(want int) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute) // RSA generation under -race is slow
		for pool.Ready()[rsa2048] != want {
			if time.Now().After(deadline) {
				t.Fatalf("pool holds %d ready keys, want %d", pool.Ready()[rsa2048], want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitReady(size)
	time.Sleep(idle + idle/2) // two refillers, still idle: nothing beyond the size
	if n := pool.Ready()[rsa2048]; n != size {
		t.Fatalf("an idle full pool holds %d keys, want %d", n, size)
	}

	seen := map[string]bool{}
	for range size {
		k, err := pool.Key(ctx, rsa2048)
		if err != nil {
			t.Fatal(err)
		}
		n := k.Public().(*rsa.PublicKey).N.String()
		if seen[n] {
			t.Fatal("the pool handed out the same key twice")
		}
		seen[n] = true
	}
	if n := pool.Ready()[rsa2048]; n != 0 {
		t.Fatalf("after taking %d keys the pool holds %d, want 0", size, n)
	}

	// Busy: activity every 25 ms, for twice the idle time, keeps the refill
	// waiting.
	for range 80 {
		pool.Touch()
		time.Sleep(idle / 40)
		if n := pool.Ready()[rsa2048]; n != 0 {
			t.Fatalf("the pool refilled to %d while requests kept arriving", n)
		}
	}
	waitReady(size) // quiet again: it refills

	// Other key types are made on demand and never kept.
	if _, err := pool.Key(ctx, ca.KeyTypeECDSAP256); err != nil {
		t.Fatal(err)
	}
	if _, kept := pool.Ready()[ca.KeyTypeECDSAP256]; kept {
		t.Error("the pool keeps ECDSA keys; only RSA generation is slow enough to pool")
	}
}

// TestAPanickingRefillIsLoggedAndThePoolGoesOn: a refill whose key
// generation panics (a bug, a broken random source) is logged on the
// pool's logger and does not end the process; bake still gets keys on
// demand, and the next wake-up fills the pool.
func TestAPanickingRefillIsLoggedAndThePoolGoesOn(t *testing.T) {
	p256 := ca.KeyType("ecdsa-p256") // the generation is replaced: any type
	rsa2048 := ca.KeyType("rsa-2048")
	var logs syncBuffer
	pool := authority.NewKeyPool(authority.KeyPoolConfig{Size: 2, Idle: time.Millisecond, Refillers: 1,
		Prewarm: []ca.KeyType{rsa2048}, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	var calls atomic.Int32
	pool.RefillWith(func(ca.KeyType) (crypto.Signer, error) {
		if calls.Add(1) == 1 {
			panic("the random source broke") // a bug below the pool
		}
		return p256.GenerateKey(nil)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go pool.Run(ctx)

	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "refill panicked") {
		if time.Now().After(deadline) {
			t.Fatalf("the panic was not logged; log:\n%s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if out := logs.String(); !strings.Contains(out, "the random source broke") || !strings.Contains(out, `"key_type":"rsa-2048"`) {
		t.Errorf("the log lacks the panic or the key type:\n%s", out)
	}
	// The panicked refill released its slot: a later wake-up fills both.
	if _, err := pool.Key(ctx, rsa2048); err != nil {
		t.Fatal(err)
	}
	for pool.Ready()[rsa2048] != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("after the panic the pool holds %d keys, want 2 (%d refills)", pool.Ready()[rsa2048], calls.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

// touchCounter is a KeySource that makes keys on demand and counts the
// issuances announced to it (Touch), which hold a pool's refill back.
type touchCounter struct{ touches atomic.Int32 }

func (c *touchCounter) Touch() { c.touches.Add(1) }
func (c *touchCounter) Key(_ context.Context, kt ca.KeyType) (crypto.Signer, error) {
	return kt.GenerateKey(rand.Reader)
}

// TestARefusedEnrollmentDoesNotHoldTheKeyPoolsRefillBack: the pool refills
// after a second without issuance; a caller refused before anything is
// issued (a pod of another namespace, once a second) must not count as
// issuance, or it keeps the pool empty for the next image build's bakes.
func TestARefusedEnrollmentDoesNotHoldTheKeyPoolsRefillBack(t *testing.T) {
	t.Parallel()
	keys := &touchCounter{}
	e := authoritytest.New(t, authoritytest.WithKeyPool(keys))
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders"})
	stranger := authority.Actor{Kind: authority.ActorK8s, Namespace: "evil", ServiceAccount: "x", Pod: "p"}
	_, csr, err := authoritytest.NewCSR("ecdsa-p256", "p")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Authority.Enroll(e.Ctx, stranger, authority.EnrollRequest{Cluster: "orders", Role: "taskmanager", CSR: csr}); !errors.Is(err, authority.ErrDenied) {
		t.Fatalf("enroll as a pod of another namespace: %v; want ErrDenied", err)
	}
	if _, err := e.Authority.Bake(e.Ctx, stranger, authority.EnrollRequest{Cluster: "orders", Role: "taskmanager", Holder: "b"}); err == nil {
		t.Fatal("a pod baked")
	}
	if n := keys.touches.Load(); n != 0 {
		t.Fatalf("two refused requests told the key pool of %d issuances; want none", n)
	}
	e.Enroll("orders", "taskmanager", "tm-0")
	if n := keys.touches.Load(); n == 0 {
		t.Fatal("an issuance did not tell the key pool")
	}
}
