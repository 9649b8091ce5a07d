package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
)

func scrape(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("scrape: %v (a scrape must not wait for a refresh after the first)", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func oneCA(cluster string) []CA {
	return []CA{{Cluster: cluster, ID: "internal-1", State: "active", NotAfter: time.Unix(2000000000, 0)}}
}

// TestOnlyTheFirstScrapeWaitsForTheExpiryGauges: the first scrape shows
// the gauges of the first refresh; a later scrape that finds them stale
// starts one refresh in the background and answers with the last values
// meanwhile, however many scrapes come; a failed refresh keeps the last
// values and is retried at the next scrape.
func TestOnlyTheFirstScrapeWaitsForTheExpiryGauges(t *testing.T) {
	m := New()
	var calls atomic.Int32
	release := make(chan struct{})
	fail := make(chan bool, 1)
	var errs []error
	var errMu sync.Mutex
	refresh := func(ctx context.Context) error {
		switch calls.Add(1) {
		case 1:
			m.SetCAs(oneCA("first"), map[string]time.Time{"first": time.Unix(1900000000, 0)}, map[string]int{"first": 3, "empty": 0}, map[string]time.Duration{"first": 24 * time.Hour})
		case 2:
			<-release
			m.SetCAs(oneCA("second"), nil, nil, nil)
		default:
			if <-fail {
				return errors.New("store unavailable")
			}
			m.SetCAs(oneCA("third"), nil, nil, nil)
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const every = 20 * time.Millisecond
	srv := httptest.NewServer(m.RefreshingHandler(ctx, every, refresh, func(err error) {
		errMu.Lock()
		errs = append(errs, err)
		errMu.Unlock()
	}))
	defer srv.Close()

	body := scrape(t, srv.URL)
	for _, want := range []string{
		`flinkpki_ca_expiry_timestamp_seconds{ca="internal-1",cluster="first",state="active"} 2e+09`,
		`flinkpki_live_leaf_earliest_expiry_timestamp_seconds{cluster="first"} 1.9e+09`,
		`flinkpki_live_holders{cluster="first"} 3`,
		`flinkpki_cluster_leaf_validity_seconds{cluster="first"} 86400`,
		`flinkpki_live_holders{cluster="empty"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("the first scrape lacks %s", want)
		}
	}
	if strings.Contains(body, "flinkpki_expiry_gauges_refresh_timestamp_seconds 0") {
		t.Fatal("the refresh timestamp is still 0 after the first refresh")
	}

	// The second refresh blocks until released: scrapes meanwhile answer
	// with the first view, and start no other refresh.
	blockedFrom := time.Now()
	// It is due every, or 20 times the first refresh's duration, after
	// the first: scrape until it has started.
	for started := time.Now(); calls.Load() < 2; time.Sleep(every) {
		if time.Since(started) > 10*time.Second {
			t.Fatal("the second refresh never started")
		}
		scrape(t, srv.URL)
	}
	for range 5 {
		body = scrape(t, srv.URL)
		if !strings.Contains(body, `cluster="first"`) || strings.Contains(body, `cluster="second"`) {
			t.Fatalf("while a refresh runs, a scrape must show the last whole view; it shows:\n%s", expiryLines(body))
		}
		time.Sleep(every)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d refreshes started; want 2 (one at a time)", n)
	}
	close(release)
	waitFor(t, srv.URL, `cluster="second"`)
	blocked := time.Since(blockedFrom) // at least as long as the refresh took

	// A failing refresh keeps the last values, is reported, and is retried
	// at the next scrape. (The blocked refresh took long, so the next one is
	// due only after 20 times as long, seconds on a loaded machine: scrape
	// until it starts.)
	fail <- true
	deadline := time.Now().Add(20*blocked + 10*time.Second)
	for calls.Load() < 3 || len(snapshot(&errMu, &errs)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the failed refresh was not reported")
		}
		scrape(t, srv.URL)
		time.Sleep(5 * time.Millisecond)
	}
	if body := scrape(t, srv.URL); !strings.Contains(body, `cluster="second"`) {
		t.Fatalf("after a failed refresh the last values must stay; /metrics shows:\n%s", expiryLines(body))
	}
	fail <- false
	waitFor(t, srv.URL, `cluster="third"`)
	if got := snapshot(&errMu, &errs); len(got) != 1 || got[0].Error() != "store unavailable" {
		t.Fatalf("errors reported: %v", got)
	}
}

// TestAScrapeNeverSeesAHalfWrittenExpiryView: SetCAs swaps the whole view,
// so a scrape during a refresh never misses a series (a missing series
// would resolve a firing expiry alert).
func TestAScrapeNeverSeesAHalfWrittenExpiryView(t *testing.T) {
	m := New()
	view := func(gen int) ([]CA, map[string]time.Time, map[string]int, map[string]time.Duration) {
		var cas []CA
		leaf := map[string]time.Time{}
		live := map[string]int{}
		validity := map[string]time.Duration{}
		for i := range 200 {
			cl := fmt.Sprintf("c%03d", i)
			cas = append(cas, CA{Cluster: cl, ID: "internal-1", State: "active", NotAfter: time.Unix(int64(2e9+gen), 0)})
			leaf[cl] = time.Unix(int64(1.9e9+gen), 0)
			live[cl] = gen
			validity[cl] = time.Duration(gen) * time.Second
		}
		return cas, leaf, live, validity
	}
	m.SetCAs(view(0))
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for gen := 1; ; gen++ {
			select {
			case <-stop:
				return
			default:
				m.SetCAs(view(gen))
			}
		}
	}()
	for range 200 {
		mfs, err := m.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		counts := map[string]int{}
		for _, mf := range mfs {
			counts[mf.GetName()] = len(mf.GetMetric())
		}
		if counts["flinkpki_ca_expiry_timestamp_seconds"] != 200 || counts["flinkpki_live_leaf_earliest_expiry_timestamp_seconds"] != 200 || counts["flinkpki_live_holders"] != 200 {
			close(stop)
			<-done
			t.Fatalf("a scrape saw %d CA, %d leaf and %d live-holder series, want 200 of each",
				counts["flinkpki_ca_expiry_timestamp_seconds"], counts["flinkpki_live_leaf_earliest_expiry_timestamp_seconds"], counts["flinkpki_live_holders"])
		}
	}
	close(stop)
	<-done
}

func waitFor(t *testing.T, url, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		body := scrape(t, url)
		if strings.Contains(body, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed %s; it shows:\n%s", want, expiryLines(body))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func expiryLines(body string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, "expiry") && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func snapshot(mu *sync.Mutex, errs *[]error) []error {
	mu.Lock()
	defer mu.Unlock()
	return append([]error(nil), *errs...)
}

// TestASlowRefreshIsRepeatedLessOften: a refresh that takes 10 s (a
// million holders) is repeated every 200 s, not every minute, so the
// gauges never cost more than a twentieth of a core.
func TestASlowRefreshIsRepeatedLessOften(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	var calls atomic.Int32
	done := make(chan struct{}, 10)
	r := &refresher{ctx: context.Background(), every: time.Minute, m: New(), now: clock, first: make(chan struct{}),
		refresh: func(context.Context) error {
			calls.Add(1)
			advance(10 * time.Second) // the refresh takes 10 s of the clock
			done <- struct{}{}
			return nil
		}}
	scrapeAt := func(d time.Duration) {
		advance(d)
		r.scrape(context.Background())
	}
	waitRefresh := func() {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("no refresh ran")
		}
		// wait for run to record the refresh as over
		for {
			r.mu.Lock()
			running := r.running
			r.mu.Unlock()
			if !running {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	scrapeAt(0)
	waitRefresh()               // the first; it started at T and ended at T+10s
	scrapeAt(60 * time.Second)  // T+70s: a minute is over, 200 s are not
	scrapeAt(100 * time.Second) // T+170s
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d refreshes within 200 s of a 10 s refresh; want 1", n)
	}
	scrapeAt(31 * time.Second) // T+201s
	waitRefresh()
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d refreshes after 200 s; want 2", n)
	}
}

// TestRotationGaugesShowTheLastTick: each lineage a tick reported has a
// phase series for the step it waits for and a blocked series for that
// step; a lineage the next tick does not report (a deleted cluster, or one
// whose automatic rotation was turned off) loses both; a lineage the next
// tick failed on keeps what the tick before said; a replica that stops
// leading (an empty tick) shows none.
func TestRotationGaugesShowTheLastTick(t *testing.T) {
	m := New()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	rotation := func() string {
		var out []string
		for _, l := range strings.Split(scrape(t, srv.URL), "\n") {
			if strings.HasPrefix(l, "flinkpki_rotation_") {
				out = append(out, l)
			}
		}
		sort.Strings(out)
		return strings.Join(out, "\n")
	}
	m.Rotations([]authority.RotationWait{
		{Cluster: "orders", Purpose: "internal", Step: "activate", Blocked: true},
		{Cluster: "orders", Purpose: "rest", Step: "prepare"},
		{Cluster: "gone", Purpose: "internal", Step: "retire"},
	})
	want := strings.Join([]string{
		`flinkpki_rotation_blocked{cluster="gone",purpose="internal",step="retire"} 0`,
		`flinkpki_rotation_blocked{cluster="orders",purpose="internal",step="activate"} 1`,
		`flinkpki_rotation_blocked{cluster="orders",purpose="rest",step="prepare"} 0`,
		`flinkpki_rotation_phase{cluster="gone",purpose="internal",step="retire"} 1`,
		`flinkpki_rotation_phase{cluster="orders",purpose="internal",step="activate"} 1`,
		`flinkpki_rotation_phase{cluster="orders",purpose="rest",step="prepare"} 1`,
	}, "\n")
	if got := rotation(); got != want {
		t.Fatalf("after the first tick:\n%s\nwant\n%s", got, want)
	}
	m.Rotations([]authority.RotationWait{
		{Cluster: "orders", Purpose: "internal", Failed: true},
		{Cluster: "orders", Purpose: "rest", Step: "activate"},
		{Cluster: "new", Purpose: "rest", Failed: true}, // nothing to keep
	})
	want = strings.Join([]string{
		`flinkpki_rotation_blocked{cluster="orders",purpose="internal",step="activate"} 1`,
		`flinkpki_rotation_blocked{cluster="orders",purpose="rest",step="activate"} 0`,
		`flinkpki_rotation_phase{cluster="orders",purpose="internal",step="activate"} 1`,
		`flinkpki_rotation_phase{cluster="orders",purpose="rest",step="activate"} 1`,
	}, "\n")
	if got := rotation(); got != want {
		t.Fatalf("after a tick that failed on orders/internal:\n%s\nwant\n%s", got, want)
	}
	m.Rotations(nil)
	if got := rotation(); got != "" {
		t.Fatalf("after an empty tick:\n%s\nwant no rotation series", got)
	}
}

// TestAPanickingRefreshIsReportedAndRetried: the refresh runs on a
// goroutine of its own, where a panic (a bug reading the store) would end
// the server. It is reported like a failed refresh, the scrape answers,
// and the next scrape tries again.
func TestAPanickingRefreshIsReportedAndRetried(t *testing.T) {
	m := New()
	var calls atomic.Int32
	refresh := func(context.Context) error {
		if calls.Add(1) == 1 {
			var cas []CA
			_ = cas[3] // an index out of range
		}
		m.SetCAs(oneCA("after"), nil, nil, nil)
		return nil
	}
	var errs []error
	var errMu sync.Mutex
	srv := httptest.NewServer(m.RefreshingHandler(t.Context(), time.Millisecond, refresh, func(err error) {
		errMu.Lock()
		errs = append(errs, err)
		errMu.Unlock()
	}))
	defer srv.Close()
	scrape(t, srv.URL)
	if got := snapshot(&errMu, &errs); len(got) != 1 || !strings.Contains(got[0].Error(), "the expiry gauges' refresh panicked: runtime error: index out of range") {
		t.Fatalf("errors reported: %v, want the panic", got)
	}
	waitFor(t, srv.URL, `cluster="after"`)
}

// TestTheIssuedCountersOfADeletedClusterGo: a cluster missing from two
// expiry views in a row (deleted, on this replica or another) loses its
// flinkpki_certificates_issued_total series; one missing from a single
// view (made after that view was read) keeps them.
func TestTheIssuedCountersOfADeletedClusterGo(t *testing.T) {
	m := New()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	issued := func() string {
		var out []string
		for _, l := range strings.Split(scrape(t, srv.URL), "\n") {
			if strings.HasPrefix(l, "flinkpki_certificates_issued_total{") {
				out = append(out, l)
			}
		}
		sort.Strings(out)
		return strings.Join(out, "\n")
	}
	m.Issued("orders", "taskmanager")
	m.Issued("orders", "jobmanager")
	m.Issued("gone", "taskmanager")
	m.Issued("new", "taskmanager")
	all := strings.Join([]string{
		`flinkpki_certificates_issued_total{cluster="gone",role="taskmanager"} 1`,
		`flinkpki_certificates_issued_total{cluster="new",role="taskmanager"} 1`,
		`flinkpki_certificates_issued_total{cluster="orders",role="jobmanager"} 1`,
		`flinkpki_certificates_issued_total{cluster="orders",role="taskmanager"} 1`,
	}, "\n")
	m.SetCAs(oneCA("orders"), nil, map[string]int{"orders": 2}, nil)
	if got := issued(); got != all {
		t.Fatalf("after one view without gone and new:\n%s\nwant every series still:\n%s", got, all)
	}
	m.SetCAs(oneCA("orders"), nil, map[string]int{"orders": 2, "new": 1}, nil)
	want := strings.Join([]string{
		`flinkpki_certificates_issued_total{cluster="new",role="taskmanager"} 1`,
		`flinkpki_certificates_issued_total{cluster="orders",role="jobmanager"} 1`,
		`flinkpki_certificates_issued_total{cluster="orders",role="taskmanager"} 1`,
	}, "\n")
	if got := issued(); got != want {
		t.Fatalf("after a second view without gone:\n%s\nwant:\n%s", got, want)
	}
	m.SetCAs(oneCA("orders"), nil, map[string]int{"orders": 2}, nil)
	m.Issued("new", "taskmanager") // issued again in between: present again
	m.SetCAs(oneCA("orders"), nil, map[string]int{"orders": 2}, nil)
	if got := issued(); !strings.Contains(got, `cluster="new",role="taskmanager"} 2`) {
		t.Errorf("a cluster that issued between two views without it lost its series:\n%s", got)
	}
}
