package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/flinkpki/flinkpki/internal/jdktest"
)

func TestMetricsShowIssuanceRefusalAndCAExpiry(t *testing.T) {
	metricsAddr := freeAddr(t)
	s := startServer(t, "", "--metrics-listen", metricsAddr)
	s.cli(t, s.admin, "cluster", "create", "metered").ok(t)
	s.cli(t, s.admin, "cluster", "create", "manual").ok(t)
	s.cli(t, s.admin, "cluster", "update", "manual", "--auto-rotate", "false").ok(t)
	s.cli(t, "", "init", "--cluster", "metered", "--role", "taskmanager", "--holder", "tm-0",
		"--out", filepath.Join(t.TempDir(), "tls"), "--token-file", s.tokenFor(t, "metered", "taskmanager")).ok(t)
	s.cli(t, "", "init", "--cluster", "metered", "--role", "jobmanager", "--holder", "jm-0", "--timeout", "3s",
		"--out", filepath.Join(t.TempDir(), "tls"), "--token-file", s.tokenFor(t, "metered", "taskmanager")).refused(t, "token is for role")

	text := scrapeMetrics(t, metricsAddr)
	for _, want := range []string{
		`flinkpki_certificates_issued_total{cluster="metered",role="taskmanager"} 1`,
		`flinkpki_requests_denied_total{reason="permission_denied"}`,
		`flinkpki_ca_expiry_timestamp_seconds{ca="internal-1",cluster="metered",state="active"}`,
		`flinkpki_live_leaf_earliest_expiry_timestamp_seconds{cluster="metered"}`,
		`flinkpki_live_holders{cluster="metered"} 1`, // tm-0; jm-0 was refused
		`flinkpki_rotation_next_step_timestamp_seconds{auto_rotate="true",cluster="metered",purpose="internal",step="prepare"} 1.`,
		`flinkpki_rotation_next_step_timestamp_seconds{auto_rotate="false",cluster="manual",purpose="rest",step="prepare"} 1.`,
		`flinkpki_expiry_gauges_refresh_timestamp_seconds 1.`, // a Unix time: the first scrape waited for the first refresh
		`flinkpki_expiry_gauges_refresh_duration_seconds`,
		`flinkpki_grpc_request_duration_seconds_bucket`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(text, "tm-0") {
		t.Error("/metrics carries a holder name: label cardinality must stay bounded")
	}
	// The database file's size, read at the scrape: the server is idle, so
	// it is the size of the file now.
	fi, err := os.Stat(filepath.Join(s.dir, "flinkpki.db"))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("flinkpki_store_size_bytes %g\n", float64(fi.Size())); !strings.Contains(scrapeMetrics(t, metricsAddr), want) {
		t.Errorf("/metrics lacks %q", want)
	}
	// The serving certificate's and the serving CA's expiry: those of the
	// certificate a client sees and of the server-ca.crt it trusts.
	caPEM, err := os.ReadFile(s.caFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(caPEM)
	servingCA, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: certPool(servingCA), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	text = scrapeMetrics(t, metricsAddr)
	for _, want := range []string{
		fmt.Sprintf("flinkpki_serving_cert_expiry_timestamp_seconds %g\n", float64(leaf.NotAfter.Unix())),
		fmt.Sprintf("flinkpki_serving_ca_expiry_timestamp_seconds %g\n", float64(servingCA.NotAfter.Unix())),
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func certPool(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// TestTheBakeKeyPoolRefillsWhenIdleAndShowsInMetrics: after a bake of an
// RSA cluster the pool for its key type fills up to --bake-key-pool while
// the server is idle, and /metrics says how many keys are ready, so an
// operator (and make bench) can tell a burst will be served from it.
func TestTheBakeKeyPoolRefillsWhenIdleAndShowsInMetrics(t *testing.T) {
	metricsAddr := freeAddr(t)
	s := startServer(t, "", "--metrics-listen", metricsAddr, "--bake-key-pool", "3")
	s.cli(t, s.admin, "cluster", "create", "images", "--key-type", "rsa-2048").ok(t)
	s.cli(t, s.admin, "bake", "--cluster", "images", "--role", "taskmanager", "--holder", "image-1",
		"--out", filepath.Join(t.TempDir(), "tls")).ok(t)
	want := `flinkpki_bake_key_pool_ready{key_type="rsa-2048"} 3`
	deadline := time.Now().Add(2 * time.Minute) // RSA generation under -race is slow
	for {
		body := scrapeMetrics(t, metricsAddr)
		if strings.Contains(body, want) {
			break
		}
		if time.Now().After(deadline) {
			i := strings.Index(body, "flinkpki_bake_key_pool_ready")
			t.Fatalf("/metrics never showed %s; it shows:\n%s", want, body[max(i, 0):min(max(i, 0)+300, len(body))])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type auditEntry struct {
	Seq     uint64 `json:"seq"`
	Actor   string `json:"actor"`
	Action  string `json:"action"`
	Outcome string `json:"outcome"`
	Cluster string `json:"cluster"`
}

func TestAuditTrailRecordsActorsAndDetectsAnEditedEntry(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	s.cli(t, s.admin, "cluster", "create", "audited").ok(t)
	s.cli(t, "", "init", "--cluster", "audited", "--role", "taskmanager", "--holder", "tm-0",
		"--out", filepath.Join(t.TempDir(), "tls"), "--token-file", s.tokenFor(t, "audited", "taskmanager")).ok(t)
	s.cli(t, "", "init", "--cluster", "audited", "--role", "jobmanager", "--holder", "jm-0", "--timeout", "3s",
		"--out", filepath.Join(t.TempDir(), "tls"), "--token-file", s.tokenFor(t, "audited", "taskmanager")).refused(t, "token is for role")

	raw := s.cli(t, s.admin, "audit", "list", "--cluster", "audited", "-o", "json").ok(t).stdout
	var es []auditEntry
	if err := json.Unmarshal([]byte(raw), &es); err != nil {
		var wrapped struct{ Entries []auditEntry }
		if err2 := json.Unmarshal([]byte(raw), &wrapped); err2 != nil {
			t.Fatalf("audit list -o json: %v\n%s", err, raw)
		}
		es = wrapped.Entries
	}
	found := map[string]string{}
	for _, e := range es {
		found[e.Action+"/"+e.Outcome] = e.Actor
	}
	if a := found["cluster.create/ok"]; !strings.HasPrefix(a, "admin:") {
		t.Errorf("create not audited with its administrator actor: %v", found)
	}
	if a := found["enroll/ok"]; !strings.HasPrefix(a, "enrollment-token:") {
		t.Errorf("issuance not audited with its token actor: %v", found)
	}
	if a := found["enroll.keytype/denied"] + found["enroll/denied"]; !strings.Contains(a, "enrollment-token:") {
		t.Errorf("refusal not audited with its actor: %v", found)
	}
	s.cli(t, s.admin, "audit", "verify").ok(t)
	// In parts of 2 entries (a long trail goes 200,000 at a time), with
	// progress on stderr, to the same end.
	var whole, parts struct {
		OK      bool   `json:"ok"`
		Entries uint64 `json:"entries"`
	}
	json.Unmarshal([]byte(s.cli(t, s.admin, "audit", "verify", "-o", "json").ok(t).stdout), &whole)
	pr := s.cli(t, s.admin, "audit", "verify", "--part", "2", "-o", "json").ok(t)
	json.Unmarshal([]byte(pr.stdout), &parts)
	if !whole.OK || whole.Entries < 4 || parts != whole || !strings.Contains(pr.stderr, "verified 2 entries...") {
		t.Errorf("verify in parts of 2 = %+v (stderr %q); whole = %+v", parts, pr.stderr, whole)
	}
	s.stop(t)

	// Edit one entry in a copy of the database; verify must name it.
	copyDir := filepath.Join(t.TempDir(), "copy")
	os.MkdirAll(copyDir, 0o700)
	for _, f := range []string{"flinkpki.db", "kek", "admin.token"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(copyDir, f), b, 0o600)
	}
	db, err := bbolt.Open(filepath.Join(copyDir, "flinkpki.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	var edited uint64
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		c := b.Cursor()
		c.First()
		k, v := c.Next() // the second entry
		var e map[string]any
		json.Unmarshal(v, &e)
		e["outcome"] = "denied"
		edited = uint64(e["seq"].(float64))
		nv, _ := json.Marshal(e)
		return b.Put(append([]byte(nil), k...), nv)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	c := startServer(t, copyDir)
	r := c.cli(t, c.admin, "audit", "verify")
	r.refused(t, "audit entry")
	if !strings.Contains(r.stderr, " "+itoa(edited)+" ") && !strings.Contains(r.stderr, " "+itoa(edited)+":") {
		t.Errorf("verify does not name entry %d: %s", edited, r.stderr)
	}
	r = c.cli(t, c.admin, "audit", "verify", "--part", "1")
	r.refused(t, "audit entry "+itoa(edited)+" was modified")
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func TestBackupTakenDuringEnrollmentsRestoresAndSignsWithTheSameCAs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	s.cli(t, s.admin, "cluster", "create", "backed").ok(t)
	before := filepath.Join(t.TempDir(), "before")
	s.cli(t, s.admin, "bake", "--cluster", "backed", "--role", "jobmanager", "--holder", "jm-0", "--out", before).ok(t)

	tok := s.tokenFor(t, "backed", "taskmanager", "--uses", "1000")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	issued := 0
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil && i < 200; i++ {
				r := s.cli(t, "", "init", "--cluster", "backed", "--role", "taskmanager", "--holder", "tm-"+itoa(uint64(w)),
					"--out", filepath.Join(t.TempDir(), "load"), "--token-file", tok, "--timeout", "5s")
				if r.code == 0 {
					mu.Lock()
					issued++
					mu.Unlock()
				}
			}
		}(w)
	}
	time.Sleep(300 * time.Millisecond)
	backup := filepath.Join(t.TempDir(), "backup.db")
	s.cli(t, s.admin, "admin", "backup", "--out", backup).ok(t)
	cancel()
	wg.Wait()
	if issued == 0 {
		t.Fatal("no enrollment ran during the backup")
	}
	// The copy that left the server is in the trail, with its size.
	st, err := os.Stat(backup)
	if err != nil {
		t.Fatal(err)
	}
	audited := false
	for _, e := range auditEntries(t, s, "") {
		if e.Action == "store.backup" && e.Outcome == "ok" && strings.HasPrefix(e.Actor, "admin:") && e.Details["bytes"] == strconv.FormatInt(st.Size(), 10) {
			audited = true
		}
	}
	if !audited {
		t.Errorf("no store.backup entry by the administrator with the backup's %d bytes", st.Size())
	}
	s.stop(t)

	restored := filepath.Join(t.TempDir(), "restored")
	runCLI(t, nil, "admin", "restore", backup, "--data-dir", restored).ok(t)
	nonEmpty := t.TempDir()
	os.WriteFile(filepath.Join(nonEmpty, "x"), []byte("x"), 0o600)
	runCLI(t, nil, "admin", "restore", backup, "--data-dir", nonEmpty).refused(t, "not empty")

	// The restored server needs the same key-encryption key.
	kek, _ := os.ReadFile(filepath.Join(dir, "kek"))
	os.WriteFile(filepath.Join(restored, "kek"), kek, 0o600)
	r := startServer(t, restored)
	after := filepath.Join(t.TempDir(), "after")
	r.cli(t, r.admin, "bake", "--cluster", "backed", "--role", "taskmanager", "--holder", "tm-new", "--out", after).ok(t)
	for i, err := range jdktest.HandshakeAll(t, [][2]string{{before, after}, {after, before}}) {
		if err != nil {
			t.Errorf("pair %d: credentials from before the backup and after the restore do not talk: %v", i, err)
		}
	}
	r.cli(t, r.admin, "audit", "verify").ok(t)
}

// TestRefusedReadsAreAuditedAndGoodOnesAreNot: a read that is refused (a
// cluster that does not exist) leaves a denied entry with its actor and
// reason, like any refusal; a read that succeeds leaves none.
func TestRefusedReadsAreAuditedAndGoodOnesAreNot(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "here").ok(t)
	count := func() int {
		t.Helper()
		var es struct {
			Entries []json.RawMessage `json:"entries"`
		}
		json.Unmarshal([]byte(s.cli(t, s.admin, "audit", "list", "-o", "json").ok(t).stdout), &es)
		return len(es.Entries)
	}
	before := count()
	s.cli(t, s.admin, "ca", "status", "--cluster", "here").ok(t)
	s.cli(t, s.admin, "holder", "list", "--cluster", "here").ok(t)
	s.cli(t, s.admin, "cluster", "get", "here").ok(t)
	if n := count(); n != before {
		t.Fatalf("successful reads wrote %d audit entries", n-before)
	}

	s.cli(t, s.admin, "ca", "status", "--cluster", "gone").refused(t, `cluster "gone" not found`)
	s.cli(t, s.admin, "holder", "list", "--cluster", "gone").refused(t, `cluster "gone" not found`)
	s.cli(t, s.admin, "cluster", "get", "gone").refused(t, `cluster "gone" not found`)
	var es struct {
		Entries []struct {
			Actor   string            `json:"actor"`
			Action  string            `json:"action"`
			Outcome string            `json:"outcome"`
			Details map[string]string `json:"details"`
		} `json:"entries"`
	}
	json.Unmarshal([]byte(s.cli(t, s.admin, "audit", "list", "--cluster", "gone", "-o", "json").ok(t).stdout), &es)
	var got []string
	for _, e := range es.Entries {
		if e.Outcome != "denied" || e.Details["reason"] != "not_found" || !strings.HasPrefix(e.Actor, "admin:") {
			t.Errorf("refused read audited as %+v", e)
		}
		got = append(got, e.Action)
	}
	if strings.Join(got, ",") != "ca.status,holder.list,cluster.get" {
		t.Fatalf("refused reads audited as %v; want ca.status, holder.list and cluster.get", got)
	}
}

// TestJSONLogsAreJSONThroughout: with --log-format json every line serve
// writes to standard error is one JSON object, the --dev banner included
// (it was plain text amid the records), so a log shipper can read them all.
func TestJSONLogsAreJSONThroughout(t *testing.T) {
	s := startServer(t, "", "--log-format", "json")
	s.cli(t, s.admin, "cluster", "create", "logged").ok(t)
	s.cli(t, s.admin, "cluster", "get", "missing") // a refusal, logged
	s.stop(t)
	lines := strings.Split(strings.TrimSpace(s.stderr.String()), "\n")
	banner := false
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("a line of the JSON log is not JSON: %q", l)
		}
		if msg, _ := rec["msg"].(string); strings.HasPrefix(msg, servingLine) && strings.Contains(rec["export"].(string), "FLINKPKI_TOKEN_FILE=") {
			banner = true
		}
	}
	if !banner || len(lines) < 3 {
		t.Errorf("the JSON log lacks the dev banner's record (%d lines):\n%s", len(lines), s.stderr.String())
	}
}
