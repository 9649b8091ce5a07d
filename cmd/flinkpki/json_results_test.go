package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"
)

// decodeResult reads a command's -o json stdout into v: exactly one JSON
// object and nothing after it, so a stray table line or a second document
// fails the test.
func decodeResult(t testing.TB, stdout string, v any) {
	t.Helper()
	trimmed := bytes.TrimSpace([]byte(stdout))
	if len(trimmed) == 0 || trimmed[0] != '{' {
		t.Fatalf("-o json stdout is not a JSON object:\n%s", stdout)
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("-o json stdout does not decode: %v\n%s", err, stdout)
	}
	if dec.More() || dec.InputOffset() != int64(len(trimmed)) {
		t.Fatalf("-o json stdout holds more than one JSON document:\n%s", stdout)
	}
}

// noJSON checks that a refused command wrote nothing on stdout.
func noJSON(t testing.TB, r result) {
	t.Helper()
	if r.stdout != "" {
		t.Errorf("a refused command wrote on stdout: %q", r.stdout)
	}
}

func TestClusterDeleteReportsTheDeletedClusterInJSON(t *testing.T) {
	s := startServer(t, "")
	for _, c := range []string{"keep", "gone", "gone-too"} {
		s.cli(t, s.admin, "cluster", "create", c).ok(t)
	}

	// The table (default) output is unchanged: nothing on stdout, one line on stderr.
	r := s.cli(t, s.admin, "cluster", "delete", "gone", "--yes").ok(t)
	if r.stdout != "" || r.stderr != "deleted cluster \"gone\"\n" {
		t.Errorf("cluster delete (table): stdout %q, stderr %q", r.stdout, r.stderr)
	}

	r = s.cli(t, s.admin, "cluster", "delete", "gone-too", "--yes", "-o", "json").ok(t)
	var got struct {
		Cluster string `json:"cluster"`
		Deleted bool   `json:"deleted"`
	}
	decodeResult(t, r.stdout, &got)
	if got.Cluster != "gone-too" || !got.Deleted {
		t.Errorf("cluster delete -o json = %+v, want cluster gone-too deleted", got)
	}
	if r.stderr != "deleted cluster \"gone-too\"\n" {
		t.Errorf("cluster delete -o json: stderr %q", r.stderr)
	}
	s.cli(t, s.admin, "cluster", "get", "gone-too").refused(t, `cluster "gone-too" not found`)
	s.cli(t, s.admin, "cluster", "get", "keep").ok(t)

	r = s.cli(t, s.admin, "cluster", "delete", "gone-too", "--yes", "-o", "json")
	r.refused(t, `cluster "gone-too" not found`)
	noJSON(t, r)
	r = s.cli(t, s.admin, "cluster", "delete", "keep", "-o", "json")
	oneLineError(t, r, 2, `refusing to delete cluster "keep" without --yes`)
	noJSON(t, r)
}

func TestTokenRevokeReportsTheRevokedTokenInJSON(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	create := func() string {
		t.Helper()
		var made struct{ Token, ID string }
		decodeResult(t, s.cli(t, s.admin, "token", "create", "--cluster", "orders", "--role", "taskmanager", "-o", "json").ok(t).stdout, &made)
		rememberSecret(made.Token)
		return made.ID
	}

	// The table (default) output is unchanged: nothing on stdout, one line on stderr.
	id := create()
	r := s.cli(t, s.admin, "token", "revoke", id).ok(t)
	if r.stdout != "" || r.stderr != "revoked enrollment token "+id+" of cluster \"orders\"\n" {
		t.Errorf("token revoke (table): stdout %q, stderr %q", r.stdout, r.stderr)
	}

	id = create()
	r = s.cli(t, s.admin, "token", "revoke", id, "-o", "json").ok(t)
	var got struct {
		ID      string `json:"id"`
		Cluster string `json:"cluster"`
		Revoked bool   `json:"revoked"`
	}
	decodeResult(t, r.stdout, &got)
	if got.ID != id || got.Cluster != "orders" || !got.Revoked {
		t.Errorf("token revoke -o json = %+v, want token %s of cluster orders revoked", got, id)
	}
	if r.stderr != "revoked enrollment token "+id+" of cluster \"orders\"\n" {
		t.Errorf("token revoke -o json: stderr %q", r.stderr)
	}
	var list struct {
		Tokens []struct{ ID string } `json:"tokens"`
	}
	decodeResult(t, s.cli(t, s.admin, "token", "list", "-o", "json").ok(t).stdout, &list)
	if len(list.Tokens) != 0 {
		t.Errorf("revoked tokens are still listed: %+v", list.Tokens)
	}

	r = s.cli(t, s.admin, "token", "revoke", id, "-o", "json")
	r.refused(t, `enrollment token "`+id+`" not found`)
	noJSON(t, r)
}

func TestHolderReleaseReportsTheReleasedRecordsInJSON(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	bake := func(role, holder string) {
		t.Helper()
		s.cli(t, s.admin, "bake", "--cluster", "orders", "--role", role, "--holder", holder, "--out", filepath.Join(t.TempDir(), "tls")).ok(t)
	}
	bake("taskmanager", "tm-0")
	bake("taskmanager", "tm-1")
	bake("rest-client", "ops")

	type released struct {
		Cluster  string `json:"cluster"`
		Holder   string `json:"holder"`
		Purpose  string `json:"purpose"`
		Released int    `json:"released"`
	}
	release := func(args ...string) (released, result) {
		t.Helper()
		r := s.cli(t, s.admin, append([]string{"holder", "release", "--cluster", "orders", "-o", "json"}, args...)...).ok(t)
		var got released
		decodeResult(t, r.stdout, &got)
		return got, r
	}

	// The table (default) output is unchanged: nothing on stdout, one line on stderr.
	r := s.cli(t, s.admin, "holder", "release", "--cluster", "orders", "tm-0").ok(t)
	if r.stdout != "" || r.stderr != "released 1 credential record(s) of holder \"tm-0\"\n" {
		t.Errorf("holder release (table): stdout %q, stderr %q", r.stdout, r.stderr)
	}

	got, r := release("tm-1")
	if want := (released{Cluster: "orders", Holder: "tm-1", Purpose: "", Released: 1}); got != want {
		t.Errorf("holder release -o json = %+v, want %+v", got, want)
	}
	if r.stderr != "released 1 credential record(s) of holder \"tm-1\"\n" {
		t.Errorf("holder release -o json: stderr %q", r.stderr)
	}
	// The server refuses a holder it does not know (released already).
	r = s.cli(t, s.admin, "holder", "release", "--cluster", "orders", "tm-1", "-o", "json")
	r.refused(t, `holder "tm-1" of cluster "orders" not found`)
	noJSON(t, r)
	got, _ = release("--purpose", "rest", "ops")
	if want := (released{Cluster: "orders", Holder: "ops", Purpose: "rest", Released: 1}); got != want {
		t.Errorf("holder release --purpose rest -o json = %+v, want %+v", got, want)
	}
	var list struct {
		Holders []struct{ Name string } `json:"holders"`
	}
	decodeResult(t, s.cli(t, s.admin, "holder", "list", "--cluster", "orders", "-o", "json").ok(t).stdout, &list)
	if len(list.Holders) != 0 {
		t.Errorf("released holders are still live: %+v", list.Holders)
	}

	r = s.cli(t, s.admin, "holder", "release", "--cluster", "nope", "tm-0", "-o", "json")
	r.refused(t, `cluster "nope" not found`)
	noJSON(t, r)
}
