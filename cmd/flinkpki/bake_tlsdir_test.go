package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBakeTLSDirNamesTheStoresWhereTheImageHasThem: an image build bakes
// into a directory on the build host and copies it into the image at
// another path; flink-ssl.yaml names the stores at --tls-dir, by default
// at the absolute --out. A --tls-dir Flink could not use is refused before
// anything is issued.
func TestBakeTLSDirNamesTheStoresWhereTheImageHasThem(t *testing.T) {
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "img").ok(t)
	bake := func(out string, extra ...string) result {
		t.Helper()
		return s.cli(t, s.admin, append([]string{"bake", "--cluster", "img", "--role", "jobmanager", "--holder", "jm", "--out", out}, extra...)...)
	}
	sslYAML := func(out string) string {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(out, "flink-ssl.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}

	out := filepath.Join(t.TempDir(), "tls")
	r := bake(out, "--tls-dir", "/opt/flink/tls/", "-o", "json").ok(t)
	yaml := sslYAML(out)
	for _, want := range []string{"security.ssl.internal.keystore: /opt/flink/tls/keystore.p12\n", "security.ssl.internal.truststore: /opt/flink/tls/truststore.p12\n"} {
		if !strings.Contains(yaml, want) {
			t.Errorf("bake --tls-dir /opt/flink/tls/: flink-ssl.yaml lacks %q:\n%s", want, yaml)
		}
	}
	if strings.Contains(yaml, out) {
		t.Errorf("bake --tls-dir: flink-ssl.yaml still names --out %s:\n%s", out, yaml)
	}
	var j struct {
		Dir    string `json:"dir"`
		TLSDir string `json:"tls_dir"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil {
		t.Fatal(err)
	}
	if j.Dir != out || j.TLSDir != "/opt/flink/tls" {
		t.Errorf("bake -o json: dir %q, tls_dir %q; want %q and /opt/flink/tls", j.Dir, j.TLSDir, out)
	}

	plain := filepath.Join(t.TempDir(), "tls")
	dest := filepath.Join(t.TempDir(), "opt-flink-tls")
	hint := "flink-ssl.yaml names the stores under /opt/flink/tls: copy " + plain + " there whole, hidden entries and links included (cp -a " + plain + "/. /opt/flink/tls"
	if r := bake(plain, "--tls-dir", "/opt/flink/tls").ok(t); !strings.Contains(r.stderr, hint) {
		t.Errorf("bake --tls-dir does not say where the files must go, and how:\n%s", r.stderr)
	}
	// With a configuration copy, baked for the image: the copy goes there
	// too, so the hint is not the build host's path.
	src, confOut := t.TempDir(), filepath.Join(t.TempDir(), "conf")
	if err := os.WriteFile(filepath.Join(src, "config.yaml"), []byte("taskmanager.numberOfTaskSlots: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = bake(filepath.Join(t.TempDir(), "tls"), "--tls-dir", "/opt/flink/tls", "--flink-conf-src", src, "--flink-conf-out", confOut).ok(t)
	if !strings.Contains(r.stderr, "merged in "+confOut+": copy it where Flink will read it") || strings.Contains(r.stderr, "FLINK_CONF_DIR="+confOut) {
		t.Errorf("bake --tls-dir --flink-conf-out points FLINK_CONF_DIR at the build host's copy:\n%s", r.stderr)
	}
	// The hint's copy works: every store and password is readable there (a
	// copy of "tls/*" would hold links into the hidden ..data, dangling).
	if out, err := exec.Command("cp", "-a", plain+"/.", dest).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
	for _, name := range []string{"keystore.p12", "truststore.p12", "keystore.password", "truststore.password", "flink-ssl.yaml"} {
		if _, err := os.ReadFile(filepath.Join(dest, name)); err != nil {
			t.Errorf("after the hinted copy, %s cannot be read: %v", name, err)
		}
	}

	def := filepath.Join(t.TempDir(), "tls")
	bake(def).ok(t)
	if yaml := sslYAML(def); !strings.Contains(yaml, "security.ssl.internal.keystore: "+def+"/keystore.p12\n") {
		t.Errorf("bake without --tls-dir: flink-ssl.yaml does not name the stores under --out %s:\n%s", def, yaml)
	}

	before := s.cli(t, s.admin, "holder", "list", "--cluster", "img", "-o", "json").ok(t).stdout
	for _, tt := range []struct {
		name, tlsDir string
		code         int
		want         string
	}{
		{"a relative --tls-dir is a usage error", "opt/flink/tls", 2, "--tls-dir opt/flink/tls is not an absolute path"},
		{"a --tls-dir Flink cannot name unquoted is refused", "/opt/my tls", 1, `directory "/opt/my tls" contains ' '`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			oneLineError(t, bake(filepath.Join(parent, "tls"), "--tls-dir", tt.tlsDir), tt.code, tt.want)
			if names := entries(t, parent); len(names) != 0 {
				t.Errorf("a refused bake left %v behind", names)
			}
		})
	}
	if after := s.cli(t, s.admin, "holder", "list", "--cluster", "img", "-o", "json").ok(t).stdout; after != before {
		t.Errorf("a refused bake changed the holders:\nbefore %s\nafter  %s", before, after)
	}
}
