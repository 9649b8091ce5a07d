package authority_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
)

// TestACallerThatWentAwayIsNoRefusal runs each administrative write with a
// context that has already ended. Nothing of it commits, and the audit
// trail records no refusal: the caller went away, nobody was refused. The
// failure is still counted in the metrics, by its reason, where the
// server's error alert reads it. (These call sites audited a store fault
// or a cancellation as "denied" until the twenty-fifth session; issuance
// did not since the twenty-fourth.)
func TestACallerThatWentAwayIsNoRefusal(t *testing.T) {
	obs := &recorder{}
	e := authoritytest.New(t, authoritytest.WithObserver(obs))
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders"})
	_, tok, err := e.Authority.CreateToken(e.Ctx, system, "orders", "taskmanager", time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	e.Enroll("orders", "taskmanager", "orders-taskmanager-1-1")
	before := len(e.Audit(""))
	gone, cancel := context.WithCancel(e.Ctx)
	cancel()
	on := true
	calls := map[string]func() error{
		"cluster.create": func() error {
			_, err := e.Authority.CreateCluster(gone, authoritytest.Admin, authority.CreateClusterRequest{Name: "analytics"})
			return err
		},
		"cluster.update": func() error {
			_, err := e.Authority.UpdateCluster(gone, authoritytest.Admin, authority.UpdateClusterRequest{Name: "orders", AutoRotate: &on})
			return err
		},
		"token.revoke": func() error {
			_, err := e.Authority.RevokeToken(gone, authoritytest.Admin, tok.ID)
			return err
		},
		"ca.prepare":  func() error { return e.Authority.Prepare(gone, authoritytest.Admin, "orders", "internal") },
		"ca.activate": func() error { return e.Authority.Activate(gone, authoritytest.Admin, "orders", "internal", false) },
		"token.create": func() error {
			_, _, err := e.Authority.CreateToken(gone, system, "orders", "taskmanager", time.Hour, 1)
			return err
		},
		"cluster.delete": func() error { return e.Authority.DeleteCluster(gone, authoritytest.Admin, "orders") },
		"holder.release": func() error {
			_, err := e.Authority.ReleaseHolder(gone, authoritytest.Admin, "orders", "orders-taskmanager-1-1", "")
			return err
		},
		"admin_token.create": func() error {
			_, _, err := e.Authority.CreateAdminToken(gone, authoritytest.Admin, "ops", time.Hour)
			return err
		},
	}
	for action, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with its caller gone: %v; want context.Canceled", action, err)
		}
	}
	for _, a := range e.Audit("")[before:] {
		t.Errorf("audit entry after the calls whose caller had gone: %s %s %s (%s)", a.Cluster, a.Action, a.Outcome, a.Reason)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if got := obs.denied["canceled"]; got != len(calls) {
		t.Errorf("counted %d failures as canceled (%v); want %d, one per call", got, obs.denied, len(calls))
	}
}
