package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
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
			"its serving CA is the backed-up one, so clients keep their server-ca.crt; then check: flinkpki audit verify\n"
	}
	tableDir := filepath.Join(dir, "restored-table")
	r = runCLI(t, nil, "admin", "restore", tableBackup, "--data-dir", tableDir).ok(t)
	tableSize, _ := fileFacts(t, tableBackup)
	if want := restoreLines(tableBackup, tableSize, tableDir); r.stdout != "" || r.stderr != want {
		t.Errorf("admin restore (table): stdout %q, stderr %q, want stderr %q", r.stdout, r.stderr, want)
	}

	type restored struct {
		Backup  string `json:"backup"`
		DataDir string `json:"data_dir"`
		Path    string `json:"path"`
		Bytes   int64  `json:"bytes"`
		SHA256  string `json:"sha256"`
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
		if want := (restored{Backup: arg, DataDir: dataDir, Path: db, Bytes: size, SHA256: sum}); got != want {
			t.Errorf("admin restore %s -o json = %+v, want %+v", arg, got, want)
		}
		if n, h := fileFacts(t, db); n != size || h != sum {
			t.Errorf("the restored %s differs from the backup", db)
		}
		if want := restoreLines(name, size, dataDir); r.stderr != want {
			t.Errorf("admin restore %s -o json: stderr %q, want %q", arg, r.stderr, want)
		}
	}
	r = runCLI(t, nil, "admin", "restore", backup, "--data-dir", tableDir, "-o", "json")
	r.refused(t, "is not empty")
	noJSON(t, r)
}
