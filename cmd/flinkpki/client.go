package main

import (
	"net"
	"slices"
	"strings"

	"google.golang.org/grpc"

	"github.com/spf13/cobra"

	"github.com/flinkpki/flinkpki/enroll"
)

// Environment variables read when the matching flag is not given.
const (
	envServer    = "FLINKPKI_SERVER"
	envCAFile    = "FLINKPKI_CA_FILE"
	envTokenFile = "FLINKPKI_TOKEN_FILE"
)

// connFlags are the connection flags every client command takes.
type connFlags struct {
	server, caFile, tokenFile string
}

// addConnFlags registers --server, --ca-file and --token-file on cmd and
// its subcommands.
func (a *app) addConnFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&a.conn.server, "server", "", "flinkpki server HOST:PORT (env "+envServer+", default "+enroll.DefaultServer+")")
	f.StringVar(&a.conn.caFile, "ca-file", "", "PEM trust anchor of the server, its server-ca.crt (env "+envCAFile+"; default: system roots)")
	f.StringVar(&a.conn.tokenFile, "token-file", "", "file holding the bearer token (env "+envTokenFile+")")
}

// settings resolves the connection settings: flags win over the
// environment, which wins over the defaults.
func (a *app) settings() connFlags {
	c := a.conn
	if c.server == "" {
		c.server = a.getenv(envServer)
	}
	if c.server == "" {
		c.server = enroll.DefaultServer
	}
	if c.caFile == "" {
		c.caFile = a.getenv(envCAFile)
	}
	if c.tokenFile == "" {
		c.tokenFile = a.getenv(envTokenFile)
	}
	return c
}

// token reads the token named by the settings; no token file at all is a
// usage error.
func (a *app) token() (string, error) {
	file, err := a.tokenFile()
	if err != nil {
		return "", err
	}
	return enroll.ReadToken(file)
}

// tokenFile is the token file named by the settings; none is a usage
// error.
func (a *app) tokenFile() (string, error) {
	if f := a.settings().tokenFile; f != "" {
		return f, nil
	}
	return "", usagef("no token: pass --token-file FILE or set %s", envTokenFile)
}

// commandLine is a flinkpki command line with args and the connection
// this run used (--server, --ca-file, --token-file, however they were
// given), quoted for a shell: for a message that says what to run next.
func (a *app) commandLine(args ...string) string {
	c := a.settings()
	all := append([]string{"flinkpki"}, args...)
	all = append(all, "--server", c.server)
	if c.caFile != "" {
		all = append(all, "--ca-file", c.caFile)
	}
	if c.tokenFile != "" {
		all = append(all, "--token-file", c.tokenFile)
	}
	return shellLine(all)
}

// shellLine is args as a line a POSIX shell splits back into them.
func shellLine(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(a)
	}
	return strings.Join(quoted, " ")
}

// shellQuote quotes s for a POSIX shell when it holds anything but
// characters that need no quoting.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:,=@%+", r))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// dial connects to the server named by the settings. Each call reads the
// token file again (enroll.DialFile): a projected token renewed while
// init waits for its server is the one sent.
func (a *app) dial(opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	tokenFile, err := a.tokenFile()
	if err != nil {
		return nil, err
	}
	c := a.settings()
	if err := checkServer(c.server); err != nil {
		return nil, err
	}
	a.target = c.server
	return enroll.DialFile(c.server, c.caFile, tokenFile, opts...)
}

// checkServer refuses a server address without a port, which gRPC would
// otherwise dial on 443 and report as a refused connection, a port that is
// none, and a URL (https://host:port, as Vault's and step's addresses are
// written), which gRPC reports as "too many colons" and init would retry
// for its whole --timeout. Targets with a gRPC scheme (dns:///, unix:) are
// passed on as they are.
func checkServer(addr string) error {
	if scheme, rest, ok := strings.Cut(addr, "://"); ok && slices.Contains([]string{"http", "https", "grpc", "grpcs", "tcp"}, strings.ToLower(scheme)) {
		return usagef("server address %q is a URL: give HOST:PORT without %s:// (%s; --server or %s)", addr, scheme, strings.TrimSuffix(rest, "/"), envServer)
	}
	if strings.Contains(addr, ":/") || strings.HasPrefix(addr, "unix:") {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return usagef("server address %q is not HOST:PORT (--server or %s; flinkpki serves on port 7443 unless told otherwise)", addr, envServer)
	}
	if n, err := net.LookupPort("tcp", port); err != nil || n == 0 {
		return usagef("server address %q: port %q is not a port number from 1 to 65535 (--server or %s)", addr, port, envServer)
	}
	return nil
}

// allPages calls fetch from the first page on, passing each answer's next
// page token, until a page has none, and returns every item in order.
func allPages[T any](fetch func(page string) (items []T, next string, err error)) ([]T, error) {
	var all []T
	for page := ""; ; {
		items, next, err := fetch(page)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		page = next
	}
}
