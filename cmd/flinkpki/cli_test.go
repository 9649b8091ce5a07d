package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// writeFile writes data into a new file under t.TempDir and returns its path.
func writeFile(t testing.TB, name, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// countingListener accepts and drops connections, counting them, so a test
// can prove no network call was made.
func countingListener(t testing.TB) (string, *atomic.Int64) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { lis.Close() })
	return lis.Addr().String(), &n
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	tok := writeFile(t, "token", "fpa_x\n")
	down := freeAddr(t)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"help succeeds", []string{"--help"}, 0, ""},
		{"a command group without subcommand shows its help", []string{"cluster"}, 0, ""},
		{"an unknown command is a usage error", []string{"clusterz"}, 2, `unknown command "clusterz"`},
		{"an unknown help topic is a usage error", []string{"help", "clustr"}, 2, `unknown help topic "clustr"; see flinkpki --help`},
		{"help of a known command succeeds", []string{"help", "ca", "status"}, 0, ""},
		{"an unknown subcommand is a usage error", []string{"cluster", "frobnicate"}, 2, `unknown command "frobnicate" for "flinkpki cluster"`},
		{"a mistyped command gets a suggestion on its one line", []string{"clustr", "list"}, 2, `unknown command "clustr" for "flinkpki" (did you mean cluster?); see flinkpki --help`},
		{"a mistyped subcommand before its flags is named, not the flags", []string{"ca", "stauts", "--cluster", "x", "-o", "json"}, 2,
			`unknown command "stauts" for "flinkpki ca" (did you mean status?); see flinkpki ca --help`},
		{"an unknown flag of a group is still named", []string{"ca", "--bogus"}, 2, "unknown flag: --bogus"},
		{"an unknown flag is a usage error", []string{"cluster", "list", "--bogus"}, 2, "unknown flag: --bogus"},
		{"a missing argument is a usage error", []string{"cluster", "get"}, 2, "accepts 1 arg(s), received 0"},
		{"an extra argument is a usage error", []string{"cluster", "get", "a", "b"}, 2, "accepts 1 arg(s), received 2"},
		{"a missing --cluster is a usage error", []string{"holder", "list"}, 2, "--cluster is required"},
		{"an unknown role is a usage error", []string{"token", "create", "--cluster", "a", "--role", "admin"}, 2, `unknown role "admin"`},
		{"an unknown output format is a usage error", []string{"cluster", "list", "-o", "yaml"}, 2, `unknown output format "yaml"`},
		{"a malformed duration is a usage error", []string{"cluster", "create", "a", "--ca-validity", "3 years"}, 2, `invalid duration "3 years"`},
		{"an unknown key type is a usage error", []string{"cluster", "create", "a", "--key-type", "ed25519"}, 2, "ed25519"},
		{"unpaired Kubernetes bindings are a usage error", []string{"cluster", "create", "a", "--k8s-namespace", "ns"}, 2, "come in pairs"},
		{"delete without --yes is refused as a usage error", []string{"cluster", "delete", "orders"}, 2, `deleting cluster "orders" cannot be undone: add --yes to delete it`},
		{"no token at all is a usage error", []string{"cluster", "list"}, 2, "no token: pass --token-file FILE or set FLINKPKI_TOKEN_FILE"},
		{"only one of the Flink conf flags is a usage error", []string{"init", "--cluster", "a", "--role", "jobmanager", "--out", "x", "--flink-conf-src", "d"}, 2, "go together"},
		{"--flink-conf-set without the copy is a usage error", []string{"init", "--cluster", "a", "--role", "jobmanager", "--out", "x", "--flink-conf-set", "rest.bind-address=127.0.0.1"}, 2, "--flink-conf-set needs --flink-conf-src and --flink-conf-out"},
		{"--flink-conf-set cannot set flinkpki's own keys", []string{"init", "--cluster", "a", "--role", "jobmanager", "--out", "x", "--flink-conf-src", "s", "--flink-conf-out", "o", "--flink-conf-set", "security.ssl.internal.enabled=false"}, 2, "the security.ssl.* keys come from the file set"},
		{"--flink-conf-set cannot turn a transport's TLS off", []string{"init", "--cluster", "a", "--role", "jobmanager", "--out", "x", "--flink-conf-src", "s", "--flink-conf-out", "o", "--flink-conf-set", "taskmanager.data.ssl.enabled=false"}, 2, "the copy leaves Flink's per-transport TLS switches out"},
		{"--flink-conf-set wants KEY=VALUE", []string{"init", "--cluster", "a", "--role", "jobmanager", "--out", "x", "--flink-conf-src", "s", "--flink-conf-out", "o", "--flink-conf-set", "rest.bind-address"}, 2, "want KEY=VALUE"},
		{"a PKCS#12 profile with JKS stores is a usage error", []string{"bake", "--cluster", "a", "--role", "jobmanager", "--holder", "h", "--out", filepath.Join(t.TempDir(), "o"), "--format", "jks", "--pkcs12-profile", "legacy-des"}, 2, "--pkcs12-profile legacy-des applies to PKCS#12 stores, not --format jks"},
		{"an unknown TLS protocol is a usage error", []string{"bake", "--cluster", "a", "--role", "jobmanager", "--holder", "h", "--out", filepath.Join(t.TempDir(), "o"), "--tls-protocol", "TLSv1.1"}, 2, `--tls-protocol "TLSv1.1": use TLSv1.2 or TLSv1.3`},
		{"flink config knows the TLS protocols too", []string{"flink", "config", "--cluster", "a", "--role", "jobmanager", "--key-type", "ecdsa-p256", "--tls-protocol", "1.3"}, 2, `--tls-protocol "1.3": use TLSv1.2 or TLSv1.3`},
		{"a relative --tls-dir of flink config is a usage error, found before the server is asked", []string{"flink", "config", "--cluster", "a", "--role", "taskmanager", "--tls-dir", "relative", "--server", down}, 2, "--tls-dir relative is not an absolute path"},
		{"flink config for a REST role is a usage error", []string{"flink", "config", "--cluster", "a", "--role", "rest-server", "--key-type", "ecdsa-p256"}, 2, "--role rest-server: flink config prints the internal TLS keys"},
		{"a negative holder retention is a usage error", []string{"serve", "--dev", "--data-dir", filepath.Join(t.TempDir(), "never"), "--holder-retention", "-1h"}, 2, "--holder-retention -1h0m0s is negative"},
		{"serve without a key-encryption key is a usage error", []string{"serve", "--data-dir", filepath.Join(t.TempDir(), "never"), "--listen", "127.0.0.1:0"}, 2, "no key-encryption key: pass --kek-file FILE"},
		{"a rest-server leaf without names is a usage error", []string{"bake", "--cluster", "a", "--role", "rest-server", "--holder", "h", "--out", filepath.Join(t.TempDir(), "o"), "--server", down}, 2, "--role rest-server needs the names clients reach the REST endpoint by"},
		{"a rest-client leaf with names is a usage error", []string{"init", "--cluster", "a", "--role", "rest-client", "--out", filepath.Join(t.TempDir(), "o"), "--dns", "x", "--server", down}, 2, "--role rest-client certificates carry no names"},
		{"a malformed --ip is a usage error", []string{"bake", "--cluster", "a", "--role", "rest-server", "--holder", "h", "--out", filepath.Join(t.TempDir(), "o"), "--ip", "999.1.1.1", "--server", down}, 2, `--ip "999.1.1.1" is not an IP address`},
		{"a malformed --dns is a usage error", []string{"init", "--cluster", "a", "--role", "rest-server", "--out", filepath.Join(t.TempDir(), "o"), "--dns", "bad_name!", "--server", down}, 2, `--dns: DNS name "bad_name!" is not a valid host name`},
		{"an invalid cluster name is a usage error", []string{"cluster", "create", "Orders_1", "--token-file", tok}, 2, `invalid cluster name "Orders_1"`},
		{"an unreachable server fails the operation", []string{"cluster", "list", "--token-file", tok, "--server", down}, 1, "cannot reach flinkpki at " + down + ": connection refused"},
		{"a missing token file fails the operation", []string{"cluster", "list", "--token-file", filepath.Join(t.TempDir(), "nope")}, 1, "read the token file (--token-file or FLINKPKI_TOKEN_FILE)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, nil, tt.args...)
			if r.code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stderr %q)", r.code, tt.wantCode, r.stderr)
			}
			if tt.wantErr != "" {
				if !strings.HasPrefix(r.stderr, "flinkpki: ") || !strings.Contains(r.stderr, tt.wantErr) {
					t.Errorf("stderr = %q, want a flinkpki: line containing %q", r.stderr, tt.wantErr)
				}
				if strings.Count(r.stderr, "\n") != 1 {
					t.Errorf("stderr = %q, want exactly one line", r.stderr)
				}
			}
		})
	}
}

