package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// stateOf renders what a refused request must not change: the clusters
// with their CAs, the holders and the CA status of cluster.
func stateOf(t testing.TB, s *testServer, cluster string) string {
	t.Helper()
	return s.cli(t, s.admin, "cluster", "list", "-o", "json").ok(t).stdout +
		s.cli(t, s.admin, "holder", "list", "--cluster", cluster, "-o", "json").ok(t).stdout +
		s.cli(t, s.admin, "ca", "status", "--cluster", cluster, "-o", "json").ok(t).stdout
}

// tokenSecret is the part of a token file that must never be echoed.
func tokenSecret(t testing.TB, tokenFile string) string {
	t.Helper()
	raw, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(raw))
	return tok[len(tok)/2:]
}

func writeToken(t testing.TB, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEveryBadCLIInputIsRefusedInOneLineAndChangesNothing runs a table of
// bad command lines against a real server. Each must be refused with its
// one-line error, write no file, echo no secret, and leave the clusters,
// holders and CA status exactly as they were.
func TestEveryBadCLIInputIsRefusedInOneLineAndChangesNothing(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "bad").ok(t)
	s.cli(t, s.admin, "cluster", "create", "other").ok(t)
	spent := s.tokenFor(t, "bad", "taskmanager")
	s.cli(t, "", "init", "--cluster", "bad", "--role", "taskmanager", "--holder", "tm-0",
		"--out", filepath.Join(t.TempDir(), "first"), "--token-file", spent).ok(t)
	otherTok := s.tokenFor(t, "other", "taskmanager")
	good := s.tokenFor(t, "bad", "taskmanager", "--uses", "1")

	aFile := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(aFile, []byte("keep me"), 0o600)
	underFile := filepath.Join(aFile, "out")
	long := writeToken(t, strings.Repeat("A", 600))
	huge := writeToken(t, strings.Repeat("B", 9000))
	initWith := func(tok, out string) []string {
		return []string{"init", "--cluster", "bad", "--role", "taskmanager", "--holder", "tm-1", "--out", out, "--token-file", tok, "--timeout", "5s"}
	}
	bakeTo := func(holder, out string) []string {
		return []string{"bake", "--cluster", "bad", "--role", "jobmanager", "--holder", holder, "--out", out}
	}
	out := filepath.Join(t.TempDir(), "out")
	// A directory holding someone else's keystore.p12, which Write would
	// refuse only after the server had issued.
	foreign := filepath.Join(t.TempDir(), "foreign")
	os.MkdirAll(foreign, 0o700)
	os.WriteFile(filepath.Join(foreign, "keystore.p12"), []byte("not ours"), 0o600)
	spaced := filepath.Join(t.TempDir(), "my tls")
	confSrc := t.TempDir()
	os.WriteFile(filepath.Join(confSrc, "config.yaml"), []byte("security: [unclosed\n"), 0o644)
	withConf := func(src string) []string {
		return append(initWith(good, out), "--flink-conf-src", src, "--flink-conf-out", filepath.Join(t.TempDir(), "conf"))
	}
	// An output where a directory takes the place of a file of the copy,
	// whose write would fail only after the enrollment.
	goodConf, blockedOut := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(goodConf, "config.yaml"), []byte("a: 1\n"), 0o644)
	os.WriteFile(filepath.Join(goodConf, "log4j-console.properties"), []byte("x=y\n"), 0o644)
	os.MkdirAll(filepath.Join(blockedOut, "log4j-console.properties", "x"), 0o700)
	blocked := append(initWith(good, out), "--flink-conf-src", goodConf, "--flink-conf-out", blockedOut)
	// Symbolic links to nothing: os.Stat calls them missing, but the
	// write could not create them, after the server had issued.
	dangling := filepath.Join(t.TempDir(), "dangling")
	if err := os.Symlink(filepath.Join(filepath.Dir(dangling), "target-missing"), dangling); err != nil {
		t.Fatal(err)
	}
	danglingConf := append(initWith(good, out), "--flink-conf-src", goodConf, "--flink-conf-out", dangling)
	// A file set inside the configuration source would be copied, private
	// key and passwords, into the next run's configuration copy; a source
	// inside the file set's directory sits beside the key.
	srcLink := filepath.Join(t.TempDir(), "conf-link")
	if err := os.Symlink(goodConf, srcLink); err != nil {
		t.Fatal(err)
	}
	confOut := filepath.Join(t.TempDir(), "conf-out")
	bakeWithConf := func(out, src string) []string {
		return append(bakeTo("jm-1", out), "--flink-conf-src", src, "--flink-conf-out", confOut)
	}
	initWithConf := func(out, src string) []string {
		return append(initWith(good, out), "--flink-conf-src", src, "--flink-conf-out", confOut)
	}
	cases := []struct {
		name   string
		args   []string
		code   int
		want   string
		secret string // must not appear in the error
	}{
		{"an empty cluster name", []string{"cluster", "create", ""}, 2, `invalid cluster name "": use 1 to 63 lower-case letters`, ""},
		{"a cluster name over 63 characters", []string{"cluster", "create", strings.Repeat("a", 64)}, 2, "invalid cluster name", ""},
		{"an upper-case cluster name", []string{"cluster", "create", "Orders"}, 2, "invalid cluster name", ""},
		{"a path-like cluster name", []string{"cluster", "create", "../etc"}, 2, "invalid cluster name", ""},
		{"a path-like holder name", bakeTo("../jm", out), 2, `--holder: holder ID "../jm" may contain only`, ""},
		{"a zero leaf validity", []string{"cluster", "create", "v1", "--leaf-validity", "0s"}, 1, "validity", ""},
		{"a negative CA validity", []string{"cluster", "create", "v2", "--ca-validity", "-5h"}, 2, "validity", ""},
		{"a leaf that outlives its CA", []string{"cluster", "create", "v3", "--ca-validity", "100d", "--leaf-validity", "101d"}, 1, "validity", ""},
		{"an unknown key type", []string{"cluster", "create", "v4", "--key-type", "dsa-1024"}, 2, "key type", ""},
		{"--out naming a regular file", bakeTo("jm-1", aFile), 1, "not a directory", ""},
		{"--out under a regular file", bakeTo("jm-1", underFile), 1, "not a directory", ""},
		{"init --out under a regular file", initWith(good, underFile), 1, "not a directory", tokenSecret(t, good)},
		{"a token over 512 bytes", initWith(long, out), 1, "more than the 512-byte limit", strings.Repeat("A", 32)},
		{"an authorization header over 8 KiB", initWith(huge, out), 1, "over the 8192-byte limit", strings.Repeat("B", 32)},
		{"a one-use token used again", initWith(spent, out), 1, "enrollment token", tokenSecret(t, spent)},
		{"a token for another cluster", initWith(otherTok, out), 1, `token is for cluster "other", not "bad"`, tokenSecret(t, otherTok)},
		{"bake into a directory with a foreign keystore", bakeTo("jm-1", foreign), 1, "not written by flinkpki", ""},
		{"init into a directory with a foreign keystore", initWith(good, foreign), 1, "not written by flinkpki", tokenSecret(t, good)},
		{"bake into a path Flink cannot name unquoted", bakeTo("jm-1", spaced), 1, "unquoted", ""},
		{"init with a missing --flink-conf-src", withConf(filepath.Join(confSrc, "missing")), 1, "cannot be read", tokenSecret(t, good)},
		{"init with a config.yaml that cannot be merged", withConf(confSrc), 1, "unusable Flink configuration directory", tokenSecret(t, good)},
		{"init with a directory where a copied file goes", blocked, 1, "log4j-console.properties is a directory", tokenSecret(t, good)},
		{"bake into a dangling symbolic link", bakeTo("jm-1", dangling), 1, dangling + " is a symbolic link to ", ""},
		{"init into a dangling symbolic link", initWith(good, dangling), 1, dangling + " is a symbolic link to ", tokenSecret(t, good)},
		{"init copying the configuration into a dangling symbolic link", danglingConf, 1, dangling + " is a symbolic link to ", tokenSecret(t, good)},
		{"bake with --out inside --flink-conf-src", bakeWithConf(filepath.Join(goodConf, "tls"), goodConf), 2, "lies inside --flink-conf-src", ""},
		{"bake with --out inside --flink-conf-src reached through a link", bakeWithConf(filepath.Join(goodConf, "tls"), srcLink), 2, "lies inside --flink-conf-src", ""},
		{"init with --out equal to --flink-conf-src", initWithConf(goodConf, goodConf), 2, "is or lies inside --flink-conf-src", tokenSecret(t, good)},
		{"init with --flink-conf-src inside --out", initWithConf(filepath.Dir(goodConf), goodConf), 2, "lies inside --out", tokenSecret(t, good)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := stateOf(t, s, "bad")
			r := s.cli(t, s.admin, c.args...)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d\nstderr: %s", r.code, c.code, r.stderr)
			}
			if n := strings.Count(strings.TrimRight(r.stderr, "\n"), "\n"); n != 0 {
				t.Errorf("the error is %d lines, want one:\n%s", n+1, r.stderr)
			}
			t.Logf("refused: %s", strings.TrimSpace(r.stderr))
			if !strings.Contains(r.stderr, c.want) {
				t.Errorf("error %q does not say %q", strings.TrimSpace(r.stderr), c.want)
			}
			if strings.Contains(r.stderr, "invalid request: invalid") {
				t.Errorf("error %q says it is invalid twice", strings.TrimSpace(r.stderr))
			}
			if c.secret != "" && strings.Contains(r.stderr+r.stdout, c.secret) {
				t.Errorf("the error echoes the token: %s", r.stderr)
			}
			if after := stateOf(t, s, "bad"); after != before {
				t.Errorf("a refused request changed the state:\nbefore %s\nafter  %s", before, after)
			}
			if got := entries(t, out); len(got) != 0 {
				t.Errorf("a refused request wrote %v", got)
			}
			if b, _ := os.ReadFile(aFile); string(b) != "keep me" {
				t.Errorf("a refused request changed %s", aFile)
			}
			if got := entries(t, foreign); len(got) != 1 {
				t.Errorf("a refused request wrote into %s: %v", foreign, got)
			}
			if _, err := os.Stat(spaced); err == nil {
				t.Errorf("a refused request created %s", spaced)
			}
			for _, p := range []string{confOut, filepath.Join(goodConf, "tls")} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("a refused request created %s", p)
				}
			}
		})
	}
	// The server refuses bad names itself, not only the CLI.
	conn := s.adminConn(t)
	clusters := pb.NewClusterServiceClient(conn)
	for _, name := range []string{"", strings.Repeat("a", 64), "Orders", "../etc"} {
		before := stateOf(t, s, "bad")
		_, err := clusters.CreateCluster(context.Background(), &pb.CreateClusterRequest{Name: name})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "cluster name") {
			t.Errorf("CreateCluster(%q) = %s %q, want InvalidArgument about the cluster name", name, st.Code(), st.Message())
		}
		if after := stateOf(t, s, "bad"); after != before {
			t.Errorf("CreateCluster(%q) changed the state", name)
		}
	}
	// The refusals spent nothing: the one-use token still enrolls.
	s.cli(t, "", initWith(good, filepath.Join(t.TempDir(), "last"))...).ok(t)
}

