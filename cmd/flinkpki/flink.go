package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/flinkconf"
	flinkpkiv1 "github.com/flinkpki/flinkpki/proto/flinkpki/v1"
)

func (a *app) newFlinkCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "flink",
		Short: "Generate and check Flink configuration",
	}
	config := a.newFlinkConfigCmd()
	a.addConnFlags(config)
	cmd.AddCommand(config, a.newFlinkLintCmd())
	return cmd
}

// flinkConfigFlags are flink config's flags.
type flinkConfigFlags struct {
	cluster, role, tlsDir, format, keyType, tlsProtocol string
	legacy                                              bool
	out                                                 outputFormat
}

func (a *app) newFlinkConfigCmd() *cobra.Command {
	var f flinkConfigFlags
	cmd := &cobra.Command{
		Use:   "config --cluster NAME --role ROLE",
		Short: "Print the flinkConfiguration block for a FlinkDeployment",
		Long: `Print the flinkConfiguration keys for a FlinkDeployment whose pods enroll with
the flinkpki init container: store paths under --tls-dir (the init
container's --out), store types, and the TLS protocol and cipher suites that
match the cluster's key type. It never prints passwords: the init container
merges each pod's own passwords into its private copy of the configuration.
With --tls-protocol TLSv1.3 the block names TLS 1.3 and its suites; give the
init containers the same flag, since their copy is what Flink reads.

Two operator keys come with it: merge-arrays-by-name, so the init container
and volumes of the top-level pod template merge by name, and the JobManager
startup probe off, since it calls REST on the pod IP and the init container
keeps REST on loopback (lint's FP021). With REST on the pod network for the
operator (deploy/examples/operator-rest), leave the probe key out.

The cluster's key type is fetched from the server (administrator token)
unless --key-type is given.`,
		Example: `  flinkpki flink config --cluster orders --role taskmanager
  flinkpki flink config --cluster orders --role jobmanager --key-type rsa-2048 --flink-before-1-20`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runFlinkConfig(cmd.Context(), &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.cluster, "cluster", "", "cluster name (required)")
	fl.StringVar(&f.role, "role", "", "role of the pods: jobmanager or taskmanager (required)")
	fl.StringVar(&f.tlsDir, "tls-dir", flinkconf.DefaultTLSDir, "absolute directory the init container writes the stores to (its --out)")
	fl.StringVar(&f.format, "format", "pkcs12", "store format: pkcs12 or jks")
	fl.StringVar(&f.keyType, "key-type", "", "the cluster's key type (ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072 or rsa-4096), to work without a server")
	addTLSProtocolFlag(fl, &f.tlsProtocol)
	fl.BoolVar(&f.legacy, "flink-before-1-20", false, "leave out keystore-type/truststore-type, which Flink before 1.20 does not know (it uses the JVM default type, which reads either store format)")
	// init and bake call the same choice --legacy-store-types: one name works everywhere.
	fl.BoolVar(&f.legacy, "legacy-store-types", false, "the same as --flink-before-1-20, under the name init and bake give it")
	addOutputFlag(cmd, &f.out)
	return cmd
}

// runFlinkConfig checks every flag before it asks the server for the
// cluster's key type (unless --key-type gives it), then prints the block.
func (a *app) runFlinkConfig(ctx context.Context, f *flinkConfigFlags) error {
	if err := clusterFlag(f.cluster); err != nil {
		return err
	}
	if _, err := roleFlag(f.role); err != nil {
		return err
	}
	if f.role != "jobmanager" && f.role != "taskmanager" {
		return usagef("--role %s: flink config prints the internal TLS keys of jobmanager and taskmanager pods; the REST keys come with the file set (flink-ssl.yaml of bake or init)", f.role)
	}
	if _, err := formatFlag(f.format); err != nil {
		return err
	}
	tls13, err := tlsProtocolFlag(f.tlsProtocol)
	if err != nil {
		return err
	}
	if !path.IsAbs(f.tlsDir) {
		return usagef("--tls-dir %s is not an absolute path: give the init container's --out, e.g. %s", f.tlsDir, flinkconf.DefaultTLSDir)
	}
	kt, err := a.clusterKeyType(ctx, f.cluster, f.keyType)
	if err != nil {
		return err
	}
	kvs, err := flinkconf.FlinkConfiguration(flinkconf.ConfigParams{
		TLSDir: f.tlsDir, Format: f.format, KeyAlgorithm: kt.Algorithm(), LegacyStoreTypes: f.legacy, TLS13: tls13,
	})
	if err != nil {
		return err
	}
	if f.out == "json" {
		m := make(map[string]string, len(kvs))
		for _, kv := range kvs {
			m[kv.Key] = kv.Value
		}
		return writeJSON(a.stdout, m)
	}
	data, err := flinkconf.RenderYAML(kvs)
	if err != nil {
		return err
	}
	_, err = a.stdout.Write(data)
	return err
}

// clusterKeyType returns the key type given as a flag, or else the
// cluster's, fetched with an administrator token.
func (a *app) clusterKeyType(ctx context.Context, cluster, flag string) (ca.KeyType, error) {
	if flag != "" {
		return keyTypeFlag(flag)
	}
	conn, err := a.dial()
	if err != nil {
		return "", err
	}
	defer conn.Close()
	c, err := flinkpkiv1.NewClusterServiceClient(conn).GetCluster(ctx, &flinkpkiv1.GetClusterRequest{Name: cluster})
	if err != nil {
		return "", err
	}
	return ca.ParseKeyType(c.GetKeyType())
}

// maxLintInput bounds what flink lint - reads from standard input.
const maxLintInput = 64 << 20

// lintInput is one file flink lint checks.
type lintInput struct {
	label string // names it in findings: the file's base name, or <stdin>
	data  []byte
	// podLocalCopy marks the merged copy init wrote, which holds the
	// pod's passwords by design.
	podLocalCopy bool
	// major is the only Flink major version that reads the file, where
	// that is known from the directory alone; 0 otherwise.
	major int
}

// lintInputs reads what flink lint checks for its argument: standard input
// for "-", the configuration files Flink reads for a Flink configuration
// directory (config.yaml, flink-conf.yaml, each that is there, as init
// --flink-conf-src merges them; a config.yaml beside a flink-conf.yaml is
// Flink 2's), or the file named.
func (a *app) lintInputs(arg string) ([]lintInput, error) {
	if arg == "-" {
		if a.stdin == nil {
			return nil, usagef("flink lint -: no standard input")
		}
		data, err := io.ReadAll(io.LimitReader(a.stdin, maxLintInput+1))
		if err == nil && len(data) > maxLintInput {
			err = fmt.Errorf("more than %d MiB", maxLintInput>>20)
		}
		if err != nil {
			return nil, fmt.Errorf("read <stdin>: %w", err)
		}
		return []lintInput{{label: "<stdin>", data: data}}, nil
	}
	paths := []string{arg}
	if st, err := os.Stat(arg); err == nil && st.IsDir() {
		if paths, err = flinkconf.ConfDirFiles(arg); err != nil {
			return nil, err
		}
	}
	var inputs []lintInput
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err // names p
		}
		inputs = append(inputs, lintInput{label: filepath.Base(p), data: data, podLocalCopy: flinkconf.IsPodLocalCopy(p)})
	}
	for i := range inputs {
		// Beside a flink-conf.yaml, Flink 1.x reads that file alone: the
		// config.yaml is Flink 2's.
		if len(inputs) == 2 && inputs[i].label == flinkconf.ConfigYAML {
			inputs[i].major = 2
		}
	}
	return inputs, nil
}