func TestConnectionSettingsPrecedence(t *testing.T) {
	t.Parallel()
	tok := writeFile(t, "token", "fpa_x")
	flagAddr, envAddr := freeAddr(t), freeAddr(t)
	missing := filepath.Join(t.TempDir(), "missing.token")
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"the server flag wins over the environment",
			map[string]string{envServer: envAddr, envTokenFile: tok}, []string{"--server", flagAddr},
			"cannot reach flinkpki at " + flagAddr},
		{"the environment names the server when no flag does",
			map[string]string{envServer: envAddr, envTokenFile: tok}, nil,
			"cannot reach flinkpki at " + envAddr},
		{"the token file flag wins over the environment",
			map[string]string{envServer: envAddr, envTokenFile: tok}, []string{"--token-file", missing},
			"missing.token"},
		{"the CA file comes from the environment",
			map[string]string{envServer: envAddr, envTokenFile: tok, envCAFile: missing}, nil,
			"read the server CA file (--ca-file or FLINKPKI_CA_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, tt.env, append([]string{"cluster", "list"}, tt.args...)...)
			if r.code != 1 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit 1 mentioning %q", r.code, r.stderr, tt.want)
			}
		})
	}
}

func TestSettingsDefaultServer(t *testing.T) {
	t.Parallel()
	a := &app{getenv: func(string) string { return "" }}
	if got := a.settings().server; got != "127.0.0.1:7443" {
		t.Errorf("default server = %q, want 127.0.0.1:7443", got)
	}
}

