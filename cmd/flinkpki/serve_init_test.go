package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestInitMergesTheFlinkConfigurationFromAReadOnlyDirectory(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	src := filepath.Join(t.TempDir(), "conf")
	os.MkdirAll(src, 0o755)
	nested := "# operator-rendered\njobmanager:\n  rpc:\n    address: orders\n  memory:\n    process:\n      size: 1600m\ntaskmanager:\n  numberOfTaskSlots: 2\nsecurity:\n  ssl:\n    internal:\n      enabled: false\n"
	os.WriteFile(filepath.Join(src, "config.yaml"), []byte(nested), 0o444)
	os.WriteFile(filepath.Join(src, "log4j-console.properties"), []byte("rootLogger.level = INFO\n"), 0o444)
	os.Chmod(src, 0o555)
	t.Cleanup(func() { os.Chmod(src, 0o755) })

	tls := filepath.Join(t.TempDir(), "tls")
	confOut := filepath.Join(t.TempDir(), "conf-out")
	s.cli(t, "", "init", "--cluster", "orders", "--role", "jobmanager", "--holder", "jm-0", "--out", tls,
		"--token-file", s.tokenFor(t, "orders", "jobmanager"), "--flink-conf-src", src, "--flink-conf-out", confOut,
		"--flink-conf-set", "rest.bind-address=127.0.0.1").ok(t)

	if b, _ := os.ReadFile(filepath.Join(src, "config.yaml")); string(b) != nested {
		t.Fatal("the source configuration was modified")
	}
	if b, err := os.ReadFile(filepath.Join(confOut, "log4j-console.properties")); err != nil || string(b) != "rootLogger.level = INFO\n" {
		t.Fatalf("other files were not copied whole: %q %v", b, err)
	}
	raw, flat := mergedConfig(t, confOut)
	for k, want := range map[string]string{
		"jobmanager.rpc.address":              "orders",
		"rest.bind-address":                   "127.0.0.1", // --flink-conf-set: the operator removes it
		"jobmanager.memory.process.size":      "1600m",
		"taskmanager.numberOfTaskSlots":       "2",
		"security.ssl.internal.enabled":       "true",
		"security.ssl.internal.keystore":      filepath.Join(tls, "keystore.p12"),
		"security.ssl.internal.truststore":    filepath.Join(tls, "truststore.p12"),
		"security.ssl.internal.keystore-type": "PKCS12",
		"security.ssl.protocol":               "TLSv1.2",
		"security.ssl.algorithms":             "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
	} {
		if flat[k] != want {
			t.Errorf("%s = %q, want %q", k, flat[k], want)
		}
	}
	pw, _ := os.ReadFile(filepath.Join(tls, "keystore.password"))
	if flat["security.ssl.internal.keystore-password"] != string(pw) || len(pw) < 32 {
		t.Errorf("keystore password in the config does not match keystore.password")
	}
	if !filepath.IsAbs(flat["security.ssl.internal.keystore"]) {
		t.Errorf("keystore path is not absolute")
	}
	// Linting the merged copy (as the README advises) says nothing about
	// the passwords it holds by design; the same file elsewhere, a shared
	// or committed configuration, gets FP004.
	lint := func(path string) string {
		return runCLI(t, nil, "flink", "lint", path, "-o", "json").stdout
	}
	if out := lint(filepath.Join(confOut, "config.yaml")); strings.Contains(out, "FP004") {
		t.Errorf("lint of init's own copy warns about its passwords:\n%s", out)
	}
	elsewhere := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(elsewhere, raw, 0o600)
	if out := lint(elsewhere); !strings.Contains(out, "FP004") {
		t.Errorf("lint of a configuration with store passwords outside init's copy does not warn:\n%s", out)
	}
}

// mergedConfig reads the config.yaml a copy wrote into dir, and flattens
// it as Flink does.
func mergedConfig(t *testing.T, dir string) ([]byte, map[string]string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("merged config.yaml does not parse: %v\n%s", err, raw)
	}
	flat := map[string]string{}
	flatten("", doc, flat)
	return raw, flat
}

func flatten(prefix string, v any, out map[string]string) {
	switch m := v.(type) {
	case map[string]any:
		for k, vv := range m {
			key := k
			if prefix != "" {
				key = prefix + "." + k
			}
			flatten(key, vv, out)
		}
	default:
		out[prefix] = fmt.Sprint(v)
	}
}

