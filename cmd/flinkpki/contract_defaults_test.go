package main

// Contract items (docs/CONTRACT.md) that worked but that no test asserted:
// serve's defaults and the files it writes or never writes, FLINKPKI_KEK_FILE
// on serve, init's default holder and --ca-file over FLINKPKI_CA_FILE.

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// startServe runs "flinkpki serve args..." with the arguments a test chose
// (startServer always passes --dev, --data-dir and --listen) and waits
// until it logs that it serves and accepts connections on addr. Only addr,
// the log (stderr) and stop are set.
func startServe(t testing.TB, addr string, args ...string) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{addr: addr, stderr: newSyncBuffer(), cancel: cancel, done: make(chan int, 1)}
	go func() {
		a := &app{stdout: s.stderr, stderr: s.stderr, getenv: func(string) string { return "" }, now: time.Now}
		s.done <- a.run(ctx, append([]string{"serve", "--listen", addr}, args...))
	}()
	t.Cleanup(func() { s.stop(t) })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case code := <-s.done:
			s.cancel = nil
			t.Fatalf("serve %v exited %d before serving:\n%s", args, code, s.stderr.String())
		default:
		}
		if strings.Contains(s.stderr.String(), "flinkpki serving") {
			if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
				c.Close()
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve %v did not start within 20s:\n%s", args, s.stderr.String())
		}
	}
}

