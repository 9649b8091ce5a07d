package authority_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/token"
)

// TestAnEnrollmentFailsOnlyIfNothingOfItCommitted sends 1,000 enrollments
// at once with deadlines of 1 to 100 ms, so that many deadlines pass while
// their issuance waits for a commit or is being committed. Whatever the
// timing, each caller is answered as its issuance ended: every certificate
// handed out spent one token use and recorded one holder and one "ok"
// entry, every failure none of them, and a caller that went away is no
// refusal in the audit trail (a security review found issuances committed
// after their caller had been told they failed, and audited as refused).
func TestAnEnrollmentFailsOnlyIfNothingOfItCommitted(t *testing.T) {
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders"})
	const uses = 100000
	raw, _, err := e.Authority.CreateToken(e.Ctx, system, "orders", "taskmanager", time.Hour, uses)
	if err != nil {
		t.Fatal(err)
	}
	p, err := token.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	actor, err := e.Authority.Authenticate(e.Ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	_, csr, err := authoritytest.NewCSR("ecdsa-p256", "tm")
	if err != nil {
		t.Fatal(err)
	}
	var answered, failed atomic.Int32
	var wg sync.WaitGroup
	for i := range 1000 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1000+rand.IntN(99000))*time.Microsecond)
			defer cancel()
			_, err := e.Authority.Enroll(ctx, actor, authority.EnrollRequest{Cluster: "orders", Role: "taskmanager", Holder: fmt.Sprintf("orders-taskmanager-1-%d", i), CSR: csr})
			if err == nil {
				answered.Add(1)
			} else {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	toks, _, err := e.Authority.ListTokens(e.Ctx, "orders", "", 0)
	if err != nil || len(toks) != 1 {
		t.Fatalf("ListTokens: %v, %d tokens", err, len(toks))
	}
	holders, err := e.Authority.ListHolders(e.Ctx, "orders", false)
	if err != nil {
		t.Fatal(err)
	}
	okEntries, refusals := 0, 0
	for _, a := range e.Audit("orders") {
		switch {
		case a.Action == "enroll" && a.Outcome == "ok":
			okEntries++
		case a.Action == "enroll" && a.Outcome == "denied":
			refusals++
		}
	}
	n := int(answered.Load())
	t.Logf("%d answered with a certificate, %d failed", n, failed.Load())
	if n == 0 || failed.Load() == 0 {
		t.Fatalf("%d enrollments answered, %d failed: the deadlines did not split them, so nothing was tested; widen the range of deadlines", n, failed.Load())
	}
	if spent := uses - toks[0].UsesLeft; spent != n || len(holders) != n || okEntries != n {
		t.Errorf("%d callers got a certificate, but %d token uses were spent, %d holders recorded and %d issuances audited", n, spent, len(holders), okEntries)
	}
	if refusals != 0 {
		t.Errorf("%d enrollments whose caller went away were audited as refused", refusals)
	}
}
