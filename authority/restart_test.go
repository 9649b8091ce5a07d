package authority_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/store"
)

// TestRotationStateSurvivesARestartInEveryPhase reopens the store file (a
// server restart) after each lifecycle step: the status is identical, and
// the new Authority signs with the right CA, whose key it unseals from the
// store, and hands out the right trust bundle.
func TestRotationStateSurvivesARestartInEveryPhase(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "r1", NoAutoRotate: true})
	prev := e.Enroll("r1", "jobmanager", "jm-0")
	phases := []struct {
		name   string
		step   func() error
		signer string
		trusts []string
	}{
		{"after create", func() error { return nil }, "internal-1", []string{"internal-1"}},
		{"after prepare", func() error { return e.Authority.Prepare(e.Ctx, admin, "r1", "internal") }, "internal-1", []string{"internal-1", "internal-2"}},
		{"after activate", func() error { return e.Authority.Activate(e.Ctx, admin, "r1", "internal", false) }, "internal-2", []string{"internal-1", "internal-2"}},
		{"after retire", func() error { return e.Authority.Retire(e.Ctx, admin, "r1", "internal", false) }, "internal-2", []string{"internal-2"}},
	}
	for _, p := range phases {
		if err := p.step(); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		before := summary(status(t, e, "r1"))
		e.Reopen()
		if after := summary(status(t, e, "r1")); after != before {
			t.Errorf("%s: status changed across a restart:\nbefore:\n%s\nafter:\n%s", p.name, before, after)
		}
		l := lineage(t, e, "r1", ca.PurposeInternal)
		if got := strings.Join(l.TrustIDs(), ","); got != strings.Join(p.trusts, ",") {
			t.Fatalf("%s: lineage %s, want %v", p.name, got, p.trusts)
		}
		// Re-enroll jm-0, so it does not block the next step, and check
		// the fresh credentials talk to the previous ones.
		c := e.Enroll("r1", "jobmanager", "jm-0")
		signer := l[slices.IndexFunc(l, func(c *ca.CA) bool { return c.ID == p.signer })]
		wantCreds(t, c, signer, l.TrustBundle()...)
		mustTalk(t, c, prev)
		prev = c
	}
}

// TestReopeningWithAnotherKeyEncryptionKeyIsRefused guards the sealed CA
// keys: a store opened with the wrong key-encryption key is refused before
// anything reads a key.
func TestReopeningWithAnotherKeyEncryptionKeyIsRefused(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "k1"})
	if err := e.Store.Close(); err != nil {
		t.Fatal(err)
	}
	wrong := make([]byte, store.KEKSize)
	if _, err := authoritytest.OpenStore(e.Ctx, e.Path, wrong); !errors.Is(err, store.ErrWrongKEK) {
		t.Fatalf("open with another key-encryption key: got %v, want store.ErrWrongKEK", err)
	}
	e.Reopen() // the right key still opens it
	if _, err := e.Authority.GetCluster(e.Ctx, "k1"); err != nil {
		t.Errorf("cluster lost after reopening with the right key: %v", err)
	}
}
