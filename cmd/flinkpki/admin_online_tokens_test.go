package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAdministratorTokensAreManagedOnline: with the server running, an
// administrator makes a token for a colleague and one for a CI job (which
// expires in 30 days unless told otherwise, and never after the token that
// made it), lists them with who made each, and revokes the colleague's:
// the tokens made with it go too, each refused from the next request on,
// on the running server, audited. A revocation that would leave no token
// that does not expire is refused in one line, changing nothing.
func TestAdministratorTokensAreManagedOnline(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	dir := t.TempDir()
	create := func(tokenFile, name string, args ...string) (file, id, expires string) {
		t.Helper()
		r := s.cli(t, tokenFile, append([]string{"admin", "token", "create", "--name", name, "-o", "json"}, args...)...).ok(t)
		var got struct {
			Token, ID, Name string
			Expires         string `json:"expire_time"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Name != name || !strings.Contains(got.Token, got.ID) {
			t.Fatalf("admin token create -o json: %v\n%s", err, r.stdout)
		}
		file = filepath.Join(dir, name+".token")
		if err := os.WriteFile(file, []byte(got.Token), 0o600); err != nil {
			t.Fatal(err)
		}
		rememberSecret(got.Token)
		return file, got.ID, got.Expires
	}
	alice, aliceID, aliceExp := create(s.admin, "alice", "--ttl", "12h")
	if exp, err := time.Parse(time.RFC3339, aliceExp); err != nil || time.Until(exp) > 12*time.Hour || time.Until(exp) < 11*time.Hour {
		t.Fatalf("alice's token expires %q; want in 12 hours", aliceExp)
	}
	_, ciID, ciExp := create(alice, "alice-ci")
	if ciExp != aliceExp {
		t.Errorf("a token made with one expiring at %s (default TTL 90 days) expires %q; want the maker's expiry", aliceExp, ciExp)
	}
	bob, _, bobExp := create(s.admin, "bob")
	if exp, err := time.Parse(time.RFC3339, bobExp); err != nil || time.Until(exp) < 89*24*time.Hour || time.Until(exp) > 90*24*time.Hour {
		t.Errorf("a token made with no --ttl expires %q; want in 90 days", bobExp)
	}
	r := s.cli(t, alice, "admin", "token", "create", "--name", "forever", "--ttl", "0").ok(t)
	if !strings.Contains(r.stderr, "(the token that made it expires then)") {
		t.Errorf("create with --ttl 0 as a token that expires does not say why it expires: %q", r.stderr)
	}
	rememberSecret(strings.TrimSpace(r.stdout))

	// The new tokens are administrators on the running server.
	s.cli(t, bob, "cluster", "create", "orders").ok(t)

	var listed struct {
		Tokens []struct {
			ID, Name  string
			Expires   string   `json:"expire_time"`
			CreatedBy string   `json:"created_by"`
			MadeWith  []string `json:"made_with"`
			Expired   bool
		}
	}
	if err := json.Unmarshal([]byte(s.cli(t, bob, "admin", "token", "list", "-o", "json").ok(t).stdout), &listed); err != nil {
		t.Fatal(err)
	}
	madeBy := map[string]string{}
	chain := map[string][]string{}
	for _, tk := range listed.Tokens {
		madeBy[tk.Name] = tk.CreatedBy
		chain[tk.Name] = tk.MadeWith
	}
	if c := chain["alice-ci"]; len(c) != 2 || c[1] != aliceID || "admin:"+c[0] != madeBy["alice"] || len(chain["dev"]) != 0 {
		t.Errorf("made_with: alice-ci %v, dev %v; want the dev token's ID and alice's, and none", c, chain["dev"])
	}
	if len(listed.Tokens) != 5 || madeBy["dev"] != "system:dev" || madeBy["alice-ci"] != "admin:"+aliceID || madeBy["forever"] != "admin:"+aliceID || !strings.HasPrefix(madeBy["alice"], "admin:") {
		t.Fatalf("admin token list: %+v", listed.Tokens)
	}
	table := s.cli(t, bob, "admin", "token", "list").ok(t).stdout
	if !strings.Contains(table, "CREATED BY") || !strings.Contains(table, "never") || !strings.Contains(table, aliceExp) {
		t.Errorf("the table lacks a column or an expiry:\n%s", table)
	}

	// An enrollment token made with alice's records it, and does not
	// outlive it.
	r = s.cli(t, alice, "token", "create", "--cluster", "orders", "--role", "taskmanager", "--ttl", "30d").ok(t)
	enrollToken := filepath.Join(dir, "alice-enroll.token")
	if err := os.WriteFile(enrollToken, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	rememberSecret(strings.TrimSpace(r.stdout))
	var enrollList struct {
		Tokens []struct {
			ID       string
			Expires  string   `json:"expire_time"`
			MadeWith []string `json:"made_with"`
		}
	}
	if err := json.Unmarshal([]byte(s.cli(t, bob, "token", "list", "-o", "json").ok(t).stdout), &enrollList); err != nil {
		t.Fatal(err)
	}
	if l := enrollList.Tokens; len(l) != 1 || len(l[0].MadeWith) != 2 || l[0].MadeWith[1] != aliceID || l[0].Expires != aliceExp {
		t.Fatalf("token list after alice made an enrollment token: %+v; want it made with alice's token (last in made_with), expiring with it at %s", l, aliceExp)
	}
	if table := s.cli(t, bob, "token", "list").ok(t).stdout; !strings.Contains(table, "MADE BY") || !strings.Contains(table, "admin:"+aliceID) {
		t.Errorf("the enrollment token table does not say who made the token:\n%s", table)
	}

	r = s.cli(t, bob, "admin", "token", "revoke", aliceID, "-o", "json").ok(t)
	var rev struct {
		RevokedIDs []string `json:"revoked_ids"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rev); err != nil || len(rev.RevokedIDs) != 3 || rev.RevokedIDs[0] != aliceID || !slices.Contains(rev.RevokedIDs, ciID) {
		t.Fatalf("revoke alice: %v %s", err, r.stdout)
	}
	if !strings.Contains(r.stderr, "revoked, with the 2 made through it") {
		t.Errorf("revoke says %q", r.stderr)
	}
	s.cli(t, alice, "cluster", "list").refused(t, "or one that was revoked")
	// The enrollment token alice made went with it.
	s.cli(t, enrollToken, "bake", "--cluster", "orders", "--role", "taskmanager", "--holder", "tm-0", "--out", filepath.Join(t.TempDir(), "tls")).
		refused(t, "was made through administrator token "+aliceID+", revoked with the tokens made through it")
	if l := s.cli(t, bob, "token", "list").ok(t).stdout; strings.Contains(l, "admin:"+aliceID) {
		t.Errorf("the enrollment token revoked with alice's is still listed:\n%s", l)
	}
	audit := s.cli(t, bob, "audit", "list", "-o", "json").ok(t).stdout
	if strings.Count(audit, `"admin_token.revoke"`) != 1 || !strings.Contains(audit, `"made": "2"`) || !strings.Contains(audit, ciID) {
		t.Errorf("the revocation is not audited once, with what it took:\n%s", audit)
	}
	table = s.cli(t, bob, "admin", "token", "list").ok(t).stdout
	if !strings.Contains(table, "revoked with "+aliceID) || !strings.Contains(table, "STATE") {
		t.Errorf("the list does not show the tokens made through alice's as revoked with it:\n%s", table)
	}

	// bob's token (90 days, made with the dev token) and the dev token (no
	// expiry) are left. Revoking the dev token, with bob's or alone, would
	// leave no token that does not expire: refused until there is another.
	devID := ""
	if err := json.Unmarshal([]byte(s.cli(t, bob, "admin", "token", "list", "-o", "json").ok(t).stdout), &listed); err != nil {
		t.Fatal(err)
	}
	for _, tk := range listed.Tokens {
		if tk.Name == "dev" {
			devID = tk.ID
		}
	}
	s.cli(t, bob, "admin", "token", "revoke", devID).refused(t, "leaves no administrator token")
	s.cli(t, bob, "admin", "token", "revoke", devID, "--keep-made").refused(t, "leaves only administrator tokens that expire by "+bobExp)
	s.cli(t, bob, "cluster", "list").ok(t)
	breakGlass, breakGlassID, _ := create(s.admin, "break-glass", "--ttl", "0")
	s.cli(t, bob, "admin", "token", "revoke", devID, "--keep-made").ok(t)
	s.cli(t, breakGlass, "cluster", "list").ok(t)
	s.cli(t, bob, "admin", "token", "revoke", breakGlassID).refused(t, "pass --force to revoke it anyway")
	// A revoked token is refused as unknown or revoked (its record keeps no hash to check a secret against).
	s.cli(t, s.admin, "cluster", "list").refused(t, "or one that was revoked")
	// Forced: bob may revoke the break-glass token (as for a stolen one).
	r = s.cli(t, bob, "admin", "token", "revoke", breakGlassID, "--force", "-o", "json").ok(t)
	if !strings.Contains(r.stdout, breakGlassID) {
		t.Errorf("forced revoke: %s", r.stdout)
	}
	s.cli(t, breakGlass, "cluster", "list").refused(t, "or one that was revoked")
	s.cli(t, bob, "cluster", "list").ok(t)

	// In the audit table a refusal's reason comes last, padding no other
	// column: the rows of accepted actions stay short.
	table = s.cli(t, bob, "audit", "list").ok(t).stdout
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if h := strings.Fields(lines[0]); len(h) != 8 || h[6] != "DETAILS" || h[7] != "REASON" {
		t.Errorf("audit list header: %q", lines[0])
	}
	for _, l := range lines[1:] {
		if strings.Contains(l, " ok ") && len(l) > 400 {
			t.Errorf("an accepted action's row is %d characters, padded by a refusal's reason:\n%s", len(l), l)
		}
		if strings.Contains(l, " denied ") && !strings.HasSuffix(l, "create another first (flinkpki admin token create)") && strings.Contains(l, "leaves none") {
			t.Errorf("a refusal's reason is not last: %s", l)
		}
	}

	oneLineError(t, s.cli(t, bob, "admin", "token", "create", "--name", "x", "--ttl", "30s"), 2, "use a duration from 1m to 3650d, or 0 for none")
	oneLineError(t, s.cli(t, bob, "admin", "token", "create"), 2, "--name is required")
	oneLineError(t, s.cli(t, bob, "admin", "token", "revoke", "fpe_"+strings.Repeat("a", 26)+"_x"), 2, "that is an enrollment token (fpe_)")
}

// TestAListedTokenPastItsExpiryIsExpiredWhateverItsState: the listings'
// "expired" says whether the expiry has passed, for a revoked token too
// ("state" says whether it can be used).
func TestAListedTokenPastItsExpiryIsExpiredWhateverItsState(t *testing.T) {
	t.Parallel()
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	for _, c := range []struct {
		state   string
		expires time.Time
		want    bool
	}{{"revoked", past, true}, {"revoked", future, false}, {"expired", past, true}, {"valid", time.Time{}, false}} {
		if r := adminTokenRowOf("id", "n", "", c.state, "", nil, past, c.expires, time.Time{}); r.Expired != c.want {
			t.Errorf("%s, expires %v: expired %v, want %v", c.state, c.expires, r.Expired, c.want)
		}
	}
}
