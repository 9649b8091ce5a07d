package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// A leaked enrollment token is listed and revoked: from the revocation on
// it enrolls nothing, what it paid for stays, the revocation is audited,
// and a second revocation or an unknown cluster is refused in one line.
func TestEnrollmentTokensAreListedAndRevoked(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	s.cli(t, s.admin, "cluster", "create", "billing").ok(t)
	leaked := s.tokenFor(t, "orders", "taskmanager", "--uses", "5", "--ttl", "1h")
	other := s.tokenFor(t, "billing", "jobmanager")
	out := func() string { return filepath.Join(t.TempDir(), "tls") }
	s.cli(t, leaked, "bake", "--cluster", "orders", "--role", "taskmanager", "--holder", "tm-0", "--out", out()).ok(t)

	type listed struct {
		Tokens []struct {
			ID, Cluster, Role string
			UsesLeft          int32  `json:"uses_left"`
			Expires           string `json:"expire_time"`
		} `json:"tokens"`
	}
	list := func(args ...string) listed {
		t.Helper()
		var l listed
		r := s.cli(t, s.admin, append([]string{"token", "list", "-o", "json"}, args...)...).ok(t)
		if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
			t.Fatalf("token list -o json: %v\n%s", err, r.stdout)
		}
		return l
	}
	all := list()
	if len(all.Tokens) != 2 {
		t.Fatalf("token list shows %d tokens, want 2: %+v", len(all.Tokens), all.Tokens)
	}
	orders := list("--cluster", "orders")
	if len(orders.Tokens) != 1 || orders.Tokens[0].Role != "taskmanager" || orders.Tokens[0].UsesLeft != 4 || orders.Tokens[0].Expires == "" {
		t.Fatalf("token list --cluster orders = %+v, want the taskmanager token with 4 uses left", orders.Tokens)
	}
	id := orders.Tokens[0].ID
	raw, err := os.ReadFile(leaked)
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSpace(string(raw))
	if !strings.Contains(secret, id) {
		t.Fatalf("listed ID %q is not part of the token", id)
	}
	table := s.cli(t, s.admin, "token", "list").ok(t).stdout
	if !strings.Contains(table, id) || strings.Contains(table, secret) || !strings.Contains(table, "USES LEFT") {
		t.Errorf("the table lacks the ID or shows the secret:\n%s", table)
	}

	r := s.cli(t, s.admin, "token", "revoke", id).ok(t)
	if !strings.Contains(r.stderr, `revoked enrollment token `+id+` of cluster "orders"`) {
		t.Errorf("revoke says %q", r.stderr)
	}
	s.cli(t, leaked, "bake", "--cluster", "orders", "--role", "taskmanager", "--holder", "tm-1", "--out", out()).refused(t, "unknown, used-up, expired or revoked enrollment token")
	if l := list("--cluster", "orders"); len(l.Tokens) != 0 {
		t.Errorf("the revoked token is still listed: %+v", l.Tokens)
	}
	if l := list(); len(l.Tokens) != 1 || l.Tokens[0].Cluster != "billing" {
		t.Errorf("revoking one token touched another: %+v", l.Tokens)
	}
	s.cli(t, other, "bake", "--cluster", "billing", "--role", "jobmanager", "--holder", "jm-0", "--out", out()).ok(t)
	holders := s.cli(t, s.admin, "holder", "list", "--cluster", "orders").ok(t).stdout
	if !strings.Contains(holders, "tm-0") || strings.Contains(holders, "tm-1") {
		t.Errorf("holders after the revocation:\n%s", holders)
	}

	s.cli(t, s.admin, "token", "revoke", id).refused(t, `enrollment token "`+id+`" not found`)

	// -o json hands a script the ID to revoke with, beside the token.
	var made struct{ Token, ID, Cluster, Role string }
	if err := json.Unmarshal([]byte(s.cli(t, s.admin, "token", "create", "--cluster", "orders", "--role", "jobmanager", "-o", "json").ok(t).stdout), &made); err != nil {
		t.Fatal(err)
	}
	rememberSecret(made.Token)
	if !strings.Contains(made.Token, made.ID) || made.Cluster != "orders" || made.Role != "jobmanager" {
		t.Fatalf("token create -o json = %+v", made)
	}
	s.cli(t, s.admin, "token", "revoke", made.ID).ok(t)
	s.cli(t, s.admin, "token", "list", "--cluster", "nope").refused(t, `cluster "nope" not found`)
	s.cli(t, s.tokenFor(t, "billing", "jobmanager"), "token", "list").refused(t,
		"permission denied: this command needs an administrator token in --token-file (or FLINKPKI_TOKEN_FILE); an enrollment token may only enroll or bake for its cluster and role")

	var trail struct {
		Entries []struct {
			Cluster, Action, Outcome string
			Details                  map[string]string
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(s.cli(t, s.admin, "audit", "list", "-o", "json").ok(t).stdout), &trail); err != nil {
		t.Fatal(err)
	}
	var revoked, refused int
	for _, e := range trail.Entries {
		switch {
		case e.Action == "token.revoke" && e.Outcome == "ok" && e.Cluster == "orders" && e.Details["token_id"] == id:
			revoked++
		case e.Action == "token.revoke" && e.Outcome == "denied" && e.Details["reason"] == "not_found":
			refused++
		}
	}
	if revoked != 1 || refused != 1 {
		t.Errorf("audit trail: %d token.revoke ok for %s in orders, %d refused as not_found; want 1 and 1", revoked, id, refused)
	}
}

