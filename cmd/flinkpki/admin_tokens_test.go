package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestBootstrapMakesTheFirstAdministratorOfARunningHAInstallation: an HA
// installation has no data directory to bootstrap offline, so bootstrap
// opens its etcd store while the replicas run. It refuses a prefix no
// server has opened (a typo must not start a new store) and a wrong key,
// changing nothing in etcd either time.
func TestBootstrapMakesTheFirstAdministratorOfARunningHAInstallation(t *testing.T) {
	h := newHAStore(t)
	r := h.replica(t)
	endpoints := strings.Join(h.etcd.Endpoints(), ",")
	bootstrap := func(prefix, kek string) result {
		return runCLI(t, nil, "admin", "bootstrap", "--etcd-endpoints", endpoints, "--etcd-prefix", prefix, "--kek-file", kek, "--name", "ops")
	}

	keys := func(prefix string) int64 {
		c, err := clientv3.New(clientv3.Config{Endpoints: h.etcd.Endpoints(), DialTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		resp, err := c.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return resp.Count
	}
	oneLineError(t, bootstrap("/typo/", h.kek), 1, "holds no flinkpki store: start the servers first, or check --etcd-prefix")
	if n := keys("/typo/"); n != 0 {
		t.Errorf("a refused bootstrap wrote %d keys under /typo/", n)
	}
	before := keys(h.prefix)
	other := filepath.Join(t.TempDir(), "other.kek")
	if err := os.WriteFile(other, make([]byte, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	oneLineError(t, bootstrap(h.prefix, other), 1, "does not open etcd")
	if n := keys(h.prefix); n != before {
		t.Errorf("a bootstrap with the wrong key changed the store: %d keys, then %d", before, n)
	}
	oneLineError(t, runCLI(t, nil, "admin", "bootstrap", "--etcd-endpoints", endpoints, "--data-dir", t.TempDir(), "--kek-file", h.kek), 2, "--data-dir and --etcd-endpoints name two stores")

	res := bootstrap(h.prefix, h.kek)
	if res.code != 0 {
		t.Fatalf("bootstrap: exit %d: %s", res.code, res.stderr)
	}
	tok := filepath.Join(t.TempDir(), "ops.token")
	if err := os.WriteFile(tok, []byte(res.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	r.cli(t, tok, "cluster", "create", "orders").ok(t)
	audit := r.cli(t, tok, "audit", "list", "-o", "json").ok(t).stdout
	if !strings.Contains(audit, `"admin_token.create"`) || !strings.Contains(audit, `"system:bootstrap"`) {
		t.Errorf("the bootstrap is not in the audit trail:\n%s", audit)
	}

	// A leaked administrator token is revoked while the replicas run: listed
	// by ID and name, then refused from the next request on.
	store := []string{"--etcd-endpoints", endpoints, "--etcd-prefix", h.prefix, "--kek-file", h.kek}
	list := runCLI(t, nil, append([]string{"admin", "list-tokens", "-o", "json"}, store...)...)
	if list.code != 0 {
		t.Fatalf("list-tokens: exit %d: %s", list.code, list.stderr)
	}
	id := strings.SplitN(strings.TrimPrefix(strings.TrimSpace(res.stdout), "fpa_"), "_", 2)[0]
	if !strings.Contains(list.stdout, `"id": "`+id+`"`) || !strings.Contains(list.stdout, `"name": "ops"`) || strings.Contains(list.stdout, strings.TrimSpace(res.stdout)) {
		t.Fatalf("list-tokens shows neither the ID %s and name of the token, or shows its secret:\n%s", id, list.stdout)
	}
	const nosuch = "aaaaaaaaaaaaaaaaaaaaaaaaaa"
	oneLineError(t, runCLI(t, nil, append([]string{"admin", "revoke-token", nosuch}, store...)...), 1, `administrator token "`+nosuch+`" not found`)
	oneLineError(t, runCLI(t, nil, append([]string{"admin", "revoke-token", "nosuchid"}, store...)...), 2, "not a token ID")
	// Pasting the leaked token revokes it by its ID and prints no secret.
	r2 := runCLI(t, nil, append([]string{"admin", "revoke-token", strings.TrimSpace(res.stdout)}, store...)...)
	if r2.code != 0 || strings.Contains(r2.stdout+r2.stderr, strings.TrimSpace(res.stdout)[31:]) || !strings.Contains(r2.stderr, id+" revoked") {
		t.Fatalf("revoke-token with the token: exit %d: %s%s", r2.code, r2.stdout, r2.stderr)
	}
	r.cli(t, tok, "cluster", "list").refused(t, "unauthenticated")
	audit = r.cli(t, r.admin, "audit", "list", "-o", "json").ok(t).stdout
	if !strings.Contains(audit, `"admin_token.revoke"`) || !strings.Contains(audit, nosuch) || strings.Contains(audit, strings.TrimSpace(res.stdout)[31:]) {
		t.Errorf("the revocation and the refused one are not in the audit trail:\n%s", audit)
	}
}

// TestTheBootstrapPodsArgsAreOnesThisCLITakes runs the args of the one-off
// bootstrap pods under deploy/bootstrap through the real command line (with
// --help, so nothing is opened): a renamed flag would fail here, not on a
// cluster.
func TestTheBootstrapPodsArgsAreOnesThisCLITakes(t *testing.T) {
	for _, file := range []string{"pod-bolt.yaml", "pod-etcd.yaml", "pod-restore.yaml", "pod-serving-ca.yaml", "pod-serving-ca-etcd.yaml"} {
		raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "bootstrap", file))
		if err != nil {
			t.Fatal(err)
		}
		var pod corev1.Pod
		if err := yaml.UnmarshalStrict(raw, &pod); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		// The kubelet expands $(VAR) from the container's env: a literal
		// value as it is (the serving CA's STEP), one from a Secret as x;
		// each serving CA step the pod may be given is run.
		c := pod.Spec.Containers[0]
		values := map[string][]string{}
		for _, e := range c.Env {
			if e.Value != "" {
				values[e.Name] = []string{e.Value}
			}
		}
		if _, ok := values["STEP"]; ok {
			values["STEP"] = []string{"status", "prepare", "activate", "retire"}
		}
		steps := max(len(values["STEP"]), 1)
		for n := range steps {
			args := slices.Clone(c.Args)
			for i, a := range args {
				args[i] = regexp.MustCompile(`\$\(([A-Z_]+)\)`).ReplaceAllStringFunc(a, func(v string) string {
					if vs := values[v[2:len(v)-1]]; len(vs) > 0 {
						return vs[n%len(vs)]
					}
					return "x"
				})
			}
			r := runCLI(t, nil, append(args, "--help")...)
			if r.code != 0 {
				t.Errorf("%s: %v: exit %d: %s", file, args, r.code, r.stderr)
			}
			// A step the command does not know would show serving-ca's own help.
			if step := values["STEP"]; len(step) > 0 && !strings.Contains(r.stdout, "flinkpki admin serving-ca "+step[n]+" (") {
				t.Errorf("%s with STEP=%s: the help is not that step's:\n%s", file, step[n], r.stdout)
			}
		}
	}
}

// TestBootstrapListAndRevokeOnAStoppedBboltServer: the single-replica path.
// While the server runs its store is locked and bootstrap says to stop it;
// stopped, bootstrap makes a token the restarted server accepts, and after
// an offline revoke-token the next start refuses it.
func TestBootstrapListAndRevokeOnAStoppedBboltServer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	kek := filepath.Join(dir, "kek")
	store := []string{"--data-dir", dir, "--kek-file", kek}
	oneLineError(t, runCLI(t, nil, append([]string{"admin", "bootstrap"}, store...)...), 1, "stop it first")
	s.stop(t)

	res := runCLI(t, nil, append([]string{"admin", "bootstrap", "--name", "ops", "--ttl", "1d"}, store...)...)
	if res.code != 0 || !strings.Contains(res.stderr, `administrator token "ops" created, expires `) {
		t.Fatalf("bootstrap: exit %d: %s", res.code, res.stderr)
	}
	tok := filepath.Join(t.TempDir(), "ops.token")
	if err := os.WriteFile(tok, []byte(res.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	list := runCLI(t, nil, append([]string{"admin", "list-tokens"}, store...)...)
	if list.code != 0 || !strings.Contains(list.stdout, "ops") || !strings.Contains(list.stdout, "dev") || !strings.Contains(list.stdout, "system:bootstrap") {
		t.Fatalf("list-tokens: exit %d, want the dev and ops tokens and who made them:\n%s%s", list.code, list.stdout, list.stderr)
	}
	var listed []struct {
		Name, Expires, Created string
		Expired                bool
		// The names admin token list uses, beside the old ones.
		CreateTime string `json:"create_time"`
		ExpireTime string `json:"expire_time"`
	}
	list = runCLI(t, nil, append([]string{"admin", "list-tokens", "-o", "json"}, store...)...)
	if err := json.Unmarshal([]byte(list.stdout), &listed); err != nil || len(listed) != 2 {
		t.Fatalf("list-tokens -o json: %v\n%s", err, list.stdout)
	}
	for _, l := range listed {
		exp, err := time.Parse(time.RFC3339, l.Expires)
		if l.Name == "ops" && (err != nil || l.Expired || time.Until(exp) < 23*time.Hour || time.Until(exp) > 24*time.Hour) || l.Name == "dev" && l.Expires != "" {
			t.Errorf("list-tokens -o json: %+v; want ops to expire in a day (--ttl 1d), dev never", l)
		}
		if l.CreateTime != l.Created || l.ExpireTime != l.Expires || l.Created == "" {
			t.Errorf("list-tokens -o json: %+v; want create_time and expire_time as created and expires", l)
		}
	}
	s2 := startServerAt(t, dir, freeAddr(t))
	s2.cli(t, tok, "cluster", "list").ok(t)
	made := s2.cli(t, tok, "admin", "token", "create", "--name", "ci").ok(t).stdout
	madeFile := filepath.Join(t.TempDir(), "ci.token")
	if err := os.WriteFile(madeFile, []byte(made), 0o600); err != nil {
		t.Fatal(err)
	}
	s2.cli(t, madeFile, "cluster", "list").ok(t)
	s2.stop(t)

	// Offline, revoke-token takes the tokens made with the token too.
	id := strings.SplitN(strings.TrimPrefix(strings.TrimSpace(res.stdout), "fpa_"), "_", 2)[0]
	if r := runCLI(t, nil, append([]string{"admin", "revoke-token", id}, store...)...); r.code != 0 || !strings.Contains(r.stderr, id+" revoked, with the 1 made through it") {
		t.Fatalf("revoke-token: exit %d: %s", r.code, r.stderr)
	}
	s3 := startServerAt(t, dir, freeAddr(t))
	s3.cli(t, tok, "cluster", "list").refused(t, "unauthenticated")
	s3.cli(t, madeFile, "cluster", "list").refused(t, "unauthenticated")
}

// TestAProductionServerWithoutAnAdministratorSaysHowToMakeOne: serve never
// makes an administrator token outside --dev, so a new production store
// starts with none; its log says so, and how to make one, until one exists.
func TestAProductionServerWithoutAnAdministratorSaysHowToMakeOne(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	kek := filepath.Join(t.TempDir(), "kek")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kek, bytes.Repeat([]byte{9}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	const warning = "no administrator token exists yet (or every one has expired or been revoked): create one with flinkpki admin bootstrap"
	serve := func() string {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		logs, done := newSyncBuffer(), make(chan int, 1)
		go func() {
			a := &app{stdout: logs, stderr: logs, getenv: func(string) string { return "" }, now: time.Now}
			done <- a.run(ctx, []string{"serve", "--data-dir", dir, "--kek-file", kek, "--listen", freeAddr(t)})
		}()
		for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs.String(), "flinkpki serving"); time.Sleep(20 * time.Millisecond) {
			select {
			case code := <-done:
				t.Fatalf("serve exited %d before serving:\n%s", code, logs.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("serve did not start:\n%s", logs.String())
			}
		}
		cancel()
		if code := <-done; code != 0 {
			t.Fatalf("serve exited %d:\n%s", code, logs.String())
		}
		return logs.String()
	}
	if logs := serve(); !strings.Contains(logs, warning) {
		t.Fatalf("a new production server's log does not say how to make the first administrator token:\n%s", logs)
	}
	if r := runCLI(t, nil, "admin", "bootstrap", "--data-dir", dir, "--kek-file", kek); r.code != 0 {
		t.Fatalf("bootstrap: exit %d: %s", r.code, r.stderr)
	}
	if logs := serve(); strings.Contains(logs, warning) {
		t.Fatalf("the server warns of no administrator token after bootstrap:\n%s", logs)
	}
}

// TestAnAdminCommandWithoutAStoreSaysWhereItLooked: a store command run
// where no server ever ran (no --data-dir, or the wrong one) names the
// path and what to do, not Go's stat error.
func TestAnAdminCommandWithoutAStoreSaysWhereItLooked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kek := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(kek, bytes.Repeat([]byte{3}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	oneLineError(t, runCLI(t, nil, "admin", "list-tokens", "--data-dir", dir, "--kek-file", kek), 1,
		"no store at "+filepath.Join(dir, "flinkpki.db")+": pass the server's --data-dir, or start flinkpki serve once to create it")
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("the refused command left %d files in %s", len(ents), dir)
	}
}
