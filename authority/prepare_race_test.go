package authority_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/ca"
)

// hookedRand reads crypto/rand, and runs hook once, at the first read
// after it is armed.
type hookedRand struct {
	mu   sync.Mutex
	hook func()
}

func (r *hookedRand) Read(p []byte) (int, error) {
	r.mu.Lock()
	hook := r.hook
	r.hook = nil
	r.mu.Unlock()
	if hook != nil {
		hook()
	}
	return rand.Read(p)
}

// TestAPrepareOverlappingARecreatedClusterIsRefused: the next CA is made
// outside the transaction, from the cluster record read before. When
// another replica deletes the cluster and makes it again meanwhile (the
// lock is per process), with another key type and CA validity, the CA made
// for the old record must not join the new cluster's lineage.
func TestAPrepareOverlappingARecreatedClusterIsRefused(t *testing.T) {
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "race", KeyType: "ecdsa-p384", CAValidity: 10 * 365 * 24 * time.Hour, NoAutoRotate: true})
	r := &hookedRand{}
	// Replica A prepares; replica B (e.Authority) deletes and re-creates.
	a, err := authority.New(authority.Config{Store: e.Store, Now: e.Clock.Now, Rand: r})
	if err != nil {
		t.Fatal(err)
	}
	r.hook = func() {
		if err := e.Authority.DeleteCluster(e.Ctx, admin, "race"); err != nil {
			t.Errorf("delete on the other replica: %v", err)
		}
		e.CreateCluster(authority.CreateClusterRequest{Name: "race", KeyType: "ecdsa-p256", CAValidity: 2 * 365 * 24 * time.Hour, NoAutoRotate: true})
	}
	err = a.Prepare(e.Ctx, admin, "race", "internal")
	if !errors.Is(err, authority.ErrConflict) || !strings.Contains(err.Error(), "made again or changed") {
		t.Fatalf("a prepare across a delete and re-create: %v, want a conflict", err)
	}
	v, err := e.Authority.GetCluster(e.Ctx, "race")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range v.CAs {
		if c.State == ca.StatePrepared {
			t.Errorf("the re-created cluster has CA %s prepared, made for the deleted one", c.ID)
		}
	}
	// Run again, it prepares a CA of the new cluster's kind.
	if err := a.Prepare(e.Ctx, admin, "race", "internal"); err != nil {
		t.Fatal(err)
	}
	if v, err = e.Authority.GetCluster(e.Ctx, "race"); err != nil {
		t.Fatal(err)
	}
	prepared := 0
	for _, c := range v.CAs {
		if c.State != ca.StatePrepared {
			continue
		}
		prepared++
		pub, ok := c.Cert.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() || c.Cert.NotAfter.After(e.Clock.Now().Add(3*365*24*time.Hour)) {
			t.Errorf("the prepared CA %s has a %T key valid until %v, want the re-created cluster's P-256 for 2 years", c.ID, c.Cert.PublicKey, c.Cert.NotAfter)
		}
	}
	if prepared != 1 {
		t.Errorf("%d CAs prepared, want 1", prepared)
	}
}
