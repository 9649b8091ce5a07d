package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flinkpki/flinkpki/internal/jdktest"
)

func TestBadInputIsRefusedWithOneLineAndNothingChanges(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	s.cli(t, s.admin, "cluster", "create", "gone").ok(t)
	s.cli(t, s.admin, "cluster", "delete", "gone", "--yes").ok(t)
	before := s.cli(t, s.admin, "cluster", "list", "-o", "json").ok(t).stdout
	audit0 := s.cli(t, s.admin, "audit", "list", "-o", "json").ok(t).stdout

	existing := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(existing, []byte("keep me"), 0o600)
	garbage := filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(garbage, []byte("not-a-token"), 0o600)
	unknownAdmin := filepath.Join(t.TempDir(), "unknown-admin")
	os.WriteFile(unknownAdmin, []byte("fpa_aaaaaaaaaaaaaaaaaaaaaaaaaa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 0o600)
	out := filepath.Join(t.TempDir(), "out")

	cases := []struct {
		name  string
		token string
		args  []string
		code  int
		want  string
	}{
		{"an upper-case name", s.admin, []string{"cluster", "create", "Orders"}, 2, "lower-case"},
		{"a name over 63 characters", s.admin, []string{"cluster", "create", strings.Repeat("a", 64)}, 2, "63"},
		{"a path-like name", s.admin, []string{"cluster", "create", "../etc"}, 2, "cluster name"},
		{"a duplicate name", s.admin, []string{"cluster", "create", "orders"}, 1, "already exists"},
		{"an unknown key type", s.admin, []string{"cluster", "create", "x1", "--key-type", "dsa-1024"}, 2, "key type"},
		{"an unknown role", s.admin, []string{"bake", "--cluster", "orders", "--role", "driver", "--holder", "h", "--out", out}, 2, "role"},
		{"an unknown cluster", s.admin, []string{"cluster", "get", "nope"}, 1, `cluster "nope" not found`},
		{"a deleted cluster", s.admin, []string{"bake", "--cluster", "gone", "--role", "jobmanager", "--holder", "h", "--out", out}, 1, `cluster "gone" not found`},
		{"a missing token file", filepath.Join(t.TempDir(), "missing"), []string{"cluster", "list"}, 1, "token"},
		{"a garbage token", garbage, []string{"cluster", "list"}, 1, "token"},
		{"an unknown administrator token", unknownAdmin, []string{"cluster", "list"}, 1, "unknown administrator token"},
		{"--out pointing at an existing file", s.admin, []string{"bake", "--cluster", "orders", "--role", "jobmanager", "--holder", "h", "--out", existing}, 1, "not a directory"},
		{"a leaf longer than its CA", s.admin, []string{"cluster", "create", "x2", "--ca-validity", "100d", "--leaf-validity", "90d"}, 1, "validity"},
		{"a zero validity", s.admin, []string{"cluster", "create", "x3", "--leaf-validity", "0s"}, 1, "validity"},
		{"a negative validity", s.admin, []string{"cluster", "create", "x4", "--ca-validity", "-5h"}, 2, "validity"},
		{"an unknown flag", s.admin, []string{"cluster", "list", "--colour"}, 2, "unknown flag"},
		{"a missing argument", s.admin, []string{"cluster", "get"}, 2, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.cli(t, c.token, c.args...)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d\nstderr: %s", r.code, c.code, r.stderr)
			}
			if n := strings.Count(strings.TrimRight(r.stderr, "\n"), "\n"); n != 0 {
				t.Errorf("error is %d lines, want one:\n%s", n+1, r.stderr)
			}
			if !strings.Contains(strings.ToLower(r.stderr), strings.ToLower(c.want)) {
				t.Errorf("error %q does not mention %q", r.stderr, c.want)
			}
		})
	}
	if after := s.cli(t, s.admin, "cluster", "list", "-o", "json").ok(t).stdout; after != before {
		t.Errorf("refused requests changed the clusters:\nbefore %s\nafter  %s", before, after)
	}
	if got := entries(t, out); len(got) != 0 {
		t.Errorf("refused requests wrote files: %v", got)
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Errorf("the existing file was changed")
	}
	audit1 := s.cli(t, s.admin, "audit", "list", "-o", "json").ok(t).stdout
	if strings.Count(audit1, `"denied"`) <= strings.Count(audit0, `"denied"`) {
		t.Errorf("refusals were not audited")
	}
}

