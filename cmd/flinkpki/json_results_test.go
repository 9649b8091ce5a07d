package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/token"
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
	oneLineError(t, r, 2, `deleting cluster "keep" cannot be undone: add --yes to delete it`)
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
	if want := (released{Cluster: "orders", Holder: "tm-1", Purpose: "all", Released: 1}); got != want {
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

// fileFacts returns a file's size and SHA-256 in lower-case hex.
func fileFacts(t testing.TB, path string) (int64, string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return int64(len(b)), hex.EncodeToString(sum[:])
}

func TestAdminBackupAndRestoreReportTheFilesInJSON(t *testing.T) {
	s := startServer(t, "")
	created := time.Now().Truncate(time.Second)
	s.cli(t, s.admin, "cluster", "create", "backed").ok(t)
	dir := t.TempDir()

	// The table (default) output is unchanged: nothing on stdout, lines on stderr.
	tableBackup := filepath.Join(dir, "table.db")
	r := s.cli(t, s.admin, "admin", "backup", "--out", tableBackup).ok(t)
	size, _ := fileFacts(t, tableBackup)
	if want := fmt.Sprintf("backup written to %s (%d bytes); keep the server's KEK separately: a restore needs it\n", tableBackup, size); r.stdout != "" || r.stderr != want {
		t.Errorf("admin backup (table): stdout %q, stderr %q, want stderr %q", r.stdout, r.stderr, want)
	}

	backup := filepath.Join(dir, "json.db")
	r = s.cli(t, s.admin, "admin", "backup", "--out", backup, "-o", "json").ok(t)
	var bk struct {
		Path   string `json:"path"`
		Bytes  int64  `json:"bytes"`
		SHA256 string `json:"sha256"`
	}
	decodeResult(t, r.stdout, &bk)
	size, sum := fileFacts(t, backup)
	if bk.Path != backup || bk.Bytes != size || bk.SHA256 != sum || size == 0 {
		t.Errorf("admin backup -o json = %+v, want path %s, %d bytes, sha256 %s", bk, backup, size, sum)
	}
	if !strings.HasPrefix(r.stderr, "backup written to "+backup) {
		t.Errorf("admin backup -o json: stderr %q", r.stderr)
	}
	r = s.cli(t, s.admin, "admin", "backup", "--out", backup, "-o", "json")
	r.refused(t, "already exists")
	noJSON(t, r)

	restoreLines := func(name string, n int64, dataDir string) string {
		return fmt.Sprintf("restored %s (%d bytes) to %s\n", name, n, filepath.Join(dataDir, "flinkpki.db")) +
			fmt.Sprintf("next: start the server with the KEK of the backed-up server:\n  flinkpki serve --data-dir %s --kek-file KEK_FILE\n", dataDir) +
			"its serving CA is the backed-up one, so clients keep their server-ca.crt (unless it was replaced since the backup: compare flinkpki server-ca after the first start); then check: flinkpki audit verify\n"
	}
	// asOfLine is the line that names the backup's newest audit entry (the
	// cluster's creation, or the first backup), which withoutAsOf checks and
	// takes out of stderr, answering its time.
	asOfLine := regexp.MustCompile(`the backup holds the store as of its newest audit entry, (\S+) \(\S+ ago\): what the backed-up server did since \(CA steps, enrollments, token revocations\) is undone; read the README's "Backup and restore" before this server takes requests\n`)
	withoutAsOf := func(what, stderr string) (string, string) {
		t.Helper()
		m := asOfLine.FindStringSubmatch(stderr)
		if m == nil {
			t.Errorf("%s: stderr %q does not say as of when the backup holds the store", what, stderr)
			return stderr, ""
		}
		if at, err := time.Parse(time.RFC3339, m[1]); err != nil || at.Before(created) || at.After(time.Now()) {
			t.Errorf("%s: the backup is said to hold the store as of %s (%v), want a time from %s on, the cluster's creation", what, m[1], err, created.Format(time.RFC3339))
		}
		return strings.Replace(stderr, m[0], "", 1), m[1]
	}
	tableDir := filepath.Join(dir, "restored-table")
	r = runCLI(t, nil, "admin", "restore", tableBackup, "--data-dir", tableDir).ok(t)
	tableSize, _ := fileFacts(t, tableBackup)
	if got, _ := withoutAsOf("admin restore (table)", r.stderr); r.stdout != "" || got != restoreLines(tableBackup, tableSize, tableDir) {
		t.Errorf("admin restore (table): stdout %q, stderr %q, want stderr %q and the as-of line", r.stdout, r.stderr, restoreLines(tableBackup, tableSize, tableDir))
	}

	type restored struct {
		Backup  string `json:"backup"`
		DataDir string `json:"data_dir"`
		Path    string `json:"path"`
		Bytes   int64  `json:"bytes"`
		SHA256  string `json:"sha256"`
		AsOf    string `json:"as_of"`
	}
	for _, fromStdin := range []bool{false, true} {
		dataDir := filepath.Join(t.TempDir(), "data")
		arg, name := backup, backup
		var stdin io.Reader
		if fromStdin {
			raw, err := os.ReadFile(backup)
			if err != nil {
				t.Fatal(err)
			}
			arg, name, stdin = "-", "the backup from standard input", bytes.NewReader(raw)
		}
		r = runCLIStdin(t, nil, stdin, "admin", "restore", arg, "--data-dir", dataDir, "-o", "json").ok(t)
		var got restored
		decodeResult(t, r.stdout, &got)
		db := filepath.Join(dataDir, "flinkpki.db")
		stderr, asOf := withoutAsOf("admin restore "+arg+" -o json", r.stderr)
		if want := (restored{Backup: arg, DataDir: dataDir, Path: db, Bytes: size, SHA256: sum, AsOf: asOf}); got != want || asOf == "" {
			t.Errorf("admin restore %s -o json = %+v, want %+v", arg, got, want)
		}
		if n, h := fileFacts(t, db); n != size || h != sum {
			t.Errorf("the restored %s differs from the backup", db)
		}
		if want := restoreLines(name, size, dataDir); stderr != want {
			t.Errorf("admin restore %s -o json: stderr %q, want %q and the as-of line", arg, r.stderr, want)
		}
	}
	r = runCLI(t, nil, "admin", "restore", backup, "--data-dir", tableDir, "-o", "json")
	r.refused(t, "is not empty")
	noJSON(t, r)
}

// TestOfflineAdminCommandsReportTheirResultInJSON: bootstrap, revoke-token
// and migrate on a stopped server's bbolt store.
func TestOfflineAdminCommandsReportTheirResultInJSON(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	s.stop(t)
	kek := filepath.Join(dir, "kek")
	storeFlags := []string{"--data-dir", dir, "--kek-file", kek}
	admin := func(args ...string) result {
		t.Helper()
		return runCLI(t, nil, append(append([]string{"admin"}, args...), storeFlags...)...)
	}

	// bootstrap: the table (default) output is unchanged, the token alone on stdout.
	r := admin("bootstrap", "--name", "ops").ok(t)
	opsToken := strings.TrimSpace(r.stdout)
	rememberSecret(opsToken)
	_, opsID, err := token.ParseID(opsToken)
	if err != nil || r.stdout != opsToken+"\n" || !strings.HasPrefix(opsToken, "fpa_") {
		t.Errorf("admin bootstrap (table): stdout %q (%v), want the token alone", r.stdout, err)
	}
	if r.stderr != "administrator token \"ops\" created; keep it secret (store it with mode 0600)\n" {
		t.Errorf("admin bootstrap (table): stderr %q", r.stderr)
	}

	r = admin("bootstrap", "--name", "ci", "-o", "json").ok(t)
	var boot struct {
		Token string `json:"token"`
		ID    string `json:"id"`
		Name  string `json:"name"`
	}
	decodeResult(t, r.stdout, &boot)
	rememberSecret(boot.Token)
	if kind, id, err := token.ParseID(boot.Token); err != nil || kind != token.KindAdmin || id != boot.ID || boot.Name != "ci" {
		t.Errorf("admin bootstrap -o json = {id %q, name %q} (token's ID %q, %v), want an administrator token named ci with its ID", boot.ID, boot.Name, id, err)
	}
	if r.stderr != "administrator token \"ci\" created; keep it secret (store it with mode 0600)\n" {
		t.Errorf("admin bootstrap -o json: stderr %q", r.stderr)
	}
	var listed []struct{ ID, Name string }
	if err := json.Unmarshal([]byte(admin("list-tokens", "-o", "json").ok(t).stdout), &listed); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, l := range listed {
		names[l.ID] = l.Name
	}
	if names[boot.ID] != "ci" || names[opsID] != "ops" {
		t.Errorf("list-tokens after bootstrap: %+v, want %s (ci) and %s (ops)", listed, boot.ID, opsID)
	}
	// The token from the JSON opens the restarted server.
	ciFile := writeFile(t, "ci.token", boot.Token)
	s2 := startServerAt(t, dir, freeAddr(t))
	s2.cli(t, ciFile, "cluster", "get", "orders").ok(t)
	s2.stop(t)

	// revoke-token: the table (default) output is unchanged.
	r = admin("revoke-token", opsID).ok(t)
	if r.stdout != "" || r.stderr != "administrator token "+opsID+" revoked\n" {
		t.Errorf("admin revoke-token (table): stdout %q, stderr %q", r.stdout, r.stderr)
	}
	r = admin("revoke-token", boot.ID, "-o", "json").ok(t)
	var revoked struct {
		ID      string `json:"id"`
		Revoked bool   `json:"revoked"`
	}
	decodeResult(t, r.stdout, &revoked)
	if revoked.ID != boot.ID || !revoked.Revoked {
		t.Errorf("admin revoke-token -o json = %+v, want %s revoked", revoked, boot.ID)
	}
	if r.stderr != "administrator token "+boot.ID+" revoked\n" {
		t.Errorf("admin revoke-token -o json: stderr %q", r.stderr)
	}
	var states []struct{ ID, State string }
	if err := json.Unmarshal([]byte(admin("list-tokens", "-o", "json").ok(t).stdout), &states); err != nil {
		t.Fatal(err)
	}
	for _, st := range states {
		if (st.ID == boot.ID || st.ID == opsID) && st.State != "revoked" {
			t.Errorf("revoked token %s is listed as %q", st.ID, st.State)
		}
	}
	r = admin("revoke-token", boot.ID, "-o", "json")
	r.refused(t, `administrator token "`+boot.ID+`" was revoked at `)
	noJSON(t, r)

	// migrate: the same counts as the table, per bucket.
	src := filepath.Join(dir, "flinkpki.db")
	before := boltContents(t, src)
	tableTarget := filepath.Join(t.TempDir(), "table.db")
	table := runCLI(t, nil, "admin", "migrate", "--from", "bolt:"+src, "--to", "bolt:"+tableTarget, "--kek-file", kek).ok(t)
	target := filepath.Join(t.TempDir(), "json.db")
	r = runCLI(t, nil, "admin", "migrate", "--from", "bolt:"+src, "--to", "bolt:"+target, "--kek-file", kek, "-o", "json").ok(t)
	var mig struct {
		From         string         `json:"from"`
		To           string         `json:"to"`
		Records      map[string]int `json:"records"`
		AuditEntries uint64         `json:"audit_entries"`
		Verified     bool           `json:"verified"`
	}
	decodeResult(t, r.stdout, &mig)
	if mig.From != "bolt:"+src || mig.To != "bolt:"+target || !mig.Verified || mig.Records["clusters"] != 1 ||
		mig.Records["audit"] == 0 || mig.AuditEntries != uint64(mig.Records["audit"]) {
		t.Errorf("admin migrate -o json = %+v", mig)
	}
	if len(mig.Records) != len(store.Buckets) {
		t.Errorf("admin migrate -o json counts %d buckets, want %d", len(mig.Records), len(store.Buckets))
	}
	var wantTable strings.Builder
	bucketNames := make([]string, 0, len(mig.Records))
	for b, n := range mig.Records {
		if n != len(before[b]) {
			t.Errorf("admin migrate -o json: bucket %s has %d records, the source %d", b, n, len(before[b]))
		}
		bucketNames = append(bucketNames, b)
	}
	sort.Strings(bucketNames)
	for _, b := range bucketNames {
		fmt.Fprintf(&wantTable, "%-14s %d\n", b, mig.Records[b])
	}
	if table.stdout != wantTable.String() {
		t.Errorf("admin migrate (table): stdout %q, want %q", table.stdout, wantTable.String())
	}
	if !strings.HasPrefix(table.stderr, "copied and verified bolt:"+src+" -> bolt:"+tableTarget+"; ") || !strings.HasPrefix(r.stderr, "copied and verified ") {
		t.Errorf("admin migrate: stderr %q (table), %q (json)", table.stderr, r.stderr)
	}
	r = runCLI(t, nil, "admin", "migrate", "--from", "bolt:"+src, "--to", "bolt:"+target, "--kek-file", kek, "-o", "json")
	r.refused(t, "not empty")
	noJSON(t, r)
}

func TestServerCAReportsTheTrustAnchorInJSON(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	startServer(t, dir).stop(t)
	path := filepath.Join(dir, "server-ca.crt")
	pemData, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemData)
	if block == nil {
		t.Fatal("server-ca.crt holds no PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(block.Bytes)
	var colons []string
	for _, b := range sum {
		colons = append(colons, fmt.Sprintf("%02X", b))
	}
	// The fingerprint as ca status and -o json show it: upper-case hex, colons.
	stderr := fmt.Sprintf("%s: %s, SHA-256 %s, valid until %s\n", path, cert.Subject, strings.Join(colons, ":"), cert.NotAfter.UTC().Format("2006-01-02"))

	// The table (default) output is unchanged: the PEM on stdout, the fingerprint on stderr.
	r := runCLI(t, nil, "server-ca", "--data-dir", dir).ok(t)
	if r.stdout != string(pemData) || r.stderr != stderr {
		t.Errorf("server-ca (table): stdout %q, stderr %q, want the file and %q", r.stdout, r.stderr, stderr)
	}

	r = runCLI(t, nil, "server-ca", "--data-dir", dir, "-o", "json").ok(t)
	var got serverCAJSON
	decodeResult(t, r.stdout, &got)
	if got.Path != path || got.PEM != string(pemData) || got.Subject != cert.Subject.String() || got.Subject == "" {
		t.Errorf("server-ca -o json: path %q, subject %q, pem %q; want %s, %q and the file", got.Path, got.Subject, got.PEM, path, cert.Subject)
	}
	if want := strings.Join(colons, ":"); got.SHA256Fingerprint != want {
		t.Errorf("server-ca -o json: sha256_fingerprint %q, want %q", got.SHA256Fingerprint, want)
	}
	if want := cert.NotBefore.UTC().Format(time.RFC3339); got.NotBefore != want {
		t.Errorf("server-ca -o json: not_before %q, want %q", got.NotBefore, want)
	}
	if want := cert.NotAfter.UTC().Format(time.RFC3339); got.NotAfter != want {
		t.Errorf("server-ca -o json: not_after %q, want %q", got.NotAfter, want)
	}
	if r.stderr != stderr {
		t.Errorf("server-ca -o json: stderr %q, want %q", r.stderr, stderr)
	}

	r = runCLI(t, nil, "server-ca", "--data-dir", t.TempDir(), "-o", "json")
	r.refused(t, "read the server's trust anchor")
	noJSON(t, r)
}

func TestBenchPopulateReportsWhatItCreatedInJSON(t *testing.T) {
	stopped := func() (string, []string) {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "data")
		startServer(t, dir).stop(t)
		return dir, []string{"bench", "populate", "--data-dir", dir, "--kek-file", filepath.Join(dir, "kek")}
	}

	// The table (default) output is unchanged.
	_, args := stopped()
	r := runCLI(t, nil, append(args, "--clusters", "1", "--holders", "5")...).ok(t)
	if !regexp.MustCompile(`^populated 1 clusters and 5 holders in \d+s\ndatabase size: \d+\.\d MB\n$`).MatchString(r.stdout) ||
		!regexp.MustCompile(`^populate: 5 holders \(\d+s\)\n$`).MatchString(r.stderr) {
		t.Errorf("bench populate (table): stdout %q, stderr %q", r.stdout, r.stderr)
	}

	dir, args := stopped()
	r = runCLI(t, nil, append(args, "--clusters", "3", "--holders", "50", "--big-cluster", "30", "-o", "json")...).ok(t)
	var got struct {
		DataDir           string  `json:"data_dir"`
		Clusters          int     `json:"clusters"`
		Holders           int     `json:"holders"`
		BigClusterHolders int     `json:"big_cluster_holders"`
		Seconds           float64 `json:"seconds"`
		DatabaseBytes     *int64  `json:"database_bytes"`
	}
	decodeResult(t, r.stdout, &got)
	size, _ := fileFacts(t, filepath.Join(dir, "flinkpki.db"))
	if got.DataDir != dir || got.Clusters != 3 || got.Holders != 50 || got.BigClusterHolders != 30 || got.Seconds <= 0 ||
		got.DatabaseBytes == nil || *got.DatabaseBytes != size {
		t.Errorf("bench populate -o json = %+v, want 3 clusters, 50 holders, 30 in the big one, database of %d bytes", got, size)
	}
	if !regexp.MustCompile(`^populate: 50 holders \(\d+s\)\n$`).MatchString(r.stderr) {
		t.Errorf("bench populate -o json: stderr %q", r.stderr)
	}

	// A second run finds its clusters there and is refused, without JSON.
	r = runCLI(t, nil, append(args, "--clusters", "1", "--holders", "0", "-o", "json")...)
	r.refused(t, "create scale-00000")
	noJSON(t, r)
	r = runCLI(t, nil, append(args, "--clusters", "0", "--holders", "5", "-o", "json")...)
	oneLineError(t, r, 2, "--holders 5 needs at least one cluster")
	noJSON(t, r)

	s := startServer(t, dir, "--rotation-interval", "0")
	for cluster, want := range map[string]int{"scale-00000": 30, "scale-00001": 10, "scale-00002": 10} {
		var st struct {
			LiveHolders int `json:"live_holders"`
		}
		decodeResult(t, s.cli(t, s.admin, "ca", "status", "--cluster", cluster, "-o", "json").ok(t).stdout, &st)
		if st.LiveHolders != want {
			t.Errorf("%s has %d live holders, want %d", cluster, st.LiveHolders, want)
		}
	}
}

// TestEveryCommandButServeTakesOutputJSON keeps "-o json everywhere": a new
// command without -o table|json fails here.
func TestEveryCommandButServeTakesOutputJSON(t *testing.T) {
	a := &app{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }, now: time.Now}
	var walk func(cmd *cobra.Command)
	seen := 0
	walk = func(cmd *cobra.Command) {
		if cmd.HasSubCommands() {
			for _, c := range cmd.Commands() {
				walk(c)
			}
			return
		}
		if !cmd.Runnable() || cmd.Name() == "help" || cmd.Name() == "serve" {
			return
		}
		seen++
		f := cmd.Flags().Lookup("output")
		if f == nil || f.Shorthand != "o" || f.Value.Type() != "table|json" || f.DefValue != "table" {
			t.Errorf("%s has no -o/--output table|json flag (table by default)", cmd.CommandPath())
		}
	}
	walk(a.newRootCmd())
	if seen < 30 {
		t.Errorf("walked %d commands, want every command of the CLI", seen)
	}
}
