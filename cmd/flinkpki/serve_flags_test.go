package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// busyAddr returns a loopback address the test keeps bound.
func busyAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

func TestServeRefusesNonsenseFlagValuesAsUsageErrorsAndWritesNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"a key pool of a billion keys is refused", []string{"--bake-key-pool", "1000000000"}, "--bake-key-pool 1000000000 is out of range: give 0 (no pool) to 10000"},
		{"a key pool one above the cap is refused", []string{"--bake-key-pool", "10001"}, "--bake-key-pool 10001 is out of range"},
		{"a negative key pool is refused", []string{"--bake-key-pool", "-1"}, "--bake-key-pool -1 is out of range"},
		{"a negative request deadline is refused", []string{"--rpc-timeout", "-1s"}, "--rpc-timeout -1s is not above 0"},
		{"a zero request deadline is refused", []string{"--rpc-timeout", "0"}, "--rpc-timeout 0s is not above 0"},
		{"a negative enrollment rate is refused", []string{"--enroll-rate", "-5"}, "--enroll-rate -5: give enrollment requests per second per identity, a number of 0 or more (0 turns the limit off)"},
		{"a NaN enrollment rate is refused", []string{"--enroll-rate", "NaN"}, "--enroll-rate NaN: give enrollment requests per second"},
		{"an infinite enrollment rate is refused", []string{"--enroll-rate", "Inf"}, "--enroll-rate +Inf: give enrollment requests per second"},
		{"a negative enrollment burst is refused", []string{"--enroll-burst", "-1"}, "--enroll-burst -1 is negative"},
		{"a rate below one with no burst is refused, as it admits nothing", []string{"--enroll-rate", "0.5", "--enroll-burst", "0"}, "--enroll-burst 0 with --enroll-rate 0.5 allows no enrollment at all"},
		{"a negative key generation limit is refused", []string{"--max-keygen", "-1"}, "--max-keygen -1 is negative"},
		{"a negative rotation interval is refused", []string{"--rotation-interval", "-1m"}, "--rotation-interval -1m0s is negative"},
		{"a negative shutdown timeout is refused", []string{"--shutdown-timeout", "-1s"}, "--shutdown-timeout -1s is negative"},
		{"an etcd batch of zero is refused", []string{"--etcd-batch", "0"}, "--etcd-batch 0 is out of range: give 1 or more"},
		{"a SAN with a space and a bang is refused", []string{"--san", "bad name!"}, `--san "bad name!" is neither an IP address nor a DNS host name`},
		{"a wildcard SAN is refused", []string{"--san", "*.evil"}, `--san "*.evil" is neither an IP address nor a DNS host name`},
		{"a SAN label ending in a hyphen is refused", []string{"--san", "svc-.example"}, `--san "svc-.example"`},
		{"a SAN with an empty label is refused", []string{"--san", "a..b"}, `--san "a..b"`},
		{"a SAN label of 64 characters is refused", []string{"--san", strings.Repeat("a", 64) + ".svc"}, "is neither an IP address nor a DNS host name"},
		{"a negative retention in days is refused by the same check", []string{"--holder-retention", "-2d"}, "--holder-retention -48h0m0s is negative"},
		{"a negative retention from --config is refused too", []string{"--config", writeFile(t, "serve.yaml", "holder-retention: -2d\n")}, "--holder-retention -48h0m0s is negative"},
		{"a duration in an unknown unit is refused, naming the units", []string{"--holder-retention", "30x"}, `invalid argument "30x" for "--holder-retention" flag: invalid duration "30x": use a number and a unit (ms, s, m, h, d, y)`},
		{"a malformed negative duration is quoted as given", []string{"--rotation-interval", "-soon"}, `invalid duration "-soon"`},
		{"a duration in an unknown unit from --config is refused", []string{"--config", writeFile(t, "serve.yaml", "rotation-interval: 1w\n")}, `rotation-interval: invalid duration "1w"`},
		{"a bad value from --config is refused too", []string{"--config", writeFile(t, "serve.yaml", "rpc-timeout: 0s\n")}, "--rpc-timeout 0s is not above 0"},
		{"a setting with no value in --config is refused, not read as the text <nil>", []string{"--config", writeFile(t, "serve.yaml", "k8s-audience:\n")}, "k8s-audience has no value (nothing after the colon, ~ or null): give one, or delete the line for the default"},
		{"a list for a one-value flag in --config is refused", []string{"--config", writeFile(t, "serve.yaml", "metrics-listen: [127.0.0.1:1, 127.0.0.1:2]\n")}, "metrics-listen is a list, but --metrics-listen takes one value"},
		{"a mapping in --config is refused", []string{"--config", writeFile(t, "serve.yaml", "etcd-prefix: {a: b}\n")}, "etcd-prefix is a mapping or a nested list, but --etcd-prefix takes a plain value"},
		{"an unknown store is refused", []string{"--store", "mysql"}, `--store "mysql": use bolt or etcd`},
		{"etcd without endpoints is refused", []string{"--store", "etcd"}, "--store etcd needs --etcd-endpoints"},
		{"a metrics address without a port is refused", []string{"--metrics-listen", "garbage"}, `--metrics-listen "garbage": want HOST:PORT`},
		{"a pprof address without a port is refused", []string{"--pprof-listen", "garbage"}, `--pprof-listen "garbage": want HOST:PORT`},
		{"a health address without a port is refused", []string{"--health-listen", "garbage"}, `--health-listen "garbage": want HOST:PORT`},
		{"a negative bound per address is refused", []string{"--max-requests-per-address", "-1"}, "--max-requests-per-address -1 is negative"},
		{"a negative connection bound per address is refused", []string{"--max-connections-per-address", "-1"}, "--max-connections-per-address -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			parent := t.TempDir()
			dir := filepath.Join(parent, "data")
			r := runCLI(t, nil, append([]string{"serve", "--dev", "--data-dir", dir, "--listen", freeAddr(t)}, tt.args...)...)
			oneLineError(t, r, 2, tt.want)
			if names := entries(t, parent); len(names) != 0 {
				t.Errorf("a refused start left %v behind", names)
			}
		})
	}
}