// TestRevokingByThePastedTokenNeverEchoesIt: an operator revoking a leaked
// token pastes the token. The CLI revokes it by its ID and prints no
// secret; an administrator token passed to token revoke is pointed to
// admin revoke-token; and a client that sends a whole token as the ID is
// refused in words that quote nothing, with no secret in the audit trail.
func TestRevokingByThePastedTokenNeverEchoesIt(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	read := func(file string) string {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(raw))
	}
	leaked := read(s.tokenFor(t, "orders", "taskmanager", "--uses", "5"))
	id, secret := leaked[4:30], leaked[31:]

	r := s.cli(t, s.admin, "token", "revoke", leaked).ok(t)
	if !strings.Contains(r.stderr, "revoked enrollment token "+id) || strings.Contains(r.stdout+r.stderr, secret) {
		t.Errorf("revoke by the token said %q / %q", r.stdout, r.stderr)
	}
	s.cli(t, s.admin, "token", "revoke", id).refused(t, "not found")
	redacted := read(s.tokenFor(t, "orders", "taskmanager"))
	s.cli(t, s.admin, "token", "revoke", redacted[:31]+"…").ok(t)

	admin := read(s.admin)
	r = s.cli(t, s.admin, "token", "revoke", admin)
	oneLineError(t, r, 2, "that is an administrator token (fpa_): revoke it with flinkpki admin token revoke")
	r = s.cli(t, s.admin, "token", "revoke", "x"+secret)
	oneLineError(t, r, 2, "not a token ID")
	if strings.Contains(r.stderr, admin[31:]) || strings.Contains(r.stderr, secret) {
		t.Errorf("a refusal quotes a secret: %q", r.stderr)
	}

	other := read(s.tokenFor(t, "orders", "jobmanager"))
	_, err := pb.NewClusterServiceClient(s.adminConn(t)).RevokeToken(context.Background(), &pb.RevokeTokenRequest{Id: other})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "not a token ID") || strings.Contains(err.Error(), other[31:]) {
		t.Fatalf("RevokeToken with a whole token as its ID: %v", err)
	}
	raw := s.cli(t, s.admin, "audit", "list", "-o", "json").ok(t).stdout
	for _, leaked := range []string{secret, admin[31:], other[31:]} {
		if strings.Contains(raw, leaked) {
			t.Fatalf("the audit trail holds a token secret:\n%s", raw)
		}
	}
	var trail struct {
		Entries []struct {
			Action, Outcome string
			Details         map[string]string
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(raw), &trail); err != nil {
		t.Fatal(err)
	}
	invalid := 0
	for _, e := range trail.Entries {
		if e.Action == "token.revoke" && e.Outcome == "denied" && e.Details["reason"] == "invalid" {
			invalid++
		}
	}
	if invalid != 1 {
		t.Errorf("%d token.revoke refusals audited as invalid, want 1 (the whole token sent as the ID):\n%s", invalid, raw)
	}
}