func TestInitStartedBeforeTheServerSucceedsWithinItsTimeout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	s.cli(t, s.admin, "cluster", "create", "late").ok(t)
	tok := s.tokenFor(t, "late", "taskmanager")
	addr := s.addr
	s.stop(t)

	out := filepath.Join(t.TempDir(), "tls")
	done := make(chan result, 1)
	go func() {
		done <- runCLI(t, map[string]string{"FLINKPKI_SERVER": addr, "FLINKPKI_CA_FILE": s.caFile},
			"init", "--cluster", "late", "--role", "taskmanager", "--holder", "tm-0", "--out", out, "--token-file", tok, "--timeout", "30s")
	}()
	time.Sleep(2 * time.Second)
	select {
	case r := <-done:
		t.Fatalf("init gave up before the server started: %+v", r)
	default:
	}
	restarted := &testServer{}
	*restarted = *startServerAt(t, dir, addr)
	r := <-done
	r.ok(t)
	if !strings.Contains(r.stderr, "attempt") {
		t.Errorf("init did not log its attempts:\n%s", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "keystore.p12")); err != nil {
		t.Fatal(err)
	}
}

func TestRealGRPCClientsSeeHealthAndReflection(t *testing.T) {
	s := startServer(t, "")
	bin := toolPath(t, "grpc-health-probe")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-addr", s.addr, "-tls", "-tls-ca-cert", s.caFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SERVING") {
		t.Fatalf("grpc-health-probe: %v\n%s", err, out)
	}
	out, err = exec.CommandContext(ctx, bin, "-addr", s.addr, "-tls", "-tls-ca-cert", s.caFile, "-service", "flinkpki.v1.EnrollmentService").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SERVING") {
		t.Fatalf("grpc-health-probe for the enrollment service: %v\n%s", err, out)
	}
	grpcurl := toolPath(t, "grpcurl")
	out, err = exec.CommandContext(ctx, grpcurl, "-cacert", s.caFile, s.addr, "list").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "flinkpki.v1.EnrollmentService") {
		t.Fatalf("grpcurl list: %v\n%s", err, out)
	}
	out, err = exec.CommandContext(ctx, grpcurl, "-cacert", s.caFile, s.addr, "describe", "flinkpki.v1.EnrollmentService").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "rpc Enroll") {
		t.Fatalf("grpcurl describe: %v\n%s", err, out)
	}
	// Without the trust anchor the server is not trusted.
	if out, err := exec.CommandContext(ctx, grpcurl, s.addr, "list").CombinedOutput(); err == nil {
		t.Fatalf("grpcurl trusted the server without its CA:\n%s", out)
	}
}

