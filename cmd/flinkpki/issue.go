package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/flinkpki/flinkpki/credentials"
	"github.com/flinkpki/flinkpki/enroll"
	"github.com/flinkpki/flinkpki/flinkconf"
	"github.com/flinkpki/flinkpki/internal/atomicfile"
	"github.com/flinkpki/flinkpki/issuer"
	"github.com/flinkpki/flinkpki/keystore"
)

// issueFlags are the flags bake and init share.
type issueFlags struct {
	cluster, role, holder, out string
	format, profile            string
	dns, ips                   []string
	legacyStoreTypes           bool
	tlsProtocol                string
	output                     outputFormat
	// tlsDir is bake's --tls-dir: where the files will live when Flink
	// reads them, when not at --out. init has no such flag: its pod's
	// containers mount the volume it writes at the same path.
	tlsDir string
}

func (f *issueFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.cluster, "cluster", "", "cluster name (required)")
	fl.StringVar(&f.role, "role", "", "role (required): jobmanager, taskmanager, rest-server or rest-client")
	fl.StringVar(&f.holder, "holder", "", "holder name, usually the pod name (bake: required; init: by default the host name; with a Kubernetes token always the pod the token names)")
	fl.StringVar(&f.out, "out", "", "directory to write the file set into (required; created 0700 if missing)")
	fl.StringVar(&f.format, "format", "pkcs12", "store format: pkcs12 or jks")
	fl.StringVar(&f.profile, "pkcs12-profile", "modern2023", "PKCS#12 encryption: modern2023 or legacy-des (for old readers)")
	fl.StringArrayVar(&f.dns, "dns", nil, "DNS name for the leaf (repeat; required for rest-server; for jobmanager/taskmanager, names peers reach this process by — Flink 2.3+ checks them)")
	fl.StringArrayVar(&f.ips, "ip", nil, "IP address for the leaf (repeat; as --dns)")
	fl.BoolVar(&f.legacyStoreTypes, "legacy-store-types", false, "leave out keystore-type/truststore-type, which Flink before 1.20 does not know (it uses the JVM default type, which reads either store format)")
	addTLSProtocolFlag(fl, &f.tlsProtocol)
	addOutputFlag(cmd, &f.output)
}

// checkOut resolves --out to an absolute path and refuses an existing
// non-directory before anything is requested from the server, so a typo
// costs neither a token use nor an issuance.
func checkOut(out string) (string, error) {
	if err := requireFlag("out", out); err != nil {
		return "", err
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return "", fmt.Errorf("resolve --out %s: %w", out, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return abs, nil
	case errors.Is(err, syscall.ENOTDIR):
		return "", fmt.Errorf("--out %s lies below %s, an existing file, not a directory: choose a directory for the file set", out, fileOnPath(abs))
	case err != nil:
		return "", fmt.Errorf("check --out %s: %w", out, atomicfile.Cause(err))
	case !fi.IsDir():
		return "", fmt.Errorf("--out %s is an existing file, not a directory: choose a directory for the file set", out)
	}
	return abs, nil
}

// fileOnPath is the nearest ancestor of p that exists (a file, when a
// stat of p says ENOTDIR).
func fileOnPath(p string) string {
	for d := filepath.Dir(p); d != p; p, d = d, filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			return d
		}
	}
	return p
}

