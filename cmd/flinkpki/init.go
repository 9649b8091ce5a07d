package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/credentials"
	"github.com/flinkpki/flinkpki/enroll"
	"github.com/flinkpki/flinkpki/issuer"
	"github.com/flinkpki/flinkpki/token"
)

// Environment fallbacks of init's flags, for pod templates.
const (
	envCluster = "FLINKPKI_CLUSTER"
	envRole    = "FLINKPKI_ROLE"
	envHolder  = "FLINKPKI_HOLDER"
)

// initFlags are init's own flags on top of issueFlags.
type initFlags struct {
	issueFlags
	conf       confFlags
	keyType    string
	timeout    durationFlag
	noAutoSANs bool
}

func (a *app) newInitCmd() *cobra.Command {
	f := initFlags{timeout: durationFlag{d: 2 * time.Minute}}
	cmd := &cobra.Command{
		Use:   "init --cluster NAME --role ROLE --out DIR",
		Short: "Enroll as an init container: local key, CSR, file set",
		Long: `Enroll the way an init container does: generate the private key locally (of
the cluster's key type), send only a CSR, and write the credential file set
into --out atomically. The key never leaves the pod. A run into a directory
that holds an earlier set (an emptyDir that outlived its container) keeps that
set's store passwords, so the configuration copy Flink reads always opens the
stores, while they are replaced too.

--token-file holds an enrollment token or a Kubernetes projected
service-account token. With a Kubernetes token the holder is always the pod
the token names (a pod speaks for itself only; a different --holder is noted
and overridden). With an enrollment token it is --holder, by default the host
name: give each process on a host its own. An enrollment that replaces live
credentials under the same name (this process again, or another one; never
said of a pod's own) says so on stderr, and in "superseded" with -o json:
CA rotation no longer waits for whatever held them. While the server is not
reachable yet (normal at pod start) init retries with backoff until --timeout
passes; refusals (bad token, wrong cluster) fail at once.

With --flink-conf-src and --flink-conf-out it copies the Flink configuration
directory (the operator's read-only ConfigMap) and merges the security.ssl.*
keys, with this pod's own passwords, into its config.yaml (or legacy
flink-conf.yaml), so the Flink container can set FLINK_CONF_DIR to the copy.
--flink-conf-set KEY=VALUE merges further keys into the copy. A configuration
it cannot copy faithfully, or one Flink would refuse to load (a null value in
config.yaml), or an output where a directory takes a file's place, or where
a file no copy wrote (and that differs from the source's) would be replaced,
is refused before enrolling, as is an --out inside --flink-conf-src (the next
copy would carry the private key) or the source inside --out. The copy is written beside its place first and put in place
with the credentials; it lists its files in .flinkpki-conf-files, and a later
run into the same directory (an emptyDir that outlived its init container) removes the
files the earlier copy wrote and its source no longer has. The Kubernetes
operator removes rest.bind-address from the ConfigMap it writes, so a
JobManager whose plain-HTTP REST endpoint must stay on loopback (behind a
mutual-TLS sidecar) needs --flink-conf-set rest.bind-address=127.0.0.1.

Flags may come from the environment: FLINKPKI_CLUSTER, FLINKPKI_ROLE,
FLINKPKI_HOLDER, FLINKPKI_SERVER, FLINKPKI_CA_FILE, FLINKPKI_TOKEN_FILE.`,
		Example: `  flinkpki init --cluster orders --role taskmanager --out /flink-tls \
      --server flinkpki.flinkpki.svc:7443 --ca-file /etc/flinkpki/server-ca.crt \
      --token-file /var/run/secrets/flinkpki/token \
      --flink-conf-src /opt/flink/conf --flink-conf-out /flink-conf`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runInit(cmd, &f) },
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.keyType, "key-type", "", "the cluster's key type (ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072 or rsa-4096), to skip asking the server (normally left out)")
	f.conf.register(cmd, "for keys the operator leaves out of the ConfigMap it writes, above all rest.bind-address=127.0.0.1")
	fl.Var(&f.timeout, "timeout", "give up when the server has not answered within this time")
	fl.BoolVar(&f.noAutoSANs, "no-auto-sans", false, "for jobmanager/taskmanager, do not add this pod's host name, IP addresses and the names its resolver gives them as SANs (Flink 2.3+ checks them on the TaskManager data plane)")
	a.addConnFlags(cmd)
	return cmd
}

// resolve fills flags from the environment and checks them.
func (a *app) resolveInit(f *initFlags) (ca.KeyType, error) {
	fallback := func(v *string, env string) {
		if *v == "" {
			*v = a.getenv(env)
		}
	}
	fallback(&f.cluster, envCluster)
	fallback(&f.role, envRole)
	fallback(&f.holder, envHolder)
	if err := clusterFlag(f.cluster); err != nil {
		return "", err
	}
	if _, err := roleFlag(f.role); err != nil {
		return "", err
	}
	if err := f.conf.resolve(f.out); err != nil {
		return "", err
	}
	if f.timeout.d <= 0 {
		return "", usagef("--timeout must be positive")
	}
	if f.keyType == "" {
		return "", nil
	}
	return keyTypeFlag(f.keyType)
}

