package authority_test

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/ca"
)

// TestOnlySigningCAsStayCached: the scheduler's tick, the expiry gauges and
// the listings read every CA of every cluster; only the CAs that signed
// stay in memory with their keys, so a server with thousands of clusters
// does not keep all their certificates.
func TestOnlySigningCAsStayCached(t *testing.T) {
	e := authoritytest.New(t)
	for i := range 20 {
		e.CreateCluster(authority.CreateClusterRequest{Name: fmt.Sprintf("c%02d", i), CAValidity: 400 * 24 * time.Hour, LeafValidity: 30 * 24 * time.Hour})
	}
	if _, err := e.Authority.Tick(e.Ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Authority.ListClusters(e.Ctx, "", 100); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Authority.Expiries(e.Ctx, "", 100); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Authority.Status(e.Ctx, "c07"); err != nil {
		t.Fatal(err)
	}
	if got := e.Authority.SigningCAs(); len(got) != 0 {
		t.Errorf("after a tick, a listing and the expiry gauges over 20 clusters (40 CAs) the keys of %v are open, want none", got)
	}
	e.Enroll("c03", "taskmanager", "tm-0")
	e.Enroll("c03", "taskmanager", "tm-1")
	if got, want := e.Authority.SigningCAs(), []string{"c03/internal-1"}; !slices.Equal(got, want) {
		t.Errorf("after two enrollments in one cluster the keys of %v are open, want %v", got, want)
	}
}

// TestIdleSigningKeysLeaveMemory: a CA's opened key stays in memory while
// its lineage issues and leaves SignerIdle after the last issuance; the
// next one opens it again from the store.
func TestIdleSigningKeysLeaveMemory(t *testing.T) {
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "idle"})
	e.CreateCluster(authority.CreateClusterRequest{Name: "busy"})
	e.Enroll("idle", "taskmanager", "tm-0")
	e.Enroll("busy", "jobmanager", "jm-0")
	e.Enroll("busy", "rest-client", "jm-0") // the REST lineage too
	all := []string{"busy/internal-1", "busy/rest-1", "idle/internal-1"}
	if got := e.Authority.SigningCAs(); !slices.Equal(got, all) {
		t.Fatalf("after enrolling, the keys of %v are open, want %v", got, all)
	}
	e.Clock.Add(authority.SignerIdle - time.Minute)
	e.Enroll("busy", "jobmanager", "jm-1")
	e.Enroll("busy", "rest-client", "jm-1")
	if n := e.Authority.ForgetIdleSigners(authority.SignerIdle); n != 0 {
		t.Errorf("%s after the last issuance ForgetIdleSigners dropped %d states, want none", authority.SignerIdle-time.Minute, n)
	}
	e.Clock.Add(time.Minute)
	if n := e.Authority.ForgetIdleSigners(authority.SignerIdle); n != 1 {
		t.Errorf("ForgetIdleSigners dropped %d states %s after idle's last issuance, want 1", n, authority.SignerIdle)
	}
	if got, want := e.Authority.SigningCAs(), all[:2]; !slices.Equal(got, want) {
		t.Errorf("after the sweep the keys of %v are open, want %v", got, want)
	}
	c := e.Enroll("idle", "taskmanager", "tm-1")
	if got := c.Issuer().Subject.CommonName; c.Leaf().CheckSignatureFrom(c.Issuer()) != nil {
		t.Errorf("the leaf issued after the sweep does not verify against %q", got)
	}
	if got := e.Authority.SigningCAs(); !slices.Equal(got, all) {
		t.Errorf("an issuance after the sweep left the keys of %v open, want %v", got, all)
	}
	e.Clock.Add(authority.SignerIdle)
	if n := e.Authority.ForgetIdleSigners(authority.SignerIdle); n != 3 {
		t.Errorf("ForgetIdleSigners dropped %d states after %s of silence, want all 3", n, authority.SignerIdle)
	}
}

// TestARotationLetsTheRetiredKeyGo: a new epoch with the same active CA
// (prepare) keeps the opened key instead of unsealing it again; activation
// opens the next CA's key, and the retiring CA's key is no longer held.
func TestARotationLetsTheRetiredKeyGo(t *testing.T) {
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "r", NoAutoRotate: true})
	e.Enroll("r", "taskmanager", "tm-0")
	first := e.Authority.SigningKey("r", ca.PurposeInternal)
	if first == nil {
		t.Fatal("no key held after an enrollment")
	}
	if err := e.Authority.Prepare(e.Ctx, admin, "r", "internal"); err != nil {
		t.Fatal(err)
	}
	e.Enroll("r", "taskmanager", "tm-0") // trusts the next CA now
	if k := e.Authority.SigningKey("r", ca.PurposeInternal); k != first {
		t.Error("after prepare the lineage's state holds another key object for the same active CA: it was unsealed again")
	}
	if err := e.Authority.Activate(e.Ctx, admin, "r", "internal", false); err != nil {
		t.Fatal(err)
	}
	c := e.Enroll("r", "taskmanager", "tm-1")
	if got, want := e.Authority.SigningCAs(), []string{"r/internal-2"}; !slices.Equal(got, want) {
		t.Errorf("after activation and an issuance the keys of %v are open, want %v only", got, want)
	}
	if k := e.Authority.SigningKey("r", ca.PurposeInternal); k == first || !c.Issuer().PublicKey.(*ecdsa.PublicKey).Equal(k.Public()) {
		t.Error("after activation the held key is not the new active CA's")
	}
}

// TestDeletingAClusterDropsItsKeys: the keys of a deleted cluster leave
// memory with it, without waiting for the sweep.
func TestDeletingAClusterDropsItsKeys(t *testing.T) {
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "gone"})
	e.CreateCluster(authority.CreateClusterRequest{Name: "kept"})
	e.Enroll("gone", "jobmanager", "jm-0")
	e.Enroll("kept", "taskmanager", "tm-0")
	if err := e.Authority.DeleteCluster(e.Ctx, admin, "gone"); err != nil {
		t.Fatal(err)
	}
	if got, want := e.Authority.SigningCAs(), []string{"kept/internal-1"}; !slices.Equal(got, want) {
		t.Errorf("after deleting cluster gone the keys of %v are open, want %v", got, want)
	}
}

// TestRunSignerSweeperSweeps: what serve starts drops idle states on its
// own.
func TestRunSignerSweeperSweeps(t *testing.T) {
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "s"})
	e.Enroll("s", "taskmanager", "tm-0")
	ctx, cancel := context.WithCancel(e.Ctx)
	done := make(chan struct{})
	go func() { e.Authority.RunSignerSweeper(ctx, 5*time.Millisecond, authority.SignerIdle); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(50 * time.Millisecond)
	if got := e.Authority.SigningCAs(); len(got) != 1 {
		t.Fatalf("before the lineage was idle the sweeper left %v, want its one CA", got)
	}
	e.Clock.Add(authority.SignerIdle)
	for deadline := time.Now().Add(10 * time.Second); len(e.Authority.SigningCAs()) > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the lineage went idle the sweeper still holds %v", e.Authority.SigningCAs())
		}
	}
}
