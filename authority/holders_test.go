package authority_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/store"
)

// TestHoldersComeInPagesThatResumeWhereTheLastEnded: paging through a
// cluster's holders returns each once, in order, skips the expired ones
// unless asked for them, and refuses a page token this server did not
// return.
func TestHoldersComeInPagesThatResumeWhereTheLastEnded(t *testing.T) {
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "orders", CAValidity: 400 * day, LeafValidity: 30 * day})
	for i := range 10 {
		e.Enroll("orders", "taskmanager", fmt.Sprintf("old-%02d", i))
	}
	e.Clock.Add(20 * day)
	for i := range 13 {
		e.Enroll("orders", "taskmanager", fmt.Sprintf("tm-%02d", i))
	}
	e.Clock.Add(15 * day) // the old-* leaves have expired
	pages := func(includeExpired bool) (names []string, calls int) {
		t.Helper()
		for token := ""; ; {
			hs, next, err := e.Authority.ListHoldersPage(e.Ctx, "orders", includeExpired, token, 4)
			if err != nil {
				t.Fatal(err)
			}
			if len(hs) > 4 {
				t.Fatalf("a page of 4 holds %d holders", len(hs))
			}
			for _, h := range hs {
				names = append(names, h.Name)
			}
			calls++
			if token = next; token == "" {
				return names, calls
			}
		}
	}
	live, calls := pages(false)
	if len(live) != 13 || live[0] != "tm-00" || live[12] != "tm-12" || calls != 4 {
		t.Fatalf("live holders in pages of 4: %v in %d calls; want tm-00 to tm-12 in 4", live, calls)
	}
	for i := 1; i < len(live); i++ {
		if live[i-1] >= live[i] {
			t.Fatalf("pages are out of order or repeat: %v", live)
		}
	}
	if all, _ := pages(true); len(all) != 23 || all[0] != "old-00" {
		t.Fatalf("all holders in pages of 4: %v; want the 10 expired and the 13 live", all)
	}
	if _, _, err := e.Authority.ListHoldersPage(e.Ctx, "orders", false, "bogus", 4); !errors.Is(err, authority.ErrInvalid) {
		t.Fatalf("a forged page token: %v, want ErrInvalid", err)
	}
}

// TestAPodCannotTakeTheNameOfALiveTokenHolder: a process that enrolled
// with an enrollment token (a VM, a bare-metal TaskManager) is another
// process than a pod that happens to share its name; had the pod's
// issuance replaced its record, ca activate would no longer see that the
// first trusts only the old CA. The pod is refused until the record is
// released or expires; an administrator may still issue under the name.
// (From this session's rotation-safety review.)
func TestAPodCannotTakeTheNameOfALiveTokenHolder(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	b := store.K8sBinding{Namespace: "flink", ServiceAccount: "flink"}
	e.CreateCluster(authority.CreateClusterRequest{Name: "mx", NoAutoRotate: true, K8sBindings: []store.K8sBinding{b}})
	_, tok := newToken(t, e, "mx", "taskmanager", time.Hour, 10)
	if _, err := e.EnrollAs(tok, "mx", "taskmanager", "tm-0"); err != nil {
		t.Fatal(err)
	}
	if err := e.Authority.Prepare(e.Ctx, admin, "mx", "internal"); err != nil {
		t.Fatal(err)
	}
	pod := authority.Actor{Kind: authority.ActorK8s, Namespace: "flink", ServiceAccount: "flink", Pod: "tm-0"}
	_, err := e.EnrollAs(pod, "mx", "taskmanager", "")
	if !errors.Is(err, authority.ErrDenied) || !strings.Contains(err.Error(), "enrolled with an enrollment token") {
		t.Fatalf("a pod taking a live token holder's name: %v, want it refused", err)
	}
	wantAudit(t, e, "mx", "enroll", "denied", pod.String())
	if err := e.Authority.Activate(e.Ctx, admin, "mx", "internal", false); !errors.Is(err, ca.ErrBlocked) {
		t.Fatalf("activate with the token holder still trusting only the old CA: %v, want it blocked", err)
	}
	if _, err := e.Authority.ReleaseHolder(e.Ctx, admin, "mx", "tm-0", "rest"); !errors.Is(err, authority.ErrNotFound) || !strings.Contains(err.Error(), "holds no rest credentials") {
		t.Errorf("releasing the rest credentials of a holder with none: %v, want it to say so", err)
	}
	if _, err := e.Authority.ReleaseHolder(e.Ctx, admin, "mx", "tm-0", "internal"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.EnrollAs(pod, "mx", "taskmanager", ""); err != nil {
		t.Fatalf("the pod after the release: %v", err)
	}
}
