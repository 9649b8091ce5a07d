package authority_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
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