// newDataDir makes an empty data directory, as production mode wants one.
func newDataDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestDevServeWritesTheAdminTokenWithMode0600: "--dev ... creates DIR if
// missing, and writes an administrator token to DIR/admin.token (mode
// 0600) before it starts serving", and the trust anchor to
// DIR/server-ca.crt. The contract promises no other mode in the data
// directory, so none other is asserted.
func TestDevServeWritesTheAdminTokenWithMode0600(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "missing", "data")
	s := startServer(t, dir)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("serve --dev did not create the missing data directory %s: %v", dir, err)
	}
	fi, err := os.Lstat(s.admin)
	if err != nil {
		t.Fatalf("serve --dev serves without %s: %v", s.admin, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want a regular file with mode 0600", s.admin, fi.Mode())
	}
	raw, err := os.ReadFile(s.admin)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^fpa_[a-z2-7]{26}_[A-Za-z0-9_-]{43}\n?$`).Match(raw) {
		t.Errorf("%s does not hold one administrator token (fpa_...)", s.admin)
	}
	// It is an administrator's: it creates a cluster.
	s.cli(t, s.admin, "cluster", "create", "devtoken").ok(t)
	pemBytes, err := os.ReadFile(s.caFile)
	if err != nil {
		t.Fatalf("serve --dev serves without the trust anchor %s: %v", s.caFile, err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s holds no PEM certificate", s.caFile)
	}
	if ca, err := x509.ParseCertificate(block.Bytes); err != nil || !ca.IsCA {
		t.Errorf("%s is not a CA certificate (%v)", s.caFile, err)
	}
	// After a restart the file keeps its mode.
	s.stop(t)
	s = startServerAt(t, dir, freeAddr(t))
	if fi, err := os.Lstat(s.admin); err != nil {
		t.Errorf("after a restart: %v", err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("after a restart %s has mode %v, want 0600", s.admin, fi.Mode())
	}
}

// TestServeListenDefaultsTo7443OnLoopbackWithDevAndEverywhereWithout:
// "--dev: listens on 127.0.0.1 only (default port 7443)", and 0.0.0.0:7443
// without --dev. Binding 7443 for real would race with whatever else uses
// it, so this asserts the code path that picks the address when --listen
// is not given: the flag's default is empty and resolve fills it in.
func TestServeListenDefaultsTo7443OnLoopbackWithDevAndEverywhereWithout(t *testing.T) {
	t.Parallel()
	f := newServeCmd().Flags()
	for name, want := range map[string]string{"listen": "", "dev": "false"} {
		if fl := f.Lookup(name); fl == nil {
			t.Fatalf("serve has no --%s flag", name)
		} else if fl.DefValue != want {
			t.Errorf("serve --%s defaults to %q, want %q", name, fl.DefValue, want)
		}
	}
	if usage := f.Lookup("listen").Usage; !strings.Contains(usage, "default 127.0.0.1:7443 with --dev, else 0.0.0.0:7443") {
		t.Errorf("serve --listen help %q does not name the defaults", usage)
	}
	for _, tt := range []struct {
		dev  bool
		want string
	}{{true, "127.0.0.1:7443"}, {false, "0.0.0.0:7443"}} {
		// The defaults newServeCmd sets for what resolve checks.
		o := &serveOptions{dev: tt.dev, dataDir: "./flinkpki-data", storeKind: "bolt", etcdBatch: 20,
			rpcTimeout: durationFlag{d: 30 * time.Second, signed: true}, k8sReviewCache: durationFlag{d: defaultReviewCache, signed: true}}
		if err := o.resolve(); err != nil {
			t.Fatalf("dev=%v: resolve: %v", tt.dev, err)
		}
		if o.listen != tt.want {
			t.Errorf("dev=%v without --listen: listens on %q, want %q", tt.dev, o.listen, tt.want)
		}
		// An explicit --listen is kept.
		o = &serveOptions{dev: tt.dev, listen: "127.0.0.1:9", storeKind: "bolt", etcdBatch: 20, rpcTimeout: durationFlag{d: time.Second}}
		if err := o.resolve(); err != nil || o.listen != "127.0.0.1:9" {
			t.Errorf("dev=%v with --listen 127.0.0.1:9: listens on %q (%v)", tt.dev, o.listen, err)
		}
	}
}

// TestServeDataDirDefaultsToFlinkpkiDataInTheWorkingDirectory: "bbolt at
// DIR/flinkpki.db (DIR defaults to ./flinkpki-data)", through a real start
// without --data-dir in a fresh working directory. Not parallel: it changes
// the working directory.
func TestServeDataDirDefaultsToFlinkpkiDataInTheWorkingDirectory(t *testing.T) {
	if fl := newServeCmd().Flags().Lookup("data-dir"); fl == nil {
		t.Fatal("serve has no --data-dir flag")
	} else if fl.DefValue != "./flinkpki-data" {
		t.Errorf("serve --data-dir defaults to %q, want ./flinkpki-data", fl.DefValue)
	}
	wd := t.TempDir()
	t.Chdir(wd)
	s := startServe(t, freeAddr(t), "--dev")
	data := filepath.Join(wd, "flinkpki-data")
	for _, name := range []string{"flinkpki.db", "server-ca.crt", "admin.token"} {
		if fi, err := os.Stat(filepath.Join(data, name)); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("serve without --data-dir: %s: %v", filepath.Join(data, name), err)
		}
	}
	if names := entries(t, wd); len(names) != 1 || names[0] != "flinkpki-data" {
		t.Errorf("serve without --data-dir wrote %v in the working directory, want only flinkpki-data", names)
	}
	if want := "FLINKPKI_CA_FILE=" + filepath.Join(data, "server-ca.crt"); !strings.Contains(s.stderr.String(), want) {
		t.Errorf("the dev line does not say %s:\n%s", want, s.stderr.String())
	}
	env := map[string]string{envServer: s.addr, envCAFile: filepath.Join(data, "server-ca.crt"), envTokenFile: filepath.Join(data, "admin.token")}
	runCLI(t, env, "cluster", "create", "defaultdir").ok(t)
	s.stop(t)
}

// TestServeTakesTheKEKFromFLINKPKI_KEK_FILE: "--kek-file FILE (or
// FLINKPKI_KEK_FILE)", and "starting with the wrong key fails with a clear
// error and changes nothing", with the key named by the environment only.
// Not parallel: serve reads the process environment.
func TestServeTakesTheKEKFromFLINKPKI_KEK_FILE(t *testing.T) {
	dir := newDataDir(t)
	kek := writeKEK(t, t.TempDir(), "kek")
	t.Setenv("FLINKPKI_KEK_FILE", kek)

	// Production mode refuses to start without a key; the environment's
	// is enough, and the new store is sealed with it.
	s := startServe(t, freeAddr(t), "--data-dir", dir)
	s.stop(t)
	if _, err := os.Stat(filepath.Join(dir, "kek")); !os.IsNotExist(err) {
		t.Fatalf("serve made its own DIR/kek instead of using FLINKPKI_KEK_FILE: %v", err)
	}
	runCLI(t, nil, "admin", "list-tokens", "--data-dir", dir, "--kek-file", kek).ok(t)
	other := writeKEK(t, t.TempDir(), "other")
	oneLineError(t, runCLI(t, nil, "admin", "list-tokens", "--data-dir", dir, "--kek-file", other), 1, "does not open")

	// --dev with a store and no DIR/kek refuses to start unless a key is
	// given: the environment's opens the store the first start made.
	d := startServerAt(t, dir, freeAddr(t))
	d.cli(t, d.admin, "cluster", "create", "envkek").ok(t)
	fp := d.cli(t, d.admin, "cluster", "get", "envkek", "-o", "json").ok(t).stdout
	d.stop(t)

	wrong := writeKEK(t, t.TempDir(), "wrong")
	t.Setenv("FLINKPKI_KEK_FILE", wrong)
	before := treeOf(t, dir)
	for _, mode := range [][]string{nil, {"--dev"}} {
		r := runCLI(t, nil, append([]string{"serve", "--data-dir", dir, "--listen", freeAddr(t)}, mode...)...)
		oneLineError(t, r, 1, "the key-encryption key "+wrong+" does not open "+filepath.Join(dir, "flinkpki.db")+": start with the key this store was created with; nothing was changed")
		assertUnchanged(t, dir, before)
	}

	t.Setenv("FLINKPKI_KEK_FILE", kek)
	d = startServerAt(t, dir, freeAddr(t))
	if got := d.cli(t, d.admin, "cluster", "get", "envkek", "-o", "json").ok(t).stdout; got != fp {
		t.Errorf("the cluster changed across the refused starts:\nbefore: %s\nafter:  %s", fp, got)
	}
}

// tokenShape is a whole flinkpki token, administrator or enrollment.
var tokenShape = regexp.MustCompile(`fp[ae]_[a-z2-7]{26}_[A-Za-z0-9_-]{43}`)

// TestAProductionStartWritesNoTokenFile: "Production mode never writes a
// token file". A production start on a new store, and again on a store that
// holds an administrator token, leaves no admin.token nor any file holding
// a token in the data directory, and makes no administrator token.
func TestAProductionStartWritesNoTokenFile(t *testing.T) {
	t.Parallel()
	dir := newDataDir(t)
	kek := writeKEK(t, t.TempDir(), "kek")
	store := []string{"--data-dir", dir, "--kek-file", kek}
	noTokenFile := func(when string) {
		t.Helper()
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if strings.Contains(strings.ToLower(d.Name()), "token") {
				t.Errorf("%s: the data directory holds %s", when, p)
			}
			if d.Type().IsRegular() {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				if tokenShape.Match(b) {
					t.Errorf("%s: %s holds a token", when, p)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	s := startServe(t, freeAddr(t), store...)
	if _, err := os.Stat(filepath.Join(dir, "server-ca.crt")); err != nil {
		t.Fatalf("the production server wrote no server-ca.crt, so this test proves nothing: %v", err)
	}
	noTokenFile("while serving a new store")
	s.stop(t)
	noTokenFile("after serving a new store")
	assertNoSecretsInLogs(t, s.stderr.String(), filepath.Join(dir, "admin.token"))
	list := runCLI(t, nil, append([]string{"admin", "list-tokens", "-o", "json"}, store...)...).ok(t)
	if strings.TrimSpace(list.stdout) != "[]" {
		t.Errorf("a production start made administrator tokens:\n%s", list.stdout)
	}

	boot := runCLI(t, nil, append([]string{"admin", "bootstrap"}, store...)...).ok(t)
	rememberSecret(strings.TrimSpace(boot.stdout))
	s = startServe(t, freeAddr(t), store...)
	noTokenFile("while serving a store with an administrator token")
	s.stop(t)
	noTokenFile("after serving a store with an administrator token")
	assertNoSecretsInLogs(t, s.stderr.String(), filepath.Join(dir, "admin.token"))
}

// TestInitHolderDefaultsToTheHostName: "--holder defaults to the pod name
// when the Kubernetes token carries one, else to the host name", here with
// an enrollment token and no --holder.
func TestInitHolderDefaultsToTheHostName(t *testing.T) {
	t.Parallel()
	host, err := os.Hostname()
	if err != nil {
		t.Fatalf("os.Hostname: %v", err)
	}
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "hosts").ok(t)
	tok := s.tokenFor(t, "hosts", "taskmanager")
	r := s.cli(t, tok, "init", "--cluster", "hosts", "--role", "taskmanager", "--out", filepath.Join(t.TempDir(), "tls"), "--timeout", "30s")
	if why := holderProblem(host); why != "" {
		// A host name the server would refuse is a usage error naming
		// the flag to pass, never another holder name.
		oneLineError(t, r, 2, "no --holder given, and the host name cannot be one")
		return
	}
	r.ok(t)
	var list struct {
		Holders []holderJSON `json:"holders"`
	}
	out := s.cli(t, s.admin, "holder", "list", "--cluster", "hosts", "-o", "json").ok(t).stdout
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("holder list -o json: %v\n%s", err, out)
	}
	if len(list.Holders) != 1 || list.Holders[0].Name != host || list.Holders[0].Role != "taskmanager" {
		t.Errorf("holder list after init without --holder = %+v, want one taskmanager holder named %q (the host name)", list.Holders, host)
	}
}

// TestCAFileFlagWinsOverFLINKPKI_CA_FILE: "Flags win over the environment",
// for the trust anchor, against a real server: the environment's CA file,
// missing or another CA, does not matter when --ca-file names the right
// one, and a wrong --ca-file is not rescued by the right environment.
func TestCAFileFlagWinsOverFLINKPKI_CA_FILE(t *testing.T) {
	t.Parallel()
	s := startServer(t, "")
	otherCA := writeFile(t, "other-ca.crt", string(selfSignedPEM(t)))
	missing := filepath.Join(t.TempDir(), "missing-ca.crt")
	notTrusted := "cannot reach flinkpki at " + s.addr + ": the server's certificate is not signed by a CA this client trusts"
	env := func(caFile string) map[string]string {
		return map[string]string{envServer: s.addr, envTokenFile: s.admin, envCAFile: caFile}
	}
	for _, tt := range []struct {
		name   string
		envCA  string
		flagCA string
		refuse string // "" for success
	}{
		{"--ca-file wins over a missing FLINKPKI_CA_FILE", missing, s.caFile, ""},
		{"--ca-file wins over FLINKPKI_CA_FILE naming another CA", otherCA, s.caFile, ""},
		{"FLINKPKI_CA_FILE alone is used", s.caFile, "", ""},
		// The two below show the environment's files are refused when
		// used, so the cases above passed because the flag won.
		{"a missing FLINKPKI_CA_FILE alone fails", missing, "", "read the server CA file (--ca-file or FLINKPKI_CA_FILE; the server's server-ca.crt): open " + missing},
		{"FLINKPKI_CA_FILE naming another CA alone fails", otherCA, "", notTrusted},
		{"a wrong --ca-file is not rescued by a right FLINKPKI_CA_FILE", s.caFile, otherCA, notTrusted},
		{"a missing --ca-file is not rescued by a right FLINKPKI_CA_FILE", s.caFile, missing, "read the server CA file (--ca-file or FLINKPKI_CA_FILE; the server's server-ca.crt): open " + missing},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"cluster", "list"}
			if tt.flagCA != "" {
				args = append(args, "--ca-file", tt.flagCA)
			}
			r := runCLI(t, env(tt.envCA), args...)
			if tt.refuse == "" {
				r.ok(t)
				return
			}
			oneLineError(t, r, 1, tt.refuse)
		})
	}
}