// TestServeRefusesBeforeWritingAnything covers refusals found only by
// trying: a port in use, a file a flag names that cannot be read. Each must
// come before the data directory is created, and no port may stay bound.
func TestServeRefusesBeforeWritingAnything(t *testing.T) {
	t.Parallel()
	busy := busyAddr(t)
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name string
		// port is which of --listen, --metrics-listen, --pprof-listen and
		// --health-listen gets the busy address ("" none).
		port string
		args []string
		want string
	}{
		{"a gRPC port in use is refused", "--listen", nil, "--listen " + busy + ": listen tcp " + busy + ": bind: address already in use"},
		{"a metrics port in use is refused", "--metrics-listen", nil, "--metrics-listen " + busy + ": listen tcp"},
		{"a pprof port in use is refused", "--pprof-listen", nil, "--pprof-listen " + busy + ": listen tcp"},
		{"a health port in use is refused", "--health-listen", nil, "--health-listen " + busy + ": listen tcp"},
		{"a missing --kek-file is refused", "", []string{"--kek-file", missing}, "read key-encryption key: open " + missing},
		{"a short --kek-file is refused", "", []string{"--kek-file", writeFile(t, "kek", "short")}, "key-encryption key"},
		{"a missing --k8s-jwks-file is refused", "", []string{"--k8s-issuer", "https://kubernetes.default.svc", "--k8s-jwks-file", missing}, "read --k8s-jwks-file"},
		{"a missing --etcd-ca-file is refused", "", []string{"--store", "etcd", "--etcd-endpoints", "http://" + freeAddr(t), "--etcd-ca-file", missing}, missing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			parent := t.TempDir()
			dir := filepath.Join(parent, "data")
			ports := map[string]string{}
			for _, flag := range []string{"--listen", "--metrics-listen", "--pprof-listen", "--health-listen"} {
				ports[flag] = freeAddr(t)
				if flag == tt.port {
					ports[flag] = busy
				}
			}
			args := []string{"serve", "--dev", "--data-dir", dir}
			for flag, addr := range ports {
				args = append(args, flag, addr)
			}
			r := runCLI(t, nil, append(args, tt.args...)...)
			oneLineError(t, r, 1, tt.want)
			if names := entries(t, parent); len(names) != 0 {
				t.Errorf("a refused start left %v behind", names)
			}
			for flag, addr := range ports {
				if addr == busy {
					continue
				}
				l, err := net.Listen("tcp", addr)
				if err != nil {
					t.Errorf("%s %s is still bound after the refused start: %v", flag, addr, err)
					continue
				}
				l.Close()
			}
		})
	}
}

// TestADevStartWithoutTheKEKOfAnExistingDatabaseIsRefusedAndChangesNothing
// loses DIR/kek of a dev installation. --dev must not make a new key for the
// old database: that start fails, and leaves a wrong key that makes every
// later start fail too. It refuses, changing nothing, until the key is back.
func TestADevStartWithoutTheKEKOfAnExistingDatabaseIsRefusedAndChangesNothing(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	s.stop(t)
	kekPath := filepath.Join(dir, "kek")
	kek, err := os.ReadFile(kekPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(kekPath); err != nil {
		t.Fatal(err)
	}
	before := treeOf(t, dir)
	addr := freeAddr(t)
	for range 2 {
		r := runCLI(t, nil, "serve", "--dev", "--data-dir", dir, "--listen", addr)
		oneLineError(t, r, 1, "the database "+filepath.Join(dir, "flinkpki.db")+" exists but "+kekPath+" does not: restore the key-encryption key to "+kekPath+", or pass --kek-file FILE; nothing was changed")
		assertUnchanged(t, dir, before)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("the refused start left %s bound: %v", addr, err)
		}
		l.Close()
	}
	if err := os.WriteFile(kekPath, kek, 0o600); err != nil {
		t.Fatal(err)
	}
	s = startServerAt(t, dir, addr)
	s.cli(t, s.admin, "cluster", "get", "orders").ok(t)
}

