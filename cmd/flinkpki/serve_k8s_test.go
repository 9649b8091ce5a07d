package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/k8sauth/k8stest"
)

func TestServiceAccountTokensEnrollOnlyTheBoundPods(t *testing.T) {
	const issuerURL = "https://kubernetes.default.svc.cluster.local"
	iss := k8stest.NewECIssuer(t, issuerURL)
	stranger := k8stest.NewECIssuer(t, issuerURL)
	s := startServer(t, "", "--k8s-issuer", issuerURL, "--k8s-jwks-file", k8stest.JWKSFile(t, iss))
	s.cli(t, s.admin, "cluster", "create", "orders", "--k8s-namespace", "flink", "--k8s-service-account", "orders-flink").ok(t)

	good := k8stest.Claims{Namespace: "flink", ServiceAccount: "orders-flink", Pod: "orders-taskmanager-1-1"}
	out := filepath.Join(t.TempDir(), "tls")
	r := s.cli(t, "", "init", "--cluster", "orders", "--role", "taskmanager", "--out", out, "--token-file", iss.MintFile(good), "--timeout", "5s").ok(t)
	holders := s.cli(t, s.admin, "holder", "list", "--cluster", "orders", "-o", "json").ok(t).stdout
	if !strings.Contains(holders, `"orders-taskmanager-1-1"`) {
		t.Fatalf("the holder is not the pod name:\n%s\n%s", holders, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "keystore.p12")); err != nil {
		t.Fatalf("no keystore written: %v", err)
	}

	with := func(mod func(*k8stest.Claims)) k8stest.Claims {
		c := good
		mod(&c)
		return c
	}
	cases := []struct {
		name  string
		token string
		want  string
	}{
		{"another namespace", iss.MintFile(with(func(c *k8stest.Claims) { c.Namespace = "other" })), "not bound"},
		{"another service account", iss.MintFile(with(func(c *k8stest.Claims) { c.ServiceAccount = "default" })), "not bound"},
		{"the wrong audience", iss.MintFile(with(func(c *k8stest.Claims) { c.Audience = []string{"vault"} })), "audience"},
		{"the wrong issuer", iss.MintFile(with(func(c *k8stest.Claims) { c.Issuer = "https://evil.example" })), "issuer"},
		{"an expired token", iss.MintFile(with(func(c *k8stest.Claims) {
			c.IssuedAt = time.Now().Add(-2 * time.Hour)
			c.Expiry = time.Now().Add(-time.Hour)
		})), "expired"},
		{"a token signed by an unknown key", stranger.MintFile(good), "key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "tls")
			s.cli(t, "", "init", "--cluster", "orders", "--role", "taskmanager", "--out", out, "--token-file", c.token, "--timeout", "5s").refused(t, c.want)
			if got := entries(t, out); len(got) != 0 {
				t.Errorf("a refused init wrote %v", got)
			}
		})
	}
	after := s.cli(t, s.admin, "holder", "list", "--cluster", "orders", "-o", "json").ok(t).stdout
	if after != holders {
		t.Errorf("refused tokens changed the holders:\n%s\n%s", holders, after)
	}
	// An explicit --holder cannot make a pod speak for another: the server
	// records the pod, and init says so instead of staying silent.
	r = s.cli(t, "", "init", "--cluster", "orders", "--role", "taskmanager", "--holder", "other-pod",
		"--out", filepath.Join(t.TempDir(), "tls"), "--token-file", iss.MintFile(good), "--timeout", "5s").ok(t)
	if want := `note: the server recorded the holder as "orders-taskmanager-1-1", not --holder "other-pod"`; !strings.Contains(r.stderr, want) {
		t.Errorf("init with another --holder says %q, want %q", r.stderr, want)
	}
	if hs := s.cli(t, s.admin, "holder", "list", "--cluster", "orders", "-o", "json").ok(t).stdout; strings.Contains(hs, "other-pod") {
		t.Errorf("a pod's token enrolled another holder:\n%s", hs)
	}
	// A service-account token never opens administrator RPCs.
	s.cli(t, iss.MintFile(good), "cluster", "list").refused(t, "administrator")
}
