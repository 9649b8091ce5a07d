package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// confPassword is the keystore password that a merged config.yaml names.
func confPassword(t *testing.T, confOut string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(confOut, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^security\.ssl\.internal\.keystore-password:\s*(\S+)`).FindSubmatch(raw)
	if m == nil {
		t.Fatalf("no keystore password in config.yaml:\n%s", raw)
	}
	return string(m[1])
}

// TestAFailedInitLeavesNoNewStoresBesideTheOldConfiguration: a second init
// into the same --out and --flink-conf-out (an emptyDir that outlived its
// container) whose configuration copy cannot be moved into place must
// leave the old stores with the old configuration. runInit swaps the
// credential set (new passwords) first and renames the configuration
// after, so when that rename fails (here: config.yaml is a bind mount, so
// rename gives EBUSY; a kill -9 between the two steps leaves the same
// state) the configuration Flink reads names passwords that no longer
// open the stores. Needs root for the bind mount. bake (an image build
// run again into its directory) is held to the same.
func TestAFailedInitLeavesNoNewStoresBesideTheOldConfiguration(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test bind-mounts over a file and so must run as root (CI does)")
	}
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	tok := s.tokenFor(t, "orders", "taskmanager", "--uses", "2")
	for _, cmd := range []string{"init", "bake"} {
		t.Run(cmd, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "conf")
			os.MkdirAll(src, 0o755)
			os.WriteFile(filepath.Join(src, "config.yaml"), []byte("taskmanager.numberOfTaskSlots: 2\n"), 0o644)
			tls := filepath.Join(t.TempDir(), "tls")
			confOut := filepath.Join(t.TempDir(), "conf-out")
			once := func() result {
				args := []string{cmd, "--cluster", "orders", "--role", "taskmanager", "--holder", "tm-" + cmd, "--out", tls,
					"--flink-conf-src", src, "--flink-conf-out", confOut}
				if cmd == "init" {
					return s.cli(t, "", append(args, "--token-file", tok, "--timeout", "5s")...)
				}
				return s.cli(t, s.admin, args...)
			}
			once().ok(t)

			// Make the configuration's rename fail, and only it.
			cfg := filepath.Join(confOut, "config.yaml")
			cp := filepath.Join(t.TempDir(), "config.yaml")
			data, _ := os.ReadFile(cfg)
			os.WriteFile(cp, data, 0o600)
			if out, err := exec.Command("mount", "--bind", cp, cfg).CombinedOutput(); err != nil {
				t.Fatalf("bind mount: %v: %s", err, out)
			}
			t.Cleanup(func() { exec.Command("umount", cfg).Run() })

			before := credentialsPasswords(t, tls)
			r := once()
			if r.code == 0 {
				t.Fatalf("%s succeeded although config.yaml could not be replaced", cmd)
			}
			if after := credentialsPasswords(t, tls); after != before {
				t.Errorf("the second %s into the same directory changed the passwords (%v -> %v): the configuration Flink reads meanwhile no longer opens the stores", cmd, before, after)
			}
			ksPW, _ := os.ReadFile(filepath.Join(tls, "keystore.password"))
			if got := confPassword(t, confOut); got != string(ksPW) {
				t.Fatalf("after a failed %s (%s) the Flink configuration names keystore password %q but the keystore in %s now opens with %q: Flink would fail to load its stores",
					cmd, strings.TrimSpace(r.stderr), got, tls, bytes.TrimSpace(ksPW))
			}
		})
	}
}

// TestInitWithAConfigCopyLargerThanTheProbeSpendsNoToken: ReadConf probes
// the configuration output with a fixed 64 KiB (atomicfile.CheckDir), but
// the copy can be larger (a Flink conf dir with big log4j files). On a
// volume with room for the probe but not the copy, init enrolls (spends the
// token use, records a live holder that then blocks ca activate) and only
// then fails to stage the copy.
func TestInitWithAConfigCopyLargerThanTheProbeSpendsNoToken(t *testing.T) {
	vol := smallTmpfs(t, 256<<10)
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	src := filepath.Join(t.TempDir(), "conf")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "config.yaml"), []byte("taskmanager.numberOfTaskSlots: 2\n"), 0o644)
	os.WriteFile(filepath.Join(src, "log4j-console.properties"), bytes.Repeat([]byte("# comment line\n"), 20000), 0o644) // 300 KB
	tok := s.tokenFor(t, "orders", "taskmanager", "--uses", "1")
	r := s.cli(t, "", "init", "--cluster", "orders", "--role", "taskmanager", "--holder", "tm-0",
		"--out", filepath.Join(t.TempDir(), "tls"), "--token-file", tok,
		"--flink-conf-src", src, "--flink-conf-out", filepath.Join(vol, "conf"), "--timeout", "5s")
	if r.code == 0 {
		t.Fatal("init succeeded on a volume too small for the copy")
	}
	if hs := s.cli(t, s.admin, "holder", "list", "--cluster", "orders", "-o", "json").ok(t).stdout; strings.Contains(hs, "tm-0") {
		t.Errorf("init failed (%s) only after enrolling: holder tm-0 is recorded and the one-use token is spent", strings.TrimSpace(r.stderr))
	}
	if names := entries(t, vol); len(names) != 0 {
		t.Errorf("the failed init left %v on the volume", names)
	}
}

// TestAWriteThatFailsAfterIssuanceSaysSoAndLeavesNothing: a volume with
// room for the probes but too few inodes for the file set (a tmpfs of 12)
// passes every pre-check, so the server issues and the write fails. The
// error says, on one line, that the holder was issued for (with the serial)
// and what to do, names the user's path once (not the hidden generation
// directory), and the copy's output directory, created for the run, is
// gone with the rest. The advice given works.
func TestAWriteThatFailsAfterIssuanceSaysSoAndLeavesNothing(t *testing.T) {
	vol := tmpfsWith(t, "size=1m,nr_inodes=12")
	s := startServer(t, "")
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	src := filepath.Join(t.TempDir(), "conf")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "config.yaml"), []byte("taskmanager.numberOfTaskSlots: 2\n"), 0o644)
	r := s.cli(t, s.admin, "bake", "--cluster", "orders", "--role", "jobmanager", "--holder", "ino-1",
		"--out", filepath.Join(vol, "tls"), "--flink-conf-src", src, "--flink-conf-out", filepath.Join(vol, "conf"))
	oneLineError(t, r, 1, `the server issued credentials for holder "ino-1" of cluster "orders" (serial `)
	for _, want := range []string{
		"but they could not be written: cannot create " + filepath.Join(vol, "tls") + "/",
		": no space left on device; free space or fix the path and run again",
		"flinkpki holder release --cluster orders --purpose internal ino-1",
		"no use left now, make another first: flinkpki token create", // the default enrollment token has one use
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the error does not say %q:\n%s", want, r.stderr)
		}
	}
	if n := strings.Count(r.stderr, vol); n != 1 || strings.Contains(r.stderr, "/..") {
		t.Errorf("the error names the volume %d times, or a hidden directory, want the user's path once:\n%s", n, r.stderr)
	}
	if names := entries(t, vol); len(names) != 0 {
		t.Errorf("the failed bake left %v on the volume", names)
	}
	hs := s.cli(t, s.admin, "holder", "list", "--cluster", "orders", "-o", "json").ok(t).stdout
	if !strings.Contains(hs, `"ino-1"`) {
		t.Fatalf("no holder ino-1 recorded, so the error's claim is wrong:\n%s", hs)
	}
	s.cli(t, s.admin, "holder", "release", "--cluster", "orders", "--purpose", "internal", "ino-1").ok(t)
}

// TestAnInterruptedRestoreCanBeRunAgain: admin restore stages the database
// as DIR/.flinkpki.db.tmp-* (atomicfile.WriteFrom) and renames it; a
// restore killed before the rename leaves that file (a whole copy of the
// store, CA keys sealed) in the otherwise empty data directory. Running the
// same restore again must work (its own leftover is no live data), and the
// leftover must not survive.
func TestAnInterruptedRestoreCanBeRunAgain(t *testing.T) {
	backup := newStoreFile(t)
	dir := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(dir, 0o700)
	raw, _ := os.ReadFile(backup)
	// What a restore killed between its copy and its rename leaves.
	os.WriteFile(filepath.Join(dir, ".flinkpki.db.tmp-123456"), raw, 0o600)
	// serve must not start a new, empty store beside it.
	kek := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(kek, bytes.Repeat([]byte{7}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, nil, "serve", "--data-dir", dir, "--kek-file", kek, "--listen", freeAddr(t))
	if r.code != 1 || !strings.Contains(r.stderr, "what an interrupted admin restore left: run the restore again") {
		t.Fatalf("serve on an interrupted restore: exit %d: %s", r.code, r.stderr)
	}
	if names := entries(t, dir); len(names) != 1 {
		t.Fatalf("the refused serve changed the data directory: %v", names)
	}
	r = runCLI(t, nil, "admin", "restore", backup, "--data-dir", dir)
	if r.code != 0 {
		t.Fatalf("restore after an interrupted restore: exit %d: %s", r.code, strings.TrimSpace(r.stderr))
	}
	if names := entries(t, dir); len(names) != 1 {
		t.Errorf("data dir holds %v, want only flinkpki.db", names)
	}
}

// credentialsPasswords is the keystore and truststore passwords of the set
// in dir.
func credentialsPasswords(t *testing.T, dir string) [2]string {
	t.Helper()
	var out [2]string
	for i, name := range []string{"keystore.password", "truststore.password"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = string(b)
	}
	return out
}

// TestRestoreIgnoresWhatAServerOrAKilledStartLeft: a bbolt server rewrites
// DIR/.flinkpki-health, and a first start killed before its store was in
// place may leave DIR/.flinkpki-new-*.db; neither is live data, so an
// operator who removed a damaged store (rm DIR/* keeps dot files) can
// restore into DIR. Anything else is named in the refusal. (From the
// review of this session's changes.)
func TestRestoreIgnoresWhatAServerOrAKilledStartLeft(t *testing.T) {
	backup := newStoreFile(t)
	dir := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, ".flinkpki-health"), make([]byte, 8), 0o600)
	os.WriteFile(filepath.Join(dir, ".flinkpki-new-42.db"), nil, 0o600)
	runCLI(t, nil, "admin", "restore", backup, "--data-dir", dir).ok(t)

	busy := filepath.Join(t.TempDir(), "busy")
	os.MkdirAll(busy, 0o700)
	os.WriteFile(filepath.Join(busy, "notes.txt"), nil, 0o600)
	runCLI(t, nil, "admin", "restore", backup, "--data-dir", busy).refused(t, "is not empty (it holds notes.txt)")
}

// TestAFirstStartOnAFullVolumeLeavesNothingBehind: a first start that
// fails for space (a volume of 16 KiB) leaves neither a store file the
// next start would refuse nor a key-encryption key without its store, so
// the same command works once there is room. (From the crash-consistency
// review: the half-made store file stayed, and the retry was refused.)
func TestAFirstStartOnAFullVolumeLeavesNothingBehind(t *testing.T) {
	vol := smallTmpfs(t, 16<<10)
	dir := filepath.Join(vol, "data")
	r := runCLI(t, nil, "serve", "--dev", "--data-dir", dir, "--listen", freeAddr(t))
	if r.code == 0 || !strings.Contains(r.stderr, "no space left on device") {
		t.Fatalf("serve on a full volume: exit %d\n%s", r.code, r.stderr)
	}
	var left []string
	filepath.WalkDir(vol, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Fatalf("the failed first start left %v", left)
	}
}

// TestADevStartRemovesWhatAKilledFirstStartLeft: a serve --dev killed
// during its first start may leave the temporary files of DIR/kek (a key
// never put in place), DIR/server-ca.crt and DIR/admin.token (a token);
// the next start removes them.
func TestADevStartRemovesWhatAKilledFirstStartLeft(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	left := []string{".kek.tmp-123", ".server-ca.crt.tmp-456", ".admin.token.tmp-789"}
	for _, name := range left {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("killed"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	startServer(t, dir)
	for _, name := range entries(t, dir) {
		if slices.Contains(left, name) {
			t.Errorf("%s is still in the data directory after a start", name)
		}
	}
}
