//go:build flinke2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pki drives a real `flinkpki serve --dev` through the real CLI binary.
type pki struct {
	bin string
	env []string
	dir string
}

// startPKI starts the dev server on a free loopback port and waits until it
// has written its trust anchor and admin token.
func startPKI(t testing.TB, bin, dir string) *pki {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	data := filepath.Join(dir, "pki-data")
	startProc(t, "flinkpki-serve", []string{bin, "serve", "--dev", "--data-dir", data, "--listen", addr}, nil,
		filepath.Join(dir, "flinkpki-serve.log"))
	p := &pki{bin: bin, dir: dir, env: []string{
		"FLINKPKI_SERVER=" + addr,
		"FLINKPKI_CA_FILE=" + filepath.Join(data, "server-ca.crt"),
		"FLINKPKI_TOKEN_FILE=" + filepath.Join(data, "admin.token"),
	}}
	err := waitFor(20*time.Second, 100*time.Millisecond, func() error {
		if _, err := os.Stat(filepath.Join(data, "admin.token")); err != nil {
			return err
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		t.Fatalf("flinkpki serve --dev did not come up on %s: %v (log %s)", addr, err, filepath.Join(dir, "flinkpki-serve.log"))
	}
	return p
}

// run runs one CLI command and returns its stdout, or the error with stderr.
func (p *pki) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, _, err := runCmd(ctx, p.env, append([]string{p.bin}, args...)...)
	return out, err
}

// must runs one CLI command that has to succeed.
func (p *pki) must(t testing.TB, args ...string) string {
	t.Helper()
	out, err := p.run(args...)
	if err != nil {
		t.Fatalf("flinkpki %s failed: %v", strings.Join(args, " "), err)
	}
	return out
}

// token creates an enrollment token for role and writes it to a file.
func (p *pki) token(t testing.TB, cluster, role string) string {
	t.Helper()
	tok := strings.TrimSpace(p.must(t, "token", "create", "--cluster", cluster, "--role", role, "--uses", "50", "--ttl", "1h"))
	path := filepath.Join(p.dir, fmt.Sprintf("%s-%s.token", cluster, role))
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatalf("write token: %v", err)
	}
	return path
}

// initHolder runs `flinkpki init` the way an init container does: a fresh
// key, the TLS file set in tlsDir and the merged Flink configuration in
// confDir, copied from baseConf. Re-running it for the same holder supersedes.
func (p *pki) initHolder(t testing.TB, cluster, role, holder, tokenFile, baseConf, tlsDir, confDir string, extra ...string) {
	t.Helper()
	_ = os.RemoveAll(confDir)
	args := []string{"init", "--cluster", cluster, "--role", role, "--holder", holder, "--out", tlsDir,
		"--token-file", tokenFile, "--flink-conf-src", baseConf, "--flink-conf-out", confDir}
	p.must(t, append(args, extra...)...)
}
