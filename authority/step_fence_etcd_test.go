package authority_test

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/internal/etcdtest"
	"github.com/flinkpki/flinkpki/store/etcd"
)

// TestARotationStepGoesThroughSteadyEnrollmentOnEtcd: on etcd a step reads
// every holder of the lineage and commits only if none changed meanwhile,
// so steady enrollment into a large cluster (a TaskManager restarting
// somewhere all the time) used to make every attempt lose, and the step
// never went through. The step now fences the cluster's issuances for the
// moment it takes: they wait, the step commits, and they go on.
func TestARotationStepGoesThroughSteadyEnrollmentOnEtcd(t *testing.T) {
	c := etcdtest.New(t, 1)
	var logs syncBuffer
	e := authoritytest.New(t, authoritytest.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))), onEtcd(c, etcd.Config{Prefix: "/fence/", MaxRetries: 2}))
	e.CreateCluster(authority.CreateClusterRequest{Name: "busy", CAValidity: 400 * day, LeafValidity: 30 * day})
	if err := e.Authority.Prepare(e.Ctx, admin, "busy", "internal"); err != nil {
		t.Fatal(err)
	}
	// Enough holders that the step's read spans several range requests.
	const holders, workers = 1200, 8
	enrollAll := func(from, to int) error {
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Go(func() {
				for i := from + w; i < to; i += workers {
					if _, err := e.EnrollAs(admin, "busy", "taskmanager", fmt.Sprintf("tm-%d", i)); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	if err := enrollAll(0, holders); err != nil {
		t.Fatalf("enroll the cluster's holders after prepare: %v", err)
	}

	// Steady enrollment: every worker re-enrolls holders until the step
	// is done, and a little after.
	var issued, after atomic.Int64
	var done atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	failed := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; ; i += workers {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := e.EnrollAs(admin, "busy", "taskmanager", fmt.Sprintf("tm-%d", i%holders)); err != nil {
					failed <- fmt.Errorf("an enrollment during the step: %w", err)
					return
				}
				issued.Add(1)
				if done.Load() {
					after.Add(1)
				}
			}
		})
	}
	for issued.Load() < 100 && len(failed) == 0 {
		time.Sleep(time.Millisecond)
	}
	err := e.Authority.Activate(e.Ctx, admin, "busy", "internal", false)
	done.Store(true)
	for after.Load() < 50 && len(failed) == 0 {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(failed)
	for ferr := range failed {
		t.Error(ferr)
	}
	if err != nil {
		t.Fatalf("activate under steady enrollment (%d issuances meanwhile): %v", issued.Load(), err)
	}
	if !strings.Contains(logs.String(), "holds the lineage's issuances back") {
		t.Fatalf("the step never lost to the %d issuances and never fenced them: this test no longer makes the contention it is about; log:\n%s", issued.Load(), logs.String())
	}
	if f, _ := stepFence(t, e, "busy"); !f.IsZero() {
		t.Fatalf("after the step the cluster's issuances are still held back until %v", f)
	}
	if l := lineage(t, e, "busy", ca.PurposeInternal); l.Active() == nil || l.Active().Generation != 2 {
		t.Fatalf("after the activation the active CA is %+v, want generation 2", l.Active())
	}
}