// TestAnInvalidHolderNameIsAUsageErrorTheServerNeverSees: bake, init and
// holder release check a holder name by the server's rule before they
// dial, so a bad one is a usage error (exit 2), as a bad --cluster is, and
// leaves no denied entry in the audit trail.
func TestAnInvalidHolderNameIsAUsageErrorTheServerNeverSees(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "names").ok(t)
	tok := s.tokenFor(t, "names", "taskmanager", "--uses", "1")
	out := filepath.Join(t.TempDir(), "out")
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"bake with a slash in --holder", []string{"bake", "--cluster", "names", "--role", "jobmanager", "--holder", "bad/holder", "--out", out},
			`--holder: holder ID "bad/holder" may contain only letters, digits, '.', '_' and '-'`},
		{"bake with --holder ..", []string{"bake", "--cluster", "names", "--role", "jobmanager", "--holder", "..", "--out", out},
			`--holder: holder ID ".." is not allowed`},
		{"init with a --holder over 253 characters", []string{"init", "--cluster", "names", "--role", "taskmanager", "--holder", strings.Repeat("h", 254), "--out", out, "--token-file", tok},
			"--holder: holder ID must be 1 to 253 characters, got 254"},
		{"holder release with a space in the name", []string{"holder", "release", "--cluster", "names", "a b"},
			`HOLDER: holder ID "a b" may contain only`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			audit := s.cli(t, s.admin, "audit", "list", "-o", "json").ok(t).stdout
			oneLineError(t, s.cli(t, s.admin, tt.args...), 2, tt.want)
			if after := s.cli(t, s.admin, "audit", "list", "-o", "json").ok(t).stdout; after != audit {
				t.Errorf("the server saw the request: the audit trail grew")
			}
			if _, err := os.Lstat(out); err == nil {
				t.Errorf("the refused command created %s", out)
			}
		})
	}
	// The one-use token was not spent.
	s.cli(t, "", "init", "--cluster", "names", "--role", "taskmanager", "--holder", "tm-0", "--out", out, "--token-file", tok).ok(t)
}

