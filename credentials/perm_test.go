package credentials_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// nobody is the unprivileged user the permission test runs the writer as.
const nobody = 65534

// TestWriteIntoAnUnwritableDirectory needs a real permission denial. Tests
// run as root, which ignores permission bits, so the writer runs as a copy
// of this test binary under the nobody user against a root-owned 0755
// directory.
func TestWriteIntoAnUnwritableDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatalf("this test drops privileges to uid %d and so must run as root (euid is %d)", nobody, os.Geteuid())
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	for p := base; p != filepath.Dir(p) && strings.HasPrefix(p, os.TempDir()) && p != os.TempDir(); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil { // let nobody reach the binary and the target
			t.Fatal(err)
		}
	}
	bin := filepath.Join(base, "writer.test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(base, "readonly")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{bin, target} { // whatever the umask took away
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, out := range []string{target, filepath.Join(target, "sub")} {
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = append(os.Environ(), writeOnceEnv+"="+out)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		msg, err := cmd.Output()
		if err == nil {
			t.Fatalf("Write into %s as uid %d succeeded", out, nobody)
		}
		if !strings.Contains(string(msg), "permission denied") || strings.Contains(string(msg), "\n") {
			t.Errorf("Write into %s failed with %q, want one line saying permission denied", out, msg)
		}
	}
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Errorf("a failed write left %d entries in %s", len(entries), target)
	}
}
