package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// The benchmark commands against a real server: every request must be a
// real issuance (holders appear, token uses are spent), and a failing run
// must exit 1 with the count.
func TestBenchEnrollAndBakeIssueRealCertificates(t *testing.T) {
	s := startServer(t, t.TempDir(), "--enroll-rate", "0")
	s.cli(t, s.admin, "cluster", "create", "bench").ok(t)
	tok := s.tokenFor(t, "bench", "taskmanager", "--uses", "7")

	var er struct {
		Requests, Errors, Concurrency int
		CertsPerSecond                float64 `json:"certs_per_second"`
		P99                           float64 `json:"p99_ms"`
		KeyType                       string  `json:"key_type"`
	}
	for _, fresh := range []bool{false, true} {
		args := []string{"bench", "enroll", "--cluster", "bench", "--role", "taskmanager", "--token-file", tok,
			"--requests", "3", "--concurrency", "2", "--format", "jks", "-o", "json"}
		if fresh {
			args = append(args, "--fresh-connections")
		}
		r := s.cli(t, s.admin, args...).ok(t)
		if err := json.Unmarshal([]byte(r.stdout), &er); err != nil {
			t.Fatalf("bench enroll -o json: %v\n%s", err, r.stdout)
		}
		if er.Requests != 3 || er.Errors != 0 || er.Concurrency != 2 || er.CertsPerSecond <= 0 || er.P99 <= 0 || er.KeyType != "ecdsa-p256" {
			t.Fatalf("bench enroll (fresh %v) = %+v", fresh, er)
		}
	}
	holders := s.cli(t, s.admin, "holder", "list", "--cluster", "bench", "-o", "json").ok(t).stdout
	if n := strings.Count(holders, `"bench-`); n != 6 {
		t.Errorf("holder list shows %d bench holders, want the 6 enrolled:\n%s", n, holders)
	}
	// One use left on the token: a run of 3 spends it and fails the rest.
	r := s.cli(t, s.admin, "bench", "enroll", "--cluster", "bench", "--role", "taskmanager", "--token-file", tok,
		"--requests", "3", "--concurrency", "1", "-o", "json")
	if r.code != 1 || !strings.Contains(lastLine(r.stderr), "2 of 3 enrollments failed") {
		t.Fatalf("bench enroll past the token's uses: exit %d, stderr %s", r.code, r.stderr)
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
	s.cli(t, s.admin, "bench", "bake", "--cluster", "nope", "--requests", "1").refused(t, "1 of 1 bakes failed")
}