// flinkLintFlags are flink lint's flags.
type flinkLintFlags struct {
	keyType, flinkVersion string
	ignore                []string
	out                   outputFormat
}

func (a *app) newFlinkLintCmd() *cobra.Command {
	var f flinkLintFlags
	cmd := &cobra.Command{
		Use:   "lint FILE|DIR|-",
		Short: "Check a Flink configuration or FlinkDeployment against the security recommendations",
		Long: `Check a FlinkDeployment manifest, a Flink config.yaml or a legacy
flink-conf.yaml (or the config.yaml and flink-conf.yaml of a Flink
configuration directory DIR, each that is there, as init --flink-conf-src
merges them) against flinkpki's security recommendations: internal SSL on,
REST authenticated (in a FlinkDeployment: kept on loopback by the init
container's --flink-conf-set, since the operator drops rest.bind-address),
standalone mode, no passwords in the configuration or the pod templates' env,
forward-secret cipher suites matched to the key type, TLSv1.2 or later, a
dedicated service account, no hostNetwork, no keystore from a Kubernetes
Secret. Works offline.

In a FlinkDeployment it also follows the flinkpki init container to Flink in
the JobManager and TaskManager pods (the top-level pod template merged with
each process's own, by name): --out and --flink-conf-out on emptyDir volumes
that flink-main-container mounts at the same paths, FLINK_CONF_DIR on the
copy, --flink-conf-src on the operator's ConfigMap flink-config-NAME, and
the same user for both containers (FP010). Where every process runs init
with --flink-conf-out, the settings the copy makes need not be in
flinkConfiguration.

Flink versions differ: Flink 2 no longer reads security.ssl.enabled (only
security.ssl.internal.enabled and security.ssl.rest.enabled) nor a legacy
flink-conf.yaml. A FlinkDeployment names its version in spec.flinkVersion and
a flink-conf.yaml is Flink 1.x; for a config.yaml give --flink-version.
Without one, lint holds the file to Flink 1.x and 2.x alike and reports what
either breaks, a finding that holds on one version only saying so.

Prints one finding per line on stdout (with -o json, an object with the
findings' rule, severity, message and fix, for CI). Exit 1 when any finding
is an error, 0 when there are only warnings or none. --ignore drops the
findings of the rules it names (e.g. FP003 for a native-mode cluster that
runs only trusted code); the summary on stderr counts them. FILE - reads
standard input: every FlinkDeployment of a manifest stream, as kustomize
build prints it. The README's "Checking a Flink configuration" explains each
rule against Flink's sources.

Rules (each finding says whether it is an error or a warning; "warning" below
marks what is never more than one):
` + flinkconf.RuleList(),
		Example: `  flinkpki flink lint deploy/examples/standalone/flinkdeployment.yaml
  flinkpki flink lint deploy/examples/standalone/flinkdeployment.yaml --key-type ecdsa-p256 -o json
  flinkpki flink lint deploy/examples/native/flinkdeployment.yaml --ignore FP003
  kustomize build deploy/examples/standalone | flinkpki flink lint -`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error { return a.runFlinkLint(&f, args[0]) },
	}
	cmd.Flags().StringVar(&f.keyType, "key-type", "", "the cluster's key type (ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072 or rsa-4096), to check the cipher suites against it")
	addOutputFlag(cmd, &f.out)
	cmd.Flags().StringSliceVar(&f.ignore, "ignore", nil, "rule ids whose findings to drop, comma-separated (FP003,FP007)")
	cmd.Flags().StringVar(&f.flinkVersion, "flink-version", "", "the Flink version the file is for (1.20, 2.2, v2_2), when it does not say (a FlinkDeployment's spec.flinkVersion wins)")
	return cmd
}

