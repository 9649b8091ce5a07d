package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flinkpki/flinkpki/internal/jdktest"
	flinkpkiv1 "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

// TestNginxServesRESTMaterialAndAdmitsOnlyRESTClients runs a real nginx as
// the sidecar in front of a stand-in for Flink's REST endpoint on loopback.
func TestNginxServesRESTMaterialAndAdmitsOnlyRESTClients(t *testing.T) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/nginx"); err2 == nil {
			nginx = "/usr/sbin/nginx"
		} else {
			t.Fatal("nginx not found: apt-get install nginx-light")
		}
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl not found: apt-get install curl")
	}
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "web").ok(t)
	srv := filepath.Join(t.TempDir(), "rest-server")
	cli := filepath.Join(t.TempDir(), "rest-client")
	tm := filepath.Join(t.TempDir(), "tm")
	s.cli(t, s.admin, "bake", "--cluster", "web", "--role", "rest-server", "--holder", "jm-0", "--dns", "localhost", "--ip", "127.0.0.1", "--out", srv).ok(t)
	s.cli(t, s.admin, "bake", "--cluster", "web", "--role", "rest-client", "--holder", "ops", "--out", cli).ok(t)
	s.cli(t, s.admin, "bake", "--cluster", "web", "--role", "taskmanager", "--holder", "tm-0", "--out", tm).ok(t)
	// A rest-server leaf without a name is refused before the server is
	// asked (a usage error), and by the server too.
	if r := s.cli(t, s.admin, "bake", "--cluster", "web", "--role", "rest-server", "--holder", "nodns", "--out", filepath.Join(t.TempDir(), "x")); r.code != 2 || !strings.Contains(r.stderr, "--dns NAME") {
		t.Fatalf("bake rest-server without --dns: exit %d, %q; want a usage error naming --dns", r.code, r.stderr)
	}
	_, err = flinkpkiv1.NewEnrollmentServiceClient(s.adminConn(t)).Bake(context.Background(), &flinkpkiv1.BakeRequest{Cluster: "web", Role: "rest-server", Holder: "nodns"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "DNS") {
		t.Fatalf("a Bake request for rest-server without names: %v, want InvalidArgument naming DNS", err)
	}

	// The stand-in for Flink's REST endpoint, bound to loopback.
	flinkREST, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"flink-version":"test","client":%q}`, r.Header.Get("X-Client-Subject"))
	})}
	go hs.Serve(flinkREST)
	t.Cleanup(func() { hs.Close() })

	prefix := t.TempDir()
	port := strings.Split(freeAddr(t), ":")[1]
	conf := fmt.Sprintf(`worker_processes 1;
error_log %[1]s/error.log info;
pid %[1]s/nginx.pid;
events { worker_connections 64; }
http {
  access_log %[1]s/access.log;
  client_body_temp_path %[1]s/body; proxy_temp_path %[1]s/proxy; fastcgi_temp_path %[1]s/fcgi;
  uwsgi_temp_path %[1]s/uwsgi; scgi_temp_path %[1]s/scgi;
  server {
    listen 127.0.0.1:%[2]s ssl;
    ssl_certificate %[3]s/tls.crt;
    ssl_certificate_key %[3]s/tls.key;
    ssl_client_certificate %[3]s/ca.crt;
    ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_set_header X-Client-Subject $ssl_client_s_dn;
      proxy_pass http://%[4]s;
    }
  }
}
`, prefix, port, srv, flinkREST.Addr())
	confPath := filepath.Join(prefix, "nginx.conf")
	os.WriteFile(confPath, []byte(conf), 0o600)
	cmd := exec.Command(nginx, "-p", prefix, "-c", confPath, "-g", "daemon off; user root;")
	cmd.Stderr = os.Stderr
	// In a process group of its own: a SIGKILL to the master alone would
	// leave its worker running, listening, and re-parented to init. The
	// master stops its workers on SIGTERM; the group's SIGKILL is for
	// what is left after.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(prefix, "error.log"))
			t.Fatalf("nginx did not start:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}

	url := "https://localhost:" + port + "/overview"
	curlStatus := func(args ...string) string {
		out, _ := exec.Command(curl, append([]string{"-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", filepath.Join(srv, "ca.crt"), url}, args...)...).Output()
		return string(out)
	}
	if got := curlStatus("--cert", filepath.Join(cli, "tls.crt"), "--key", filepath.Join(cli, "tls.key")); got != "200" {
		t.Errorf("curl with rest-client material: HTTP %q, want 200", got)
	}
	if got := curlStatus("--cert", filepath.Join(tm, "tls.crt"), "--key", filepath.Join(tm, "tls.key")); got == "200" {
		t.Errorf("curl with an internal TaskManager certificate was let in")
	}
	if got := curlStatus(); got == "200" {
		t.Errorf("curl without a client certificate was let in")
	}
}

// TestFlinkConfigOutputCompletesTheJDKHandshake checks that the
// flinkConfiguration block 'flink config' prints, completed only with the
// pod-local passwords the init container adds, works in the JDK for RSA and
// ECDSA clusters.
func TestFlinkConfigOutputCompletesTheJDKHandshake(t *testing.T) {
	s := startServer(t, "")
	var pairs [][2]string
	for _, kt := range []string{"ecdsa-p256", "rsa-2048"} {
		name := "fc-" + strings.ReplaceAll(kt, "-", "")
		s.cli(t, s.admin, "cluster", "create", name, "--key-type", kt).ok(t)
		var dirs []string
		for _, role := range []string{"jobmanager", "taskmanager"} {
			tlsDir := filepath.Join(t.TempDir(), role)
			block := s.cli(t, s.admin, "flink", "config", "--cluster", name, "--role", role, "--tls-dir", tlsDir).ok(t).stdout
			if strings.Contains(strings.ToLower(block), "password") {
				t.Fatalf("flink config prints a password:\n%s", block)
			}
			s.cli(t, s.admin, "bake", "--cluster", name, "--role", role, "--holder", role+"-0", "--out", tlsDir).ok(t)
			confDir := t.TempDir()
			var kv map[string]any
			if err := yaml.Unmarshal([]byte(block), &kv); err != nil {
				t.Fatalf("flink config output is not YAML: %v\n%s", err, block)
			}
			var b strings.Builder
			flat := map[string]string{}
			flatten("", kv, flat)
			for k, v := range flat {
				fmt.Fprintf(&b, "%s: %s\n", k, v)
			}
			ksPW, _ := os.ReadFile(filepath.Join(tlsDir, "keystore.password"))
			tsPW, _ := os.ReadFile(filepath.Join(tlsDir, "truststore.password"))
			fmt.Fprintf(&b, "security.ssl.internal.keystore-password: %s\nsecurity.ssl.internal.key-password: %s\nsecurity.ssl.internal.truststore-password: %s\n", ksPW, ksPW, tsPW)
			os.WriteFile(filepath.Join(confDir, jdktest.SSLConfFile), []byte(b.String()), 0o600)
			dirs = append(dirs, confDir)
		}
		pairs = append(pairs, [2]string{dirs[0], dirs[1]}, [2]string{dirs[1], dirs[0]})
	}
	for i, err := range jdktest.HandshakeAll(t, pairs) {
		if err != nil {
			t.Errorf("pair %d: %v", i, err)
		}
	}
}