func TestInitTakesItsFlagsFromTheEnvironment(t *testing.T) {
	t.Parallel()
	env := map[string]string{envCluster: "Bad_Env_Name", envRole: "taskmanager"}
	r := runCLI(t, env, "init", "--out", t.TempDir())
	if r.code != 2 || !strings.Contains(r.stderr, `"Bad_Env_Name"`) {
		t.Errorf("without --cluster: exit %d, stderr %q; want exit 2 naming the cluster from %s", r.code, r.stderr, envCluster)
	}
	r = runCLI(t, env, "init", "--cluster", "orders")
	if r.code != 2 || !strings.Contains(r.stderr, "--out is required") {
		t.Errorf("with --cluster: exit %d, stderr %q; want the flag to win and init to stop at the missing --out", r.code, r.stderr)
	}
}

func TestOutPointingAtAFileIsRefusedBeforeAnyNetworkCall(t *testing.T) {
	t.Parallel()
	tok := writeFile(t, "token", "fpe_x")
	tests := []struct {
		name string
		args []string
	}{
		{"bake", []string{"bake", "--cluster", "orders", "--role", "jobmanager", "--holder", "jm-0"}},
		{"init", []string{"init", "--cluster", "orders", "--role", "jobmanager", "--timeout", "5s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" refuses an existing file as --out", func(t *testing.T) {
			t.Parallel()
			addr, accepted := countingListener(t)
			out := writeFile(t, "not-a-dir", "keep me")
			r := runCLI(t, nil, append(tt.args, "--out", out, "--server", addr, "--token-file", tok)...)
			if r.code != 1 || !strings.Contains(r.stderr, "is an existing file, not a directory") {
				t.Errorf("exit %d, stderr %q; want exit 1 about the existing file", r.code, r.stderr)
			}
			if n := accepted.Load(); n != 0 {
				t.Errorf("the server saw %d connections, want none", n)
			}
			if data, err := os.ReadFile(out); err != nil || string(data) != "keep me" {
				t.Errorf("the file now holds %q (%v), want it untouched", data, err)
			}
			// Below a file: the message names the file, once.
			r = runCLI(t, nil, append(tt.args, "--out", filepath.Join(out, "sub", "tls"), "--server", addr, "--token-file", tok)...)
			if want := "lies below " + out + ", an existing file, not a directory"; r.code != 1 || !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, "stat ") {
				t.Errorf("--out below a file: exit %d, stderr %q; want exit 1 saying %q", r.code, r.stderr, want)
			}
			if n := accepted.Load(); n != 0 {
				t.Errorf("the server saw %d connections, want none", n)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"Go syntax is accepted", "36h30m", 36*time.Hour + 30*time.Minute, false},
		{"days are 24 hours", "90d", 90 * 24 * time.Hour, false},
		{"years are 365 days", "3y", 3 * 365 * 24 * time.Hour, false},
		{"units combine", "1y30d12h", (365+30)*24*time.Hour + 12*time.Hour, false},
		{"fractions are accepted", "1.5d", 36 * time.Hour, false},
		{"zero alone is accepted", "0", 0, false},
		{"a number without a unit is refused", "90", 0, true},
		{"an unknown unit is refused", "3w", 0, true},
		{"a negative duration is refused", "-1h", 0, true},
		{"an empty string is refused", "", 0, true},
		{"trailing garbage is refused", "90dx", 0, true},
		{"an overflowing duration is refused", "999999y", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseDuration(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseDuration(%q) = %v, %v; want %v, error %t", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{90 * day: "90d", 36 * time.Hour: "1d12h", 15 * time.Minute: "15m", 90 * time.Minute: "1h30m", 45 * time.Second: "45s", day + 90*time.Second: "1d1m30s"} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := parseDuration(formatDuration(d)); err != nil || back != d {
			t.Errorf("parseDuration(formatDuration(%v)) = %v, %v", d, back, err)
		}
	}
}

// TestAServerAddressWithoutAPortIsAUsageError: gRPC would dial port 443
// and report a refused connection; the CLI says what is wrong instead,
// from the flag or the environment, and dials nothing.
func TestAServerAddressWithoutAPortIsAUsageError(t *testing.T) {
	t.Parallel()
	tok := writeFile(t, "token", "fpe_x\n")
	oneLineError(t, runCLI(t, map[string]string{"FLINKPKI_TOKEN_FILE": tok}, "cluster", "list", "--server", "127.0.0.1"), 2, `server address "127.0.0.1" is not HOST:PORT`)
	oneLineError(t, runCLI(t, map[string]string{"FLINKPKI_TOKEN_FILE": tok, "FLINKPKI_SERVER": "flinkpki.flinkpki.svc"}, "cluster", "list"), 2, "(--server or FLINKPKI_SERVER;")
	oneLineError(t, runCLI(t, map[string]string{"FLINKPKI_TOKEN_FILE": tok}, "bench", "enroll", "--cluster", "c", "--role", "taskmanager", "--server", "localhost"), 2, "is not HOST:PORT")
	// A URL, as Vault's and step's addresses are written, and a port that
	// is none: init would otherwise retry them for its whole --timeout.
	oneLineError(t, runCLI(t, map[string]string{"FLINKPKI_TOKEN_FILE": tok}, "cluster", "list", "--server", "https://127.0.0.1:7443"), 2, `is a URL: give HOST:PORT without https:// (127.0.0.1:7443;`)
	oneLineError(t, runCLI(t, map[string]string{"FLINKPKI_TOKEN_FILE": tok}, "cluster", "list", "--server", "127.0.0.1:99999"), 2, `port "99999" is not a port number`)
	oneLineError(t, runCLI(t, map[string]string{"FLINKPKI_TOKEN_FILE": tok, "FLINKPKI_SERVER": "http://flinkpki.flinkpki.svc:7443/"}, "init", "--cluster", "c", "--role", "taskmanager", "--out", filepath.Join(t.TempDir(), "tls"), "--timeout", "1m"), 2, "without http:// (flinkpki.flinkpki.svc:7443;")
	if err := checkServer("[::1]:7443"); err != nil {
		t.Errorf("an IPv6 HOST:PORT: %v", err)
	}
	if err := checkServer("dns:///flinkpki.flinkpki.svc:7443"); err != nil {
		t.Errorf("a gRPC target with a scheme: %v", err)
	}
}

// TestVersionSaysWhatWasBuilt: flinkpki version (and --version) names the
// binary's build, for bug reports and for matching clients to servers.
func TestVersionSaysWhatWasBuilt(t *testing.T) {
	t.Parallel()
	r := runCLI(t, nil, "version", "-o", "json")
	var b buildInfo
	if err := json.Unmarshal([]byte(r.stdout), &b); r.code != 0 || err != nil {
		t.Fatalf("version -o json: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	if b.GoVersion != runtime.Version() || b.Platform != runtime.GOOS+"/"+runtime.GOARCH || b.Version == "" {
		t.Fatalf("version -o json = %+v; want this binary's Go version and platform", b)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := runCLI(t, nil, args...)
		if want := "flinkpki " + b.Version; r.code != 0 || !strings.HasPrefix(r.stdout, want) || !strings.Contains(r.stdout, runtime.Version()) {
			t.Errorf("%v: exit %d, %q; want a line starting %q", args, r.code, r.stdout, want)
		}
	}
}
