package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The benchmark commands against a real server: every request must be a
// real issuance (holders appear, token uses are spent), and a failing run
// must exit 1 with the count.
func TestBenchEnrollAndBakeIssueRealCertificates(t *testing.T) {
	s := startServer(t, t.TempDir(), "--enroll-rate", "0")
	s.cli(t, s.admin, "cluster", "create", "bench").ok(t)
	tok := s.tokenFor(t, "bench", "taskmanager", "--uses", "9")

	var er struct {
		Requests, Errors, Concurrency, Warmup int
		CertsPerSecond                        float64 `json:"certs_per_second"`
		P99                                   float64 `json:"p99_ms"`
		KeyType                               string  `json:"key_type"`
	}
	for _, fresh := range []bool{false, true} {
		args := []string{"bench", "enroll", "--cluster", "bench", "--role", "taskmanager", "--token-file", tok,
			"--requests", "3", "--concurrency", "2", "--format", "jks", "-o", "json"}
		warm := 0
		if fresh {
			args = append(args, "--fresh-connections")
		} else {
			warm = 2 // enrolled too, but in no figure
			args = append(args, "--warmup", "2")
		}
		er.Warmup = 0
		r := s.cli(t, s.admin, args...).ok(t)
		if err := json.Unmarshal([]byte(r.stdout), &er); err != nil {
			t.Fatalf("bench enroll -o json: %v\n%s", err, r.stdout)
		}
		if er.Requests != 3 || er.Errors != 0 || er.Concurrency != 2 || er.Warmup != warm || er.CertsPerSecond <= 0 || er.P99 <= 0 || er.KeyType != "ecdsa-p256" {
			t.Fatalf("bench enroll (fresh %v) = %+v, want 3 requests after %d for warm-up", fresh, er, warm)
		}
	}
	holders := s.cli(t, s.admin, "holder", "list", "--cluster", "bench", "-o", "json").ok(t).stdout
	if n := strings.Count(holders, `"bench-`); n != 8 {
		t.Errorf("holder list shows %d bench holders, want the 8 enrolled (2 of them to warm up):\n%s", n, holders)
	}
	oneLineError(t, runCLI(t, nil, "bench", "enroll", "--cluster", "bench", "--role", "taskmanager", "--token-file", tok, "--warmup", "-1"), 2, "--warmup is -1")
	// One use left on the token: a run of 3 spends it and fails the rest.
	r := s.cli(t, s.admin, "bench", "enroll", "--cluster", "bench", "--role", "taskmanager", "--token-file", tok,
		"--requests", "3", "--concurrency", "1", "-o", "json")
	if r.code != 1 || !strings.Contains(lastLine(r.stderr), "2 of 3 enrollments failed") {
		t.Fatalf("bench enroll past the token's uses: exit %d, stderr %s", r.code, r.stderr)
	}
	// The token is spent: every request fails, and no table of zeros is
	// printed as if it were a measurement.
	r = s.cli(t, s.admin, "bench", "enroll", "--cluster", "bench", "--role", "taskmanager", "--token-file", tok, "--requests", "2", "--concurrency", "1")
	if r.code != 1 || r.stdout != "" || !strings.Contains(lastLine(r.stderr), "2 of 2 enrollments failed") {
		t.Fatalf("bench enroll with a spent token: exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}

	var br struct {
		Requests, Errors int
		KeyType          string `json:"key_type"`
	}
	r = s.cli(t, s.admin, "bench", "bake", "--cluster", "bench", "--requests", "4", "--concurrency", "2", "-o", "json").ok(t)
	if err := json.Unmarshal([]byte(r.stdout), &br); err != nil {
		t.Fatalf("bench bake -o json: %v\n%s", err, r.stdout)
	}
	if br.Requests != 4 || br.Errors != 0 || br.KeyType != "ecdsa-p256" {
		t.Fatalf("bench bake = %+v", br)
	}
	holders = s.cli(t, s.admin, "holder", "list", "--cluster", "bench", "-o", "json").ok(t).stdout
	if n := strings.Count(holders, `"bake-`); n != 4 {
		t.Errorf("holder list shows %d baked holders, want 4", n)
	}
	// A typo stops the run at the first refusal: at most one refused (and
	// audited) request per worker, not one per request.
	before := strings.Count(s.cli(t, s.admin, "audit", "list", "--limit", "1000", "-o", "json").ok(t).stdout, `"denied"`)
	s.cli(t, s.admin, "bench", "bake", "--cluster", "nope", "--requests", "50", "--concurrency", "2").refused(t, `50 of 50 bakes failed; first: cluster "nope" not found`)
	// Refused in the warm-up: the measured requests are all not sent,
	// and said so, in the text and in -o json.
	r = s.cli(t, s.admin, "bench", "enroll", "--cluster", "nope", "--role", "taskmanager", "--requests", "50", "--concurrency", "2", "--warmup", "20", "-o", "json")
	r.refused(t, `50 of 50 enrollments failed; first: cluster "nope" not found (the run stopped at the first refusal and did not send 50 of the measured enrollments)`)
	var nr struct {
		Errors  int `json:"errors"`
		NotSent int `json:"not_sent"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &nr); err != nil || nr.Errors != 50 || nr.NotSent != 50 {
		t.Errorf("bench enroll -o json refused in its warm-up = %s (err %v), want 50 errors, all 50 not sent", r.stdout, err)
	}
	after := strings.Count(s.cli(t, s.admin, "audit", "list", "--limit", "1000", "-o", "json").ok(t).stdout, `"denied"`)
	if n := after - before; n < 2 || n > 4 {
		t.Errorf("two runs of 50 requests against an unknown cluster were refused %d times, want 1 or 2 each (one per worker at most)", n)
	}
}

// TestAPopulatedStoreIsServedAtScale: bench populate fills a stopped
// server's store, and the restarted server serves it: clusters page, ca
// status counts the big cluster's live holders, and holder list returns
// all 36,000 of them, page by page (in one answer they would be about
// 4.4 MB, past gRPC's 4 MiB message limit).
func TestAPopulatedStoreIsServedAtScale(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	startServer(t, dir).stop(t)
	r := runCLI(t, nil, "bench", "populate", "--data-dir", dir, "--kek-file", filepath.Join(dir, "kek"),
		"--clusters", "3", "--holders", "40000", "--big-cluster", "36000").ok(t)
	if !strings.Contains(r.stdout, "populated 3 clusters and 40000 holders") || !strings.Contains(r.stdout, "database size:") {
		t.Fatalf("bench populate said:\n%s", r.stdout)
	}
	s := startServer(t, dir, "--rotation-interval", "0")

	var page struct {
		Clusters []struct {
			Name string `json:"name"`
		} `json:"clusters"`
		Next string `json:"next_page_token"`
	}
	out := s.cli(t, s.admin, "cluster", "list", "--page-size", "2", "-o", "json").ok(t).stdout
	if err := json.Unmarshal([]byte(out), &page); err != nil || len(page.Clusters) != 3 || page.Next != "" {
		t.Fatalf("cluster list --page-size 2 = %s (err %v), want all 3 clusters, fetched in two pages", out, err)
	}
	out = s.cli(t, s.admin, "cluster", "list", "--page-size", "2", "--page-token", page.Clusters[0].Name, "-o", "json").ok(t).stdout
	if err := json.Unmarshal([]byte(out), &page); err != nil || len(page.Clusters) != 2 || page.Clusters[0].Name != "scale-00001" {
		t.Fatalf("cluster list --page-token scale-00000 = %s (err %v), want the 2 clusters after it", out, err)
	}

	var st struct {
		LiveHolders int `json:"live_holders"`
	}
	out = s.cli(t, s.admin, "ca", "status", "--cluster", "scale-00000", "-o", "json").ok(t).stdout
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.LiveHolders != 36000 {
		t.Fatalf("ca status of the big cluster = %s (err %v), want 36000 live holders", out, err)
	}

	var hl struct {
		Holders []struct {
			Name string `json:"name"`
		} `json:"holders"`
	}
	out = s.cli(t, s.admin, "holder", "list", "--cluster", "scale-00000", "-o", "json").ok(t).stdout
	if err := json.Unmarshal([]byte(out), &hl); err != nil {
		t.Fatalf("holder list -o json: %v", err)
	}
	seen := map[string]bool{}
	for _, h := range hl.Holders {
		seen[h.Name] = true
	}
	if len(hl.Holders) != 36000 || len(seen) != 36000 {
		t.Fatalf("holder list of the big cluster: %d holders, %d distinct; want 36000 of each", len(hl.Holders), len(seen))
	}

	// A prepared CA is trusted by none of them yet: status and the refused
	// activation name ten and count the rest, on lines a person can read.
	s.cli(t, s.admin, "ca", "prepare", "--cluster", "scale-00000").ok(t)
	out = s.cli(t, s.admin, "ca", "status", "--cluster", "scale-00000").ok(t).stdout
	if !strings.Contains(out, "blocked by 36000 holder(s): ") || !strings.Contains(out, " and 35990 more") {
		t.Fatalf("ca status does not count the 36000 blockers:\n%.2000s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if len(line) > 1000 {
			t.Fatalf("ca status prints a line of %d bytes", len(line))
		}
	}
	s.cli(t, s.admin, "ca", "activate", "--cluster", "scale-00000").refused(t, "36000 live holders do not trust the prepared CA yet")
}

// TestBenchEnrollNamesTheServersRateLimit: against a server with its
// default per-identity limit a run measures that limit; the failure says
// how a benchmark server is started.
func TestBenchEnrollNamesTheServersRateLimit(t *testing.T) {
	s := startServer(t, t.TempDir(), "--enroll-rate", "1", "--enroll-burst", "1")
	s.cli(t, s.admin, "cluster", "create", "bench").ok(t)
	tok := s.tokenFor(t, "bench", "taskmanager", "--uses", "9")
	r := s.cli(t, s.admin, "bench", "enroll", "--cluster", "bench", "--role", "taskmanager", "--token-file", tok, "--requests", "4", "--concurrency", "1")
	if r.code != 1 || !strings.Contains(lastLine(r.stderr), "rate limit") || !strings.Contains(lastLine(r.stderr), "(a server for benchmarks runs with serve --enroll-rate 0)") {
		t.Fatalf("bench enroll against a rate-limited server: exit %d, stderr %s", r.code, r.stderr)
	}
}

// TestPopulateRefusesAStoreWithClustersOfItsOwn: bench populate writes
// synthetic CAs and holder records (a million by default) straight into a
// stopped server's store; a --data-dir given by mistake must not fill a
// production store. A store holding a cluster populate did not make is
// refused, unchanged, unless --yes.
func TestPopulateRefusesAStoreWithClustersOfItsOwn(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	s.stop(t)
	args := []string{"bench", "populate", "--data-dir", dir, "--kek-file", filepath.Join(dir, "kek"), "--clusters", "2", "--holders", "10"}
	before, err := os.ReadFile(filepath.Join(dir, dbFileName))
	if err != nil {
		t.Fatal(err)
	}
	oneLineError(t, runCLI(t, nil, args...), 1, `holds cluster "orders", which bench populate did not make`)
	if after, _ := os.ReadFile(filepath.Join(dir, dbFileName)); !bytes.Equal(before, after) {
		t.Error("the refused populate changed the store")
	}
	r := runCLI(t, nil, append(args, "--yes")...).ok(t)
	if !strings.Contains(r.stdout, "populated 2 clusters and 10 holders") {
		t.Fatalf("populate --yes said:\n%s", r.stdout)
	}
}