// toolPath finds a test tool installed by 'make tools' into .tools/bin.
func toolPath(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", ".tools", "bin", name))
	if err == nil {
		if _, err = os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	t.Fatalf("%s is not installed: run 'make tools' (make test does it)", name)
	return ""
}

// TestInitDoesNotRetryAServerItDoesNotTrust: a --ca-file of another CA is
// a configuration error that waiting does not fix. gRPC reports it as
// Unavailable, which init otherwise retries until --timeout; it fails at
// the first attempt instead, saying what to pass, and writes nothing.
func TestInitDoesNotRetryAServerItDoesNotTrust(t *testing.T) {
	s := startServer(t, "")
	other := startServer(t, "") // its own serving CA
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	out := filepath.Join(t.TempDir(), "tls")
	env := map[string]string{"FLINKPKI_SERVER": s.addr, "FLINKPKI_CA_FILE": other.caFile, "FLINKPKI_TOKEN_FILE": s.tokenFor(t, "orders", "taskmanager")}
	r := runCLI(t, env, "init", "--cluster", "orders", "--role", "taskmanager", "--holder", "tm-0", "--out", out, "--timeout", "1m")
	r.refused(t, "not signed by a CA this client trusts: pass the server's server-ca.crt with --ca-file")
	if strings.Contains(r.stderr, "retrying") {
		t.Errorf("init retried a server it does not trust:\n%s", r.stderr)
	}
	if names := entries(t, filepath.Dir(out)); len(names) != 0 {
		t.Errorf("a refused init wrote %v", names)
	}
}

// TestInitOnAFullVolumeSpendsNoToken: --out on a volume too full for the
// file set is found before init asks the server for anything, so a
// one-use token is still there for the next try and no holder is
// recorded. The volume is a 16 KiB tmpfs, which needs root to mount.
func TestInitOnAFullVolumeSpendsNoToken(t *testing.T) {
	vol := smallTmpfs(t, 16<<10)
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	tok := s.tokenFor(t, "orders", "taskmanager", "--uses", "1")
	initTo := func(out string) result {
		return s.cli(t, "", "init", "--cluster", "orders", "--role", "taskmanager", "--holder", "tm-0", "--out", out, "--token-file", tok, "--timeout", "5s")
	}
	r := initTo(filepath.Join(vol, "tls"))
	if r.code != 1 || !strings.Contains(r.stderr, "cannot write 64 KiB in "+vol) || !strings.Contains(r.stderr, "no space left on device") {
		t.Fatalf("init onto a full volume: exit %d, stderr %q; want it refused for the space, before enrolling", r.code, r.stderr)
	}
	if names := entries(t, vol); len(names) != 0 {
		t.Errorf("the refused init left %v on the volume", names)
	}
	if hs := s.cli(t, s.admin, "holder", "list", "--cluster", "orders", "-o", "json").ok(t).stdout; strings.Contains(hs, "tm-0") {
		t.Errorf("the refused init recorded a holder:\n%s", hs)
	}
	initTo(filepath.Join(t.TempDir(), "tls")).ok(t) // the one use is still there
}

// smallTmpfs mounts a tmpfs of size bytes for the test, which needs root
// (CI runs as root, as it installs packages): a full volume, for real.
func smallTmpfs(t *testing.T, size int) string {
	t.Helper()
	return tmpfsWith(t, fmt.Sprintf("size=%d", size))
}

// tmpfsWith mounts a tmpfs with the mount options opts (size=, nr_inodes=)
// for the test, which needs root.
func tmpfsWith(t *testing.T, opts string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("mounting a small tmpfs needs root; run the tests as root (CI does) to cover a full volume")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs (%s) on %s: %v: %s", opts, dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// TestBakeMergesTheFlinkConfigurationForAnImage: bake copies an image's
// Flink configuration with the security.ssl.* keys merged in, naming the
// stores where the image will hold them (--tls-dir) with the passwords of
// the stores it wrote, and says which of the source's values it replaced.
// A source without a configuration file is refused before the server
// makes a key: no files, no holder.
func TestBakeMergesTheFlinkConfigurationForAnImage(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	src := filepath.Join(t.TempDir(), "conf")
	os.MkdirAll(src, 0o755)
	orig := "jobmanager:\n  rpc:\n    address: orders\nsecurity:\n  ssl:\n    protocol: TLSv1.3\n"
	os.WriteFile(filepath.Join(src, "config.yaml"), []byte(orig), 0o644)
	tls, confOut := filepath.Join(t.TempDir(), "tls"), filepath.Join(t.TempDir(), "conf")
	r := s.cli(t, s.admin, "bake", "--cluster", "orders", "--role", "taskmanager", "--holder", "orders-tm", "--out", tls,
		"--tls-dir", "/opt/flink/tls", "--flink-conf-src", src, "--flink-conf-out", confOut).ok(t)
	if !strings.Contains(r.stderr, "replaces what "+src+" set: security.ssl.protocol (TLSv1.3 -> TLSv1.2)") {
		t.Errorf("bake did not say it replaced the source's protocol:\n%s", r.stderr)
	}
	_, flat := mergedConfig(t, confOut)
	for k, want := range map[string]string{
		"jobmanager.rpc.address":           "orders",
		"security.ssl.internal.enabled":    "true",
		"security.ssl.internal.keystore":   "/opt/flink/tls/keystore.p12",
		"security.ssl.internal.truststore": "/opt/flink/tls/truststore.p12",
	} {
		if flat[k] != want {
			t.Errorf("%s = %q, want %q", k, flat[k], want)
		}
	}
	// PKCS#12: the key password is the keystore's.
	for key, file := range map[string]string{"keystore-password": "keystore.password", "truststore-password": "truststore.password", "key-password": "keystore.password"} {
		pw, err := os.ReadFile(filepath.Join(tls, file))
		if err != nil || len(pw) < 32 || flat["security.ssl.internal."+key] != string(pw) {
			t.Errorf("security.ssl.internal.%s does not match %s (%v)", key, file, err)
		}
	}

	empty := t.TempDir()
	tls2, conf2 := filepath.Join(t.TempDir(), "tls"), filepath.Join(t.TempDir(), "conf")
	r = s.cli(t, s.admin, "bake", "--cluster", "orders", "--role", "taskmanager", "--holder", "orders-tm-2", "--out", tls2,
		"--flink-conf-src", empty, "--flink-conf-out", conf2)
	if r.code != 1 || !strings.Contains(r.stderr, "holds neither config.yaml nor flink-conf.yaml") {
		t.Fatalf("bake from an empty configuration directory: exit %d, %s", r.code, r.stderr)
	}
	for _, dir := range []string{tls2, conf2} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("the refused bake created %s", dir)
		}
	}
	if hs := s.cli(t, s.admin, "holder", "list", "--cluster", "orders", "-o", "json").ok(t).stdout; strings.Contains(hs, "orders-tm-2") {
		t.Errorf("the refused bake recorded a holder:\n%s", hs)
	}
}