// buildOptions checks --out and the store flags, before anything is asked
// of the server; the options' Dir is the absolute output directory.
func (f *issueFlags) buildOptions(now time.Time) (credentials.Options, error) {
	switch n := len(f.dns) + len(f.ips); {
	case f.role == "rest-server" && n == 0:
		return credentials.Options{}, usagef("--role rest-server needs the names clients reach the REST endpoint by: --dns NAME (repeat) or --ip ADDR")
	case f.role == "rest-client" && n > 0:
		return credentials.Options{}, usagef("--role rest-client certificates carry no names: leave out --dns and --ip")
	}
	for _, ip := range f.ips {
		if net.ParseIP(ip) == nil {
			return credentials.Options{}, usagef("--ip %q is not an IP address: pass e.g. 10.0.0.7 or fd00::7", ip)
		}
	}
	for _, name := range f.dns {
		if err := issuer.ValidateDNSName(name); err != nil {
			return credentials.Options{}, usagef("--dns: %s", strings.TrimPrefix(err.Error(), issuer.ErrInvalidRequest.Error()+": "))
		}
	}
	dir, err := checkOut(f.out)
	if err != nil {
		return credentials.Options{}, err
	}
	format, err := formatFlag(f.format)
	if err != nil {
		return credentials.Options{}, err
	}
	profile, err := keystore.ParseProfile(f.profile)
	if err != nil {
		return credentials.Options{}, usageError{err}
	}
	if format != keystore.PKCS12 && f.profile != "" && f.profile != string(keystore.Modern2023) {
		return credentials.Options{}, usagef("--pkcs12-profile %s applies to PKCS#12 stores, not --format %s: leave it out", f.profile, format)
	}
	tls13, err := tlsProtocolFlag(f.tlsProtocol)
	if err != nil {
		return credentials.Options{}, err
	}
	runtimeDir := ""
	if f.tlsDir != "" {
		if !filepath.IsAbs(f.tlsDir) {
			return credentials.Options{}, usagef("--tls-dir %s is not an absolute path: give the directory the files will live at when Flink reads them, e.g. /opt/flink/tls", f.tlsDir)
		}
		runtimeDir = filepath.Clean(f.tlsDir)
	}
	rest := strings.HasPrefix(f.role, "rest-")
	opts := credentials.Options{Format: format, Profile: profile, Dir: dir, RuntimeDir: runtimeDir, Created: now, LegacyStoreTypes: f.legacyStoreTypes, REST: rest, TLS13: tls13}
	// What Build or Write would refuse after the server has issued (a
	// foreign file in --out, a path Flink cannot name, a read-only mount)
	// is refused now: a failed command must leave no holder record and
	// spend no token use.
	if err := credentials.Check(opts); err != nil {
		return credentials.Options{}, err
	}
	return opts, nil
}

// notWritten is the error for credentials the server issued that this
// run could not write: the holder is recorded (and an enrollment token's
// use spent), so the message says so, and how to undo or redo it.
func notWritten(f *issueFlags, res *enroll.Result, err error) error {
	serial := ""
	if len(res.Chain) > 0 {
		serial = " (serial " + res.Chain[0].SerialNumber.Text(16) + ")"
	}
	return fmt.Errorf("the server issued credentials for holder %q of cluster %q%s, but they could not be written: %w; "+
		"free space or fix the path and run again (the new credentials supersede these; if it was with an enrollment token that has no use left now, make another first: flinkpki token create), or declare the holder gone: flinkpki holder release --cluster %s --purpose %s %s",
		res.Holder, f.cluster, serial, err, f.cluster, issuer.Role(f.role).Purpose(), res.Holder)
}

// issueJSON is the stable JSON summary of a written file set.
type issueJSON struct {
	Cluster       string   `json:"cluster"`
	Role          string   `json:"role"`
	Holder        string   `json:"holder"`
	KeyType       string   `json:"key_type"`
	Format        string   `json:"format"`
	Dir           string   `json:"dir"`
	Files         []string `json:"files"`
	Serial        string   `json:"serial"`
	LeafSHA256    string   `json:"leaf_sha256"`
	NotAfter      string   `json:"not_after"`
	TrustedCAs    int      `json:"trusted_cas"`
	FlinkConfDir  string   `json:"flink_conf_dir,omitempty"`
	TLSDir        string   `json:"tls_dir,omitempty"`
	ElapsedMillis int64    `json:"elapsed_ms"`
	// Superseded is the live record of another process this issuance
	// replaced (the note on stderr says so too).
	Superseded *supersededJSON `json:"superseded,omitempty"`
}

