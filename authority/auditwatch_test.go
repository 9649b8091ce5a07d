package authority_test

import (
	"context"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
)

// TestTheServerVerifiesItsAuditTrailOnItsOwn: RunAuditVerifier reports an
// intact chain at once and again at each interval, whole each time, so an
// entry edited behind the server's back long after it was written is
// found at the next pass.
func TestTheServerVerifiesItsAuditTrailOnItsOwn(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	for _, name := range []string{"t1", "t2", "t3"} {
		e.CreateCluster(authority.CreateClusterRequest{Name: name})
	}
	run := func() (<-chan authority.AuditCheck, func()) {
		ctx, cancel := context.WithCancel(e.Ctx)
		checks := make(chan authority.AuditCheck, 100)
		done := make(chan struct{})
		go func() {
			defer close(done)
			e.Authority.RunAuditVerifier(ctx, 20*time.Millisecond, func(c authority.AuditCheck) {
				select {
				case checks <- c:
				default:
				}
			})
		}()
		return checks, func() { cancel(); <-done }
	}
	next := func(checks <-chan authority.AuditCheck) authority.AuditCheck {
		t.Helper()
		select {
		case c := <-checks:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("no verification reported in 10 s")
			return authority.AuditCheck{}
		}
	}

	checks, stop := run()
	if c := next(checks); !c.Intact || c.LastSeq < 3 || c.At.IsZero() {
		t.Fatalf("first pass over an intact trail: %+v, want intact through entry 3 or later", c)
	}
	e.CreateCluster(authority.CreateClusterRequest{Name: "t4"})
	for {
		if c := next(checks); !c.Intact {
			t.Fatalf("a pass over an intact trail: %+v", c)
		} else if c.LastSeq >= 4 {
			break // the new entry is verified too
		}
	}
	stop()

	if err := e.Store.Close(); err != nil {
		t.Fatal(err)
	}
	tamper(t, e.Path, 2, func(m map[string]any) { m["actor"] = "admin:someone-else" })
	e.Reopen()
	checks, stop = run()
	defer stop()
	if c := next(checks); c.Intact || c.FirstBad != 2 || c.Message == "" {
		t.Fatalf("a pass over a trail whose entry 2 was edited: %+v, want entry 2 named", c)
	}
}
