package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestBadNumbersAndDurationsAreOneLineNamingTheFlagAndTheRange: a value
// that does not parse, or parses out of range, is a usage error (exit 2)
// that names the flag and what it takes, never strconv's or time's words,
// and nothing is sent or opened.
func TestBadNumbersAndDurationsAreOneLineNamingTheFlagAndTheRange(t *testing.T) {
	env := map[string]string{"FLINKPKI_TOKEN_FILE": writeFile(t, "token", "fpe_x\n"), "FLINKPKI_SERVER": "127.0.0.1:1"}
	data := filepath.Join(t.TempDir(), "none")
	populate := func(extra ...string) []string {
		return append([]string{"bench", "populate", "--data-dir", data, "--kek-file", filepath.Join(data, "kek")}, extra...)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"--uses that is not a number", []string{"token", "create", "--cluster", "o", "--role", "taskmanager", "--uses", "abc"}, `"--uses" flag: use a whole number from 1 to 100000`},
		{"--uses past int32", []string{"token", "create", "--cluster", "o", "--role", "taskmanager", "--uses", "99999999999"}, `"--uses" flag: use a whole number from 1 to 100000`},
		{"--uses past the server's maximum", []string{"token", "create", "--cluster", "o", "--role", "taskmanager", "--uses", "100001"}, `"--uses" flag: use a whole number from 1 to 100000`},
		{"--uses of zero", []string{"token", "create", "--cluster", "o", "--role", "taskmanager", "--uses", "0"}, `"--uses" flag: use a whole number from 1 to 100000`},
		{"a --ttl of a nanosecond", []string{"token", "create", "--cluster", "o", "--role", "taskmanager", "--ttl", "1ns"}, `"--ttl" flag: use a duration from 1s to 30d`},
		{"a --ttl past 30 days", []string{"token", "create", "--cluster", "o", "--role", "taskmanager", "--ttl", "31d"}, `"--ttl" flag: use a duration from 1s to 30d`},
		{"a --ttl in hours past a Duration", []string{"token", "create", "--cluster", "o", "--role", "taskmanager", "--ttl", "99999999999h"}, `"--ttl" flag: duration "99999999999h" is too long: the longest is 106751d`},
		{"a --ttl in nanoseconds past a Duration", []string{"token", "create", "--cluster", "o", "--role", "taskmanager", "--ttl", "9999999999999999999ns"}, `is too long: the longest is 106751d`},
		{"a --leaf-validity past a Duration", []string{"cluster", "create", "o", "--leaf-validity", "9999999999999m"}, `"--leaf-validity" flag: duration "9999999999999m" is too long`},
		{"--page-size past the server's maximum", []string{"cluster", "list", "--page-size", "100000"}, `"--page-size" flag: use a whole number from 0 to 1000`},
		{"--page-size that is not a number", []string{"cluster", "list", "--page-size", "x"}, `"--page-size" flag: use a whole number from 0 to 1000`},
		{"a negative cluster --limit", []string{"cluster", "list", "--limit", "-1"}, `"--limit" flag: use a whole number from 0 to 2147483647`},
		{"--after that wraps around", []string{"audit", "list", "--after", "18446744073709551615"}, `"--after" flag: use a whole number from 0 to 9223372036854775807`},
		{"--after just past the maximum", []string{"audit", "list", "--after", "9223372036854775808"}, `"--after" flag: use a whole number from 0 to 9223372036854775807`},
		{"a negative --after", []string{"audit", "list", "--after", "-1"}, `"--after" flag: use a whole number from 0 to 9223372036854775807`},
		{"a negative audit --limit", []string{"audit", "list", "--limit", "-1"}, `"--limit" flag: use a whole number from 0 to 2147483647`},
		{"a negative --clusters", populate("--clusters", "-1", "--holders", "-5"), `"--clusters" flag: use a whole number from 0 to 2147483647`},
		{"a negative --holders", populate("--holders", "-5"), `"--holders" flag: use a whole number from 0 to 2147483647`},
		{"a negative --big-cluster", populate("--big-cluster", "-1"), `"--big-cluster" flag: use a whole number from 0 to 2147483647`},
		{"holders without clusters", populate("--clusters", "0", "--holders", "5"), "--holders 5 needs at least one cluster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, env, tt.args...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			msg := strings.TrimRight(r.stderr, "\n")
			if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "flinkpki: ") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q is not one line saying %q", r.stderr, tt.want)
			}
			if strings.Contains(msg, "strconv") || strings.Contains(msg, "time:") {
				t.Errorf("error %q passes on a parser's own words", msg)
			}
			if r.stdout != "" {
				t.Errorf("a refused command printed %q", r.stdout)
			}
		})
	}
}

// TestHelpShowsDefaultsAndWhichTokensWork checks --help says what the
// commands do when a flag is left out, and who may run bench bake.
func TestHelpShowsDefaultsAndWhichTokensWork(t *testing.T) {
	flagLine := func(help, flag string) string {
		for _, l := range strings.Split(help, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "--"+flag+" ") {
				return l
			}
		}
		t.Fatalf("--help does not list --%s:\n%s", flag, help)
		return ""
	}
	token := runCLI(t, nil, "token", "create", "--help").ok(t).stdout
	if l := flagLine(token, "ttl"); !strings.Contains(l, "(default 15m)") || !strings.Contains(l, "1s to 30d") {
		t.Errorf("token create --help: %q does not give the default TTL and the range", l)
	}
	if l := flagLine(token, "uses"); !strings.Contains(l, "(default 1)") {
		t.Errorf("token create --help: %q does not give the default use count", l)
	}
	cluster := runCLI(t, nil, "cluster", "create", "--help").ok(t).stdout
	if l := flagLine(cluster, "ca-validity"); !strings.Contains(l, "default 3y") {
		t.Errorf("cluster create --help: %q does not give the default CA validity", l)
	}
	if l := flagLine(cluster, "leaf-validity"); !strings.Contains(l, "default 90d") || !strings.Contains(l, "at least 1s") {
		t.Errorf("cluster create --help: %q does not give the default and the minimum leaf validity", l)
	}
	bake := strings.Join(strings.Fields(runCLI(t, nil, "bench", "bake", "--help").ok(t).stdout), " ")
	if strings.Contains(bake, "Needs an administrator token") || !strings.Contains(bake, "or an enrollment token for the cluster and role") {
		t.Errorf("bench bake --help does not say an enrollment token for the cluster and role works:\n%s", bake)
	}
}