// TestADevEtcdStartWhoseNewKEKTheStoreRefusesLeavesNoDataDirBehind starts
// --dev on an etcd prefix another installation owns: --dev makes a key for
// the fresh data directory, the store refuses it, and the directory (with
// the key and the parents made for it) must be gone again.
func TestADevEtcdStartWhoseNewKEKTheStoreRefusesLeavesNoDataDirBehind(t *testing.T) {
	h := newHAStore(t)
	h.replica(t).stop(t)
	parent := t.TempDir()
	dir := filepath.Join(parent, "deep", "data")
	r := runCLI(t, nil, "serve", "--dev", "--data-dir", dir, "--listen", freeAddr(t), "--store", "etcd",
		"--etcd-endpoints", strings.Join(h.etcd.Endpoints(), ","), "--etcd-prefix", h.prefix)
	oneLineError(t, r, 1, "does not open etcd")
	if names := entries(t, parent); len(names) != 0 {
		t.Errorf("a refused start left %v behind", names)
	}
}

// TestServeTakesZeroWhereZeroMeansOffAndNamesEverySANItWasGiven starts a
// server with every value at the edge of what is allowed, and checks that
// the serving certificate verifies for each --san.
func TestServeTakesZeroWhereZeroMeansOffAndNamesEverySANItWasGiven(t *testing.T) {
	t.Parallel()
	sans := []string{"flinkpki.flinkpki.svc", "Flinkpki-0.flinkpki", "10.1.2.3", "fd00::7"}
	args := []string{"--enroll-rate", "0", "--enroll-burst", "0", "--rotation-interval", "0", "--holder-retention", "0",
		"--shutdown-timeout", "0s", "--max-keygen", "0", "--bake-key-pool", "10000", "--etcd-batch", "1"}
	for _, s := range sans {
		args = append(args, "--san", s)
	}
	s := startServer(t, "", args...)
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	pem, err := os.ReadFile(s.caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	for _, name := range append(sans, "localhost", "127.0.0.1") {
		c, err := tls.Dial("tcp", s.addr, &tls.Config{RootCAs: roots, ServerName: name, NextProtos: []string{"h2"}})
		if err != nil {
			t.Errorf("the serving certificate does not verify for %s: %v", name, err)
			continue
		}
		c.Close()
	}
}

// TestServeDurationsTakeDaysAsTheClientFlagsDo: serve's duration flags and
// the same keys in --config read "30d" as the client flags and the help
// texts write it, and Go durations as before; the server says what it runs
// with when it starts.
func TestServeDurationsTakeDaysAsTheClientFlagsDo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"days on the command line", []string{"--holder-retention", "45d", "--rotation-interval", "1d", "--shutdown-timeout", "1d", "--rpc-timeout", "1d"},
			"rotation_interval=1d holder_retention=45d"},
		{"days in --config", []string{"--config", writeFile(t, "serve.yaml", "holder-retention: 45d\nrotation-interval: 2d\nshutdown-timeout: 1d\nrpc-timeout: 1d\n")},
			"rotation_interval=2d holder_retention=45d"},
		{"Go durations in --config", []string{"--config", writeFile(t, "serve.yaml", "holder-retention: 1080h\nrotation-interval: 90s\n")},
			"rotation_interval=1m30s holder_retention=45d"},
		{"the command line over --config", []string{"--holder-retention", "3d", "--config", writeFile(t, "serve.yaml", "holder-retention: 45d\n")},
			"rotation_interval=1m holder_retention=3d"},
		{"the defaults", nil, "rotation_interval=1m holder_retention=30d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, "", tt.args...)
			if logs := s.stderr.String(); !strings.Contains(logs, tt.want) {
				t.Errorf("serve %v: the start line does not say %q:\n%s", tt.args, tt.want, logs)
			}
		})
	}
}

// TestAKEKFileOthersCanReadIsWarnedAbout: the key that opens every CA key
// in a file every user can read is accepted (a running installation must
// not stop on an upgrade) but warned about at start, with the fix. A file
// only its group can read is not: a Kubernetes Secret volume under an
// fsGroup is 0440 whatever its defaultMode.
func TestAKEKFileOthersCanReadIsWarnedAbout(t *testing.T) {
	for mode, warned := range map[os.FileMode]bool{0o644: true, 0o604: true, 0o640: false, 0o440: false, 0o600: false, 0o400: false} {
		kek := filepath.Join(t.TempDir(), "kek")
		if err := os.WriteFile(kek, bytes.Repeat([]byte{7}, 32), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(kek, mode); err != nil {
			t.Fatal(err)
		}
		s := startServer(t, "", "--kek-file", kek)
		log := s.stderr.String()
		s.stop(t)
		if got := strings.Contains(log, fmt.Sprintf("has mode %04o", mode)) && strings.Contains(log, "make it 0400 or 0600"); got != warned {
			t.Errorf("a KEK file of mode %04o: warned %v, want %v\n%s", mode, got, warned, log)
		}
	}
}