func mustKey(t testing.TB, gen func() (crypto.Signer, error)) crypto.Signer {
	t.Helper()
	k, err := gen()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestEveryBadCSRIsRefusedAsInvalidArgumentAndChangesNothing sends CSRs the
// CLI never builds, through a raw gRPC client with a valid enrollment
// token. Each must be refused with InvalidArgument and its own sentence,
// spend no token use and change nothing.
func TestEveryBadCSRIsRefusedAsInvalidArgumentAndChangesNothing(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "bad").ok(t)
	tokFile := s.tokenFor(t, "bad", "taskmanager", "--uses", "1")
	client := enrollClient(t, s.addr, s.caFile, tokFile)
	p256 := mustKey(t, func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) })
	p224 := mustKey(t, func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P224(), rand.Reader) })
	rsa1024 := mustKey(t, func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 1024) })

	badSig := csrFor(t, p256, nil)
	badSig[len(badSig)-1] ^= 0xff
	var sans []string
	for i := range 17 {
		sans = append(sans, fmt.Sprintf("tm-%d.example.com", i))
	}
	bigSubject := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "tm", OrganizationalUnit: make([]string, 200)}}
	for i := range bigSubject.Subject.OrganizationalUnit {
		bigSubject.Subject.OrganizationalUnit[i] = strings.Repeat("u", 60)
	}
	cases := []struct {
		name string
		csr  []byte
		dns  []string
		want string
	}{
		{"a malformed CSR", []byte("this is not DER"), nil, "malformed CSR"},
		{"a CSR with a flipped signature byte", badSig, nil, "the CSR signature does not verify"},
		{"a CSR with an RSA-1024 key", csrFor(t, rsa1024, nil), nil, "RSA key of 1024 bits; use at least 2048"},
		{"a CSR with a P-224 key", csrFor(t, p224, nil), nil, "ECDSA curve P-224; use P-256 or P-384"},
		{"a CSR naming a SAN the request does not", csrFor(t, p256, &x509.CertificateRequest{DNSNames: []string{"evil.example.com"}}), nil,
			`the CSR names DNS "evil.example.com", which the request does not`},
		{"a CSR asking for a CA certificate", csrFor(t, p256, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{caFlagExtension(t)}}), nil,
			"the CSR asks for a CA certificate"},
		{"a CSR with 17 SANs", csrFor(t, p256, &x509.CertificateRequest{DNSNames: sans}), sans, "the CSR asks for 17 SANs, more than the limit of 16"},
		{"a CSR over 8 KiB", csrFor(t, p256, bigSubject), nil, "more than the limit of 8192"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := stateOf(t, s, "bad")
			_, err := client.Enroll(context.Background(), &pb.EnrollRequest{Cluster: "bad", Role: "taskmanager", Holder: "tm-0", Csr: c.csr, DnsNames: c.dns})
			st := status.Convert(err)
			t.Logf("refused: %s: %s", st.Code(), st.Message())
			if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), c.want) {
				t.Errorf("got %s %q, want InvalidArgument saying %q", st.Code(), st.Message(), c.want)
			}
			if strings.Contains(st.Message(), "\n") {
				t.Errorf("the error is more than one line: %q", st.Message())
			}
			if after := stateOf(t, s, "bad"); after != before {
				t.Errorf("a refused CSR changed the state:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	resp, err := client.Enroll(context.Background(), &pb.EnrollRequest{Cluster: "bad", Role: "taskmanager", Holder: "tm-0", Csr: csrFor(t, p256, nil)})
	if err != nil || len(resp.GetChain()) == 0 {
		t.Fatalf("after the refusals the one-use token no longer enrolls: %v", err)
	}
}

// TestACorruptOrTruncatedStoreIsRefusedAtStartAndLeftUnchanged damages a
// real store two ways; the server must refuse to start with a one-line
// error that points at a restore, and must not touch the file.
func TestACorruptOrTruncatedStoreIsRefusedAtStartAndLeftUnchanged(t *testing.T) {
	src := filepath.Join(t.TempDir(), "data")
	s := startServer(t, src)
	s.cli(t, s.admin, "cluster", "create", "c1").ok(t)
	s.cli(t, s.admin, "bake", "--cluster", "c1", "--role", "jobmanager", "--holder", "jm-0", "--out", filepath.Join(t.TempDir(), "o")).ok(t)
	s.stop(t)
	db, err := os.ReadFile(filepath.Join(src, "flinkpki.db"))
	if err != nil {
		t.Fatal(err)
	}
	kek, err := os.ReadFile(filepath.Join(src, "kek"))
	if err != nil {
		t.Fatal(err)
	}
	garbage := bytes.Clone(db)
	for i := range 4096 {
		garbage[i] = byte(i*7 + 13)
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"a store truncated to half its size", db[:len(db)/2], "restore"},
		{"a store whose first page is garbage", garbage, "restore"},
		{"an empty store file", []byte{}, "restore"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			os.MkdirAll(dir, 0o700)
			os.WriteFile(filepath.Join(dir, "kek"), kek, 0o600)
			path := filepath.Join(dir, "flinkpki.db")
			os.WriteFile(path, c.data, 0o600)
			r := runCLI(t, nil, "serve", "--dev", "--data-dir", dir, "--listen", freeAddr(t))
			t.Logf("refused: %s", strings.TrimSpace(r.stderr))
			r.refused(t, c.want)
			if n := strings.Count(strings.TrimRight(r.stderr, "\n"), "\n"); n != 0 {
				t.Errorf("the error is %d lines, want one:\n%s", n+1, r.stderr)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, c.data) {
				t.Errorf("a refused start changed the store file")
			}
			if _, err := os.Stat(filepath.Join(dir, "admin.token")); err == nil {
				t.Errorf("a refused start wrote an administrator token")
			}
		})
	}
}