// report prints what was written: a short summary on stderr, or one JSON
// object on stdout with -o json.
func (a *app) report(f *issueFlags, opts credentials.Options, res *enroll.Result, set *credentials.FileSet, confOut string, elapsed time.Duration) error {
	leaf := res.Chain[0]
	sum := sha256.Sum256(leaf.Raw)
	j := issueJSON{
		Cluster: f.cluster, Role: f.role, Holder: res.Holder, KeyType: string(res.KeyType), Format: string(opts.Format),
		Dir: opts.Dir, Files: []string{}, Serial: leaf.SerialNumber.Text(16), LeafSHA256: hex.EncodeToString(sum[:]),
		NotAfter: leaf.NotAfter.UTC().Format(time.RFC3339), TrustedCAs: len(res.Trusted), FlinkConfDir: confOut,
		TLSDir: opts.RuntimeDir, ElapsedMillis: elapsed.Milliseconds(),
	}
	for _, file := range set.Files {
		j.Files = append(j.Files, file.Name)
	}
	if f.holder != "" && res.Holder != f.holder {
		// A pod's Kubernetes token speaks for that pod only: the server
		// records the pod, whatever --holder said.
		fmt.Fprintf(a.stderr, "note: the server recorded the holder as %q, not --holder %q: a pod's Kubernetes token speaks for that pod only\n", res.Holder, f.holder)
	}
	if s := res.Superseded; s != nil {
		until := s.NotAfter.UTC().Format(time.RFC3339)
		j.Superseded = &supersededJSON{Serial: s.Serial, NotAfter: until, Actor: s.Actor}
		// Either the process that held it started again, or another one
		// runs under the same name, which rotation would now break.
		fmt.Fprintf(a.stderr, "note: this replaces the live credentials of holder %q (serial %s, valid until %s, obtained by %s): CA rotation no longer waits for the process that holds them; if it still runs (another process on this host, pods of an earlier image), give each process its own --holder\n",
			res.Holder, s.Serial, until, s.Actor)
	}
	if f.output == "json" {
		return writeJSON(a.stdout, j)
	}
	fmt.Fprintf(a.stderr, "wrote %s credentials for holder %q of cluster %q (%s, %s) to %s\n",
		f.role, j.Holder, f.cluster, j.KeyType, j.Format, j.Dir)
	fmt.Fprintf(a.stderr, "leaf serial %s valid until %s; truststore holds %d CA(s)\n", j.Serial, j.NotAfter, j.TrustedCAs)
	// Baked for another place (an image): the files, and the copy, move there.
	moved := opts.RuntimeDir != "" && opts.RuntimeDir != opts.Dir
	if moved {
		// The visible names are links into a hidden generation directory
		// (..data): a copy of "DIR/*" would hold dangling links.
		fmt.Fprintf(a.stderr, "flink-ssl.yaml names the stores under %s: copy %s there whole, hidden entries and links included (cp -a %s/. %s, or a Dockerfile COPY of the directory)\n", opts.RuntimeDir, opts.Dir, opts.Dir, opts.RuntimeDir)
	}
	switch {
	case confOut != "" && moved:
		fmt.Fprintf(a.stderr, "Flink configuration with security.ssl.* merged in %s: copy it where Flink will read it beside the stores (e.g. /opt/flink/conf), and set FLINK_CONF_DIR to that directory\n", confOut)
	case confOut != "":
		fmt.Fprintf(a.stderr, "Flink configuration with security.ssl.* merged in %s: set FLINK_CONF_DIR=%s\n", confOut, confOut)
	}
	return nil
}

// supersededJSON is enroll.Superseded in issueJSON.
type supersededJSON struct {
	Serial   string `json:"serial"`
	NotAfter string `json:"not_after"`
	Actor    string `json:"actor"`
}

// addTLSProtocolFlag registers --tls-protocol, which picks what
// flink-ssl.yaml (or the flinkConfiguration block) tells Flink to speak.
func addTLSProtocolFlag(fl *pflag.FlagSet, p *string) {
	fl.StringVar(p, "tls-protocol", flinkconf.Protocol, "TLSv1.2 (suites matched to the key type) or TLSv1.3 (TLS_AES suites, any key type); every process of a cluster must use the same, so switching restarts all of them")
}

// tlsProtocolFlag reads --tls-protocol: whether it asks for TLS 1.3.
func tlsProtocolFlag(v string) (bool, error) {
	p, ok := flinkconf.ParseProtocol(v)
	if !ok {
		return false, usagef("--tls-protocol %q: use %s or %s", v, flinkconf.Protocol, flinkconf.ProtocolTLS13)
	}
	return p == flinkconf.ProtocolTLS13, nil
}
