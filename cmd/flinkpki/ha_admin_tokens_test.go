package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flinkpki/flinkpki/enroll"
	pb "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// TestAStolenTokenMintingWithoutEndIsRevokedOnEtcd: on an HA installation a
// thief with an administrator token mints tokens as fast as it can, from
// four connections, while an administrator revokes it. Token creation is
// bounded server-wide (a burst, then one a second), so the revocation,
// which reads every token, commits; every token the thief made is refused
// from then on, and the thief's requests past the bound are refused as
// RESOURCE_EXHAUSTED.
func TestAStolenTokenMintingWithoutEndIsRevokedOnEtcd(t *testing.T) {
	h := newHAStore(t)
	r := h.replica(t, "--dev")
	dir := t.TempDir()
	file := func(name, tok string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A keeper that does not expire, and the token that is stolen.
	keeper := file("keeper", strings.TrimSpace(r.cli(t, r.admin, "admin", "token", "create", "--name", "keeper", "--ttl", "0").ok(t).stdout))
	stolen := strings.TrimSpace(r.cli(t, r.admin, "admin", "token", "create", "--name", "stolen", "--ttl", "0").ok(t).stdout)
	stolenID := strings.Split(stolen, "_")[1]

	conn, err := enroll.Dial(r.addr, r.caFile, stolen)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewAdminServiceClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		minted          []string
		limited, others int
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := client.CreateAdminToken(ctx, &pb.CreateAdminTokenRequest{Name: "minted"})
				mu.Lock()
				switch {
				case err == nil:
					minted = append(minted, resp.GetToken())
				case status.Code(err) == codes.ResourceExhausted:
					limited++
				case ctx.Err() == nil:
					others++
				}
				mu.Unlock()
			}
		}()
	}
	// Revoked once the thief has run into the bound: how long that takes
	// is the machine's (a loaded one mints the burst slowly), not the
	// test's to assume.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n, m := limited, len(minted)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			wg.Wait()
			t.Fatalf("the thief minted %d tokens in a minute and was never refused as rate-limited; want a burst of at most %d, then refusals", m, 20)
		}
	}
	rev := r.cli(t, keeper, "admin", "token", "revoke", stolenID)
	time.Sleep(300 * time.Millisecond)
	cancel()
	wg.Wait()
	if rev.code != 0 {
		t.Fatalf("the revocation failed while the thief minted: %s", rev.stderr)
	}
	if len(minted) == 0 || len(minted) > 40 || limited == 0 {
		t.Errorf("the thief minted %d tokens and was refused %d times as rate-limited; want a bounded burst, then refusals", len(minted), limited)
	}
	for _, m := range minted {
		if out := r.cli(t, file("m", m), "cluster", "list"); out.code == 0 {
			t.Fatalf("a token minted with the stolen one still works after its revocation")
		}
	}
	// The refusals are audited under the create's action (folded into
	// the refusal summaries past their share, not one entry each).
	denied := 0
	for _, e := range auditEntries(t, r, "") {
		if e.Action == "admin_token.create" && e.Outcome == "denied" && e.Details["reason"] == "rate_limited" {
			denied++
		}
	}
	// Bounded: a source gets 50 entries of its own at once and 10 a second
	// after (api's refusalAuditBurst and refusalAuditRate); the rest wait
	// for a summary. A slow machine refuses fewer than 50, all audited.
	if denied == 0 || denied > limited || denied > 50+10*2 {
		t.Errorf("%d rate-limited creates audited as admin_token.create refusals, of %d; want some, at most 70", denied, limited)
	}
	t.Logf("minted %d, rate-limited %d (%d audited), other errors %d", len(minted), limited, denied, others)
}