func TestEnrollmentTokensAreScopedSpentAndRefusedCleanly(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "e1").ok(t)
	s.cli(t, s.admin, "cluster", "create", "e2").ok(t)
	initArgs := func(out, tok string, role string) []string {
		return []string{"init", "--cluster", "e1", "--role", role, "--holder", "tm-0", "--out", out, "--token-file", tok, "--timeout", "5s"}
	}

	once := s.tokenFor(t, "e1", "taskmanager")
	first := filepath.Join(t.TempDir(), "first")
	s.cli(t, "", initArgs(first, once, "taskmanager")...).ok(t)
	if len(entries(t, first)) == 0 {
		t.Fatal("init wrote nothing")
	}

	garbage := filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(garbage, []byte("fpe_garbage"), 0o600)
	cases := []struct {
		name, token, role, want string
	}{
		{"a one-use token used a second time", once, "taskmanager", "enrollment token"},
		{"a token for another cluster", s.tokenFor(t, "e2", "taskmanager"), "taskmanager", `token is for cluster "e2", not "e1"`},
		{"a taskmanager token used for a jobmanager", s.tokenFor(t, "e1", "taskmanager"), "jobmanager", "token is for role taskmanager, not jobmanager"},
		{"a garbage token", garbage, "taskmanager", "token"},
		{"a missing token", filepath.Join(t.TempDir(), "none"), "taskmanager", "token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			s.cli(t, "", initArgs(out, c.token, c.role)...).refused(t, c.want)
			if got := entries(t, out); len(got) != 0 {
				t.Errorf("a refused init wrote %v", got)
			}
		})
	}
	holders := s.cli(t, s.admin, "holder", "list", "--cluster", "e1", "-o", "json").ok(t).stdout
	if strings.Count(holders, `"tm-0"`) != 1 {
		t.Errorf("want exactly the one holder from the successful init, got %s", holders)
	}
}

func TestAdministratorRPCsRefuseEnrollmentTokens(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "e1").ok(t)
	tok := s.tokenFor(t, "e1", "jobmanager", "--uses", "5")
	for _, args := range [][]string{
		{"cluster", "list"},
		{"cluster", "create", "sneaky"},
		{"ca", "prepare", "--cluster", "e1"},
		{"token", "create", "--cluster", "e1", "--role", "jobmanager"},
		{"audit", "list"},
	} {
		s.cli(t, tok, args...).refused(t, "administrator")
	}
	s.cli(t, s.admin, "cluster", "get", "sneaky").refused(t, "not found")
}

func TestInitAndBakeCredentialsCompleteTheFlinkHandshakeInTheJDK(t *testing.T) {
	s := startServer(t, "")
	for _, kt := range []string{"ecdsa-p256", "rsa-2048"} {
		cluster := "rt-" + strings.ReplaceAll(kt, "-", "")
		s.cli(t, s.admin, "cluster", "create", cluster, "--key-type", kt).ok(t)
		jm := filepath.Join(t.TempDir(), "jm")
		tm := filepath.Join(t.TempDir(), "tm")
		s.cli(t, s.admin, "bake", "--cluster", cluster, "--role", "jobmanager", "--holder", "jm-0", "--out", jm, "--format", "jks").ok(t)
		s.cli(t, "", "init", "--cluster", cluster, "--role", "taskmanager", "--holder", "tm-0", "--out", tm,
			"--token-file", s.tokenFor(t, cluster, "taskmanager")).ok(t)
		// The same with --tls-protocol TLSv1.3 on both sides.
		jm13, tm13 := filepath.Join(t.TempDir(), "jm13"), filepath.Join(t.TempDir(), "tm13")
		s.cli(t, s.admin, "bake", "--cluster", cluster, "--role", "jobmanager", "--holder", "jm-1", "--out", jm13, "--tls-protocol", "TLSv1.3").ok(t)
		s.cli(t, "", "init", "--cluster", cluster, "--role", "taskmanager", "--holder", "tm-1", "--out", tm13, "--tls-protocol", "tlsv1.3",
			"--token-file", s.tokenFor(t, cluster, "taskmanager")).ok(t)
		for _, d := range []string{jm13, tm13} {
			if conf, _ := os.ReadFile(filepath.Join(d, jdktest.SSLConfFile)); !strings.Contains(string(conf), "security.ssl.protocol: TLSv1.3\n") {
				t.Errorf("%s: flink-ssl.yaml without TLSv1.3:\n%s", d, conf)
			}
		}
		errs := jdktest.HandshakeAll(t, [][2]string{{jm, tm}, {tm, jm}, {jm13, tm13}, {tm13, jm13}})
		for i, err := range errs {
			if err != nil {
				t.Errorf("%s pair %d: %v", kt, i, err)
			}
		}
	}
}

func TestDataSurvivesARestartAndAWrongKEKIsRefusedWithoutChange(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	s.cli(t, s.admin, "cluster", "create", "keep").ok(t)
	fp := s.cli(t, s.admin, "cluster", "get", "keep", "-o", "json").ok(t).stdout
	s.stop(t)

	wrong := filepath.Join(t.TempDir(), "wrong-kek")
	os.WriteFile(wrong, []byte(strings.Repeat("k", 32)), 0o600)
	db := filepath.Join(dir, "flinkpki.db")
	before, _ := os.ReadFile(db)
	r := runCLI(t, nil, "serve", "--dev", "--data-dir", dir, "--listen", freeAddr(t), "--kek-file", wrong)
	r.refused(t, "key-encryption key")
	if after, _ := os.ReadFile(db); string(after) != string(before) {
		t.Fatal("starting with a wrong key-encryption key changed the database file")
	}

	s = startServer(t, dir)
	again := s.cli(t, s.admin, "cluster", "get", "keep", "-o", "json").ok(t).stdout
	if again != fp {
		t.Errorf("cluster changed across a restart:\n%s\n%s", fp, again)
	}
	out := filepath.Join(t.TempDir(), "out")
	s.cli(t, s.admin, "bake", "--cluster", "keep", "--role", "jobmanager", "--holder", "jm-0", "--out", out).ok(t)
}