func (a *app) runInit(cmd *cobra.Command, f *initFlags) error {
	keyType, err := a.resolveInit(f)
	if err != nil {
		return err
	}
	start := a.now()
	opts, err := f.buildOptions(start)
	if err != nil {
		return err
	}
	tok, err := a.token()
	if err != nil {
		return err
	}
	if err := f.resolveHolder(tok); err != nil {
		return err
	}
	if !f.noAutoSANs && (f.role == "jobmanager" || f.role == "taskmanager") {
		var dropped []string
		f.dns, f.ips, dropped = withLocalNames(cmd.Context(), f.dns, f.ips)
		if len(dropped) > 0 {
			fmt.Fprintf(a.stderr, "note: left out of the leaf's names, past the limit of %d SANs with --dns and --ip: %s\n", issuer.MaxSANs, strings.Join(dropped, ", "))
		}
	}
	// A run into a directory that holds an earlier set (an emptyDir that
	// outlived its container) keeps that set's passwords: the configuration
	// copy of the earlier run, which Flink may read at any moment, then
	// opens the new stores too, while they replace the old ones and if
	// this run dies between the stores and its own copy.
	lock, err := credentials.LockDir(opts.Dir) // one run per --out, from here to its write
	if err != nil {
		return err
	}
	defer lock.Release()
	opts.Passwords = credentials.ReadPasswords(opts.Dir)
	// The Flink configuration is read and trial-merged before enrolling, so
	// a wrong --flink-conf-src spends no token use and leaves no file set.
	if err := f.conf.read(opts); err != nil {
		return err
	}
	conn, err := a.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	client := enroll.NewClient(conn, a.target)
	client.Timeout = f.timeout.d
	client.Logf = func(format string, args ...any) { fmt.Fprintf(a.stderr, format+"\n", args...) }
	res, err := client.Enroll(cmd.Context(), enroll.Request{
		Cluster: f.cluster, Role: f.role, Holder: f.holder, KeyType: keyType, DNS: f.dns, IPs: f.ips,
	})
	if err != nil {
		return err
	}
	set, err := credentials.Build(credentials.Material{Key: res.Key, Chain: res.Chain, Trusted: res.Trusted}, opts)
	if err != nil {
		return notWritten(&f.issueFlags, res, err)
	}
	if err := a.writeWithConf(&f.conf, set, opts.Dir); err != nil {
		return notWritten(&f.issueFlags, res, err)
	}
	lock.Keep()
	return a.report(&f.issueFlags, opts, res, set, f.conf.out, a.now().Sub(start))
}

// resolveHolder checks --holder, or names the holder after the host when
// none is given. With a Kubernetes token it does neither: the token names
// the pod, and the server records that name whatever --holder says (report
// notes the difference).
func (f *initFlags) resolveHolder(tok string) error {
	switch {
	case token.LooksLikeJWT(tok):
		return nil
	case f.holder != "":
		return holderFlag("--holder", f.holder)
	}
	// The host name is the pod name in Kubernetes and a fair name
	// elsewhere.
	h, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("no --holder given and the host name is unknown: %w", err)
	}
	f.holder = h
	return hostHolder(f.holder)
}

// withLocalNames adds the names peers reach this pod by: its host name,
// the names the resolver gives its non-loopback unicast addresses (in
// Kubernetes the pod's /etc/hosts, which names a pod with a hostname and a
// subdomain by its fully qualified name under its headless Service), those
// addresses, and localhost. Flink up to 2.2 never checks host names on
// internal links, but Flink 2.3's Netty 4.2 does on the TaskManager data
// plane, naming the peer by a reverse lookup of its address, so an internal
// leaf must name its pod. The names grant nothing beyond the cluster: only
// this cluster's CA signs them. They stop at issuer.MaxSANs in all,
// counting the ones given with --dns and --ip, in that order of use; the
// ones left out for that are returned as dropped.
func withLocalNames(ctx context.Context, dns, ips []string) (_, _, dropped []string) {
	room := issuer.MaxSANs - len(dns) - len(ips)
	add := func(list []string, v string) []string {
		if v == "" || slices.Contains(list, v) {
			return list
		}
		if room <= 0 {
			if !slices.Contains(dropped, v) {
				dropped = append(dropped, v)
			}
			return list
		}
		room--
		return append(list, v)
	}
	var own []string
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() || ipn.IP.IsMulticast() {
				continue
			}
			if len(own) >= 8 {
				break
			}
			own = append(own, ipn.IP.String())
		}
	}
	if h, err := os.Hostname(); err == nil && issuer.ValidateDNSName(h) == nil {
		dns = add(dns, h)
	}
	for _, n := range reverseNames(ctx, net.DefaultResolver, own) {
		dns = add(dns, n)
	}
	for _, ip := range own {
		ips = add(ips, ip)
	}
	dns = add(dns, "localhost")
	ips = add(ips, "127.0.0.1")
	return dns, ips, dropped
}

// reverseLookupTimeout bounds reverseNames: /etc/hosts answers at once, and
// a pod start must not wait on a slow DNS server for names it rarely needs.
const reverseLookupTimeout = time.Second

// reverseNames is what r answers for each of addrs, in their order, without
// the trailing dot and without names a certificate cannot carry. Lookups
// that fail or outlast reverseLookupTimeout add nothing.
func reverseNames(ctx context.Context, r *net.Resolver, addrs []string) []string {
	ctx, cancel := context.WithTimeout(ctx, reverseLookupTimeout)
	defer cancel()
	found := make([][]string, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Go(func() { found[i], _ = r.LookupAddr(ctx, a) })
	}
	wg.Wait()
	var out []string
	for _, names := range found {
		for _, n := range names {
			n = strings.TrimSuffix(n, ".")
			if issuer.ValidateDNSName(n) == nil && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}