// runFlinkLint lints each file arg names (lintInputs) and prints the
// findings --ignore leaves; it fails when any of them is an error.
func (a *app) runFlinkLint(f *flinkLintFlags, arg string) error {
	opts, ignored, err := f.lintOptions()
	if err != nil {
		return err
	}
	name := arg
	if name == "-" {
		name = "<stdin>"
	}
	inputs, err := a.lintInputs(arg)
	if err != nil {
		return err
	}
	all, err := lintAll(inputs, opts)
	if err != nil {
		return err
	}
	var findings []flinkconf.Finding
	for _, fd := range all {
		if !ignored[fd.Rule] {
			findings = append(findings, fd)
		}
	}
	skipped := ""
	if n := len(all) - len(findings); n > 0 {
		skipped = fmt.Sprintf(", %d ignored", n)
	}
	if err := a.printFindings(name, findings, f.out); err != nil {
		return err
	}
	if flinkconf.HasErrors(findings) {
		errs := 0
		for _, fd := range findings {
			if fd.Severity == flinkconf.SeverityError {
				errs++
			}
		}
		return fmt.Errorf("%s fails %d security recommendation(s)%s; see the findings above", name, errs, skipped)
	}
	fmt.Fprintf(a.stderr, "%s: no errors (%d warning(s)%s)\n", name, len(findings), skipped)
	return nil
}

// lintOptions reads --key-type, --flink-version and --ignore, refusing a
// value lint does not know before any file is read; ignored holds the
// rule ids whose findings to drop.
func (f *flinkLintFlags) lintOptions() (opts flinkconf.LintOptions, ignored map[string]bool, err error) {
	if f.keyType != "" {
		kt, err := keyTypeFlag(f.keyType)
		if err != nil {
			return opts, nil, err
		}
		opts.KeyAlgorithm = kt.Algorithm()
	}
	if f.flinkVersion != "" {
		major, err := flinkconf.ParseFlinkVersion(f.flinkVersion)
		if err != nil {
			return opts, nil, usagef("--flink-version: %v", err)
		}
		opts.FlinkMajor = major
	}
	ignored = map[string]bool{}
	for _, id := range f.ignore {
		id = strings.ToUpper(strings.TrimSpace(id))
		if !slices.Contains(flinkconf.Rules(), id) {
			return opts, nil, usagef("--ignore %s: no such rule; the rules are %s", id, strings.Join(flinkconf.Rules(), ", "))
		}
		ignored[id] = true
	}
	return opts, ignored, nil
}

// lintAll lints each input with opts, with what is known of that file:
// whether it is init's pod-local copy, and its Flink major version when
// opts gives none.
func lintAll(inputs []lintInput, opts flinkconf.LintOptions) ([]flinkconf.Finding, error) {
	var all []flinkconf.Finding
	for _, in := range inputs {
		o := opts
		o.PodLocalCopy = in.podLocalCopy
		if o.FlinkMajor == 0 {
			o.FlinkMajor = in.major
		}
		found, err := flinkconf.LintWith(in.data, in.label, o)
		if err != nil {
			return nil, err
		}
		all = append(all, found...)
	}
	return all, nil
}

// printFindings prints the findings of the file name: one a line, or with
// -o json an object for CI.
func (a *app) printFindings(name string, findings []flinkconf.Finding, out outputFormat) error {
	if out == "json" {
		type findingJSON struct {
			Rule     string `json:"rule"`
			Severity string `json:"severity"`
			Message  string `json:"message"`
			Fix      string `json:"fix"`
		}
		rows := []findingJSON{}
		for _, f := range findings {
			rows = append(rows, findingJSON{Rule: f.Rule, Severity: f.Severity, Message: f.Message, Fix: f.Fix})
		}
		return writeJSON(a.stdout, struct {
			File     string        `json:"file"`
			Findings []findingJSON `json:"findings"`
		}{name, rows})
	}
	for _, f := range findings {
		fmt.Fprintln(a.stdout, f.String())
	}
	return nil
}
