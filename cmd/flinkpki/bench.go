package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/credentials"
	"github.com/flinkpki/flinkpki/enroll"
	"github.com/flinkpki/flinkpki/internal/gctune"
	"github.com/flinkpki/flinkpki/internal/loadgen"
	"github.com/flinkpki/flinkpki/keystore"
)

// workersPerConn is how many keep-alive workers share one connection: HTTP/2
// multiplexes them, and a few connections spread the load over the
// server's cores.
const workersPerConn = 16

// benchGCFloor is the heap size below which bench enroll does not collect
// (see internal/gctune): the load generator's memory is not constrained.
const benchGCFloor = 64 << 20

type benchFlags struct {
	cluster, role, format string
	requests, concurrency int
	warmup                int
	fresh                 bool
	cpuProfile            string
	timeout               durationFlag
	out                   outputFormat
}

func (a *app) newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure a running server",
	}
	enrollCmd := a.newBenchEnrollCmd()
	a.addConnFlags(enrollCmd)
	bakeCmd := a.newBenchBakeCmd()
	a.addConnFlags(bakeCmd)
	cmd.AddCommand(enrollCmd, bakeCmd, newBenchPopulateCmd())
	return cmd
}

func (a *app) newBenchEnrollCmd() *cobra.Command {
	f := benchFlags{timeout: durationFlag{d: 30 * time.Second}}
	cmd := &cobra.Command{
		Use:   "enroll --cluster NAME --role ROLE --token-file F",
		Short: "Drive Enroll the way init containers do and report throughput and latency",
		Long: `Send --requests enrollments with --concurrency workers, each doing what an init
container does: make a P-256 key on the client, send a CSR with the token, get
the signed chain back and assemble the file set in memory (not written). The
latency of a request covers all of it.

The token must allow that many uses: a multi-use enrollment token
(token create --uses N) or an administrator token. Each request enrolls a new
holder, so run it against a cluster made for benchmarking.

By default the workers share keep-alive connections (one per 16 workers);
--fresh-connections opens a new TLS connection per request, as a starting pod
does. --warmup N sends N more enrollments first, on the same workers and
connections, and leaves them out of every figure, so that a short run
measures the steady state rather than its own start (make bench uses 8 per
worker); the token must allow those uses too. Exit 1 when any request failed.

The server limits each identity's enrollments (serve --enroll-rate, 200/s
with a burst of 2000 by default): against a server started for benchmarking,
pass serve --enroll-rate 0, as make bench does, or the rate measured is that
limit's. It also bounds what one address holds: 512 requests in flight
(serve --max-requests-per-address) and 256 open connections
(serve --max-connections-per-address); a run from one machine with more
workers than that needs them raised (make bench's burst of 1,000 does).`,
		Example: `  flinkpki token create --cluster bench --role taskmanager --uses 10000 --ttl 1h > bench.token
  flinkpki bench enroll --cluster bench --role taskmanager --token-file bench.token \
      --requests 5000 --concurrency 64 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runBench(cmd.Context(), &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.cluster, "cluster", "", "cluster name (required)")
	fl.StringVar(&f.role, "role", "", "role to enroll as (required)")
	fl.IntVar(&f.requests, "requests", 1000, "number of enrollments")
	fl.IntVar(&f.concurrency, "concurrency", 16, "concurrent workers")
	fl.IntVar(&f.warmup, "warmup", 0, "enrollments sent first and not measured (they use the token too)")
	fl.BoolVar(&f.fresh, "fresh-connections", false, "a new TLS connection per request")
	fl.StringVar(&f.format, "format", "pkcs12", "store format assembled per request: pkcs12 or jks")
	fl.Var(&f.timeout, "request-timeout", "deadline of one request")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write the load generator's CPU profile to this file (go tool pprof)")
	addOutputFlag(cmd, &f.out)
	return cmd
}

func (a *app) runBench(ctx context.Context, f *benchFlags) error {
	if err := benchArgs(f.cluster, f.role, f.requests, &f.concurrency); err != nil {
		return err
	}
	if f.warmup < 0 {
		return usagef("--warmup is %d: give a number of enrollments, 0 for none", f.warmup)
	}
	format, err := formatFlag(f.format)
	if err != nil {
		return err
	}
	pool, dial, err := a.benchPool(f)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range pool {
			c.Close()
		}
	}()
	prefix := holderPrefix("bench")
	warm := ""
	if f.warmup > 0 {
		warm = fmt.Sprintf(" after %d to warm up", f.warmup)
	}
	fmt.Fprintf(a.stderr, "bench: %d enrollments%s for cluster %q role %s, concurrency %d, holders %s-N\n", f.requests, warm, f.cluster, f.role, f.concurrency, prefix)

	// The load generator shares the machine with the server: it should
	// spend its CPU on requests, not on collecting a tiny heap.
	gctune.Start(ctx, benchGCFloor, time.Second)
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return err
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	refused := runRefusal{requests: f.requests}
	o := loadgen.Run(ctx, loadgen.Load{Requests: f.requests, Concurrency: f.concurrency, Warmup: f.warmup}, refused.wrap(func(ctx context.Context, w, i int) error {
		var conn *grpc.ClientConn
		if !f.fresh {
			conn = pool[w/workersPerConn]
		}
		return a.benchOne(ctx, f, conn, dial, format, fmt.Sprintf("%s-%d", prefix, i))
	}))
	return refused.report(a, f.out, "enrollments", o, loadgen.Result{
		FreshConnections: f.fresh, Connections: len(pool), KeyType: string(ca.KeyTypeECDSAP256), Format: string(format),
	})
}

// benchArgs checks what bench enroll and bench bake share, and caps the
// concurrency at the number of requests.
func benchArgs(cluster, role string, requests int, concurrency *int) error {
	if err := clusterFlag(cluster); err != nil {
		return err
	}
	if _, err := roleFlag(role); err != nil {
		return err
	}
	if requests < 1 || *concurrency < 1 {
		return usagef("--requests and --concurrency must be at least 1")
	}
	*concurrency = min(*concurrency, requests)
	return nil
}

// holderPrefix names the holders of one run, so runs never collide.
func holderPrefix(kind string) string {
	runID := make([]byte, 4)
	_, _ = rand.Read(runID)
	return kind + "-" + hex.EncodeToString(runID)
}

// benchDialer returns what opens one connection to the server with the
// CLI's settings and token, as each init container or bake process does.
func (a *app) benchDialer() (func() (*grpc.ClientConn, error), error) {
	tok, err := a.token()
	if err != nil {
		return nil, err
	}
	c := a.settings()
	if err := checkServer(c.server); err != nil {
		return nil, err
	}
	a.target = c.server
	// The CA file is read once, as the step-ca load generator reads its
	// roots once: a pod reads it once too, and the per-request work of the
	// two load generators stays the same.
	tlsConf, err := enroll.TLSConfig(c.caFile)
	if err != nil {
		return nil, err
	}
	return func() (*grpc.ClientConn, error) { return enroll.DialTLS(c.server, tlsConf, tok) }, nil
}

// benchReport prints a run and fails it when any request failed.
func (a *app) benchReport(out outputFormat, what string, firstErr error, res loadgen.Result) error {
	if firstErr != nil {
		res.FirstError = oneLine(a.humanize(firstErr))
		if status.Code(firstErr) == codes.ResourceExhausted && strings.Contains(res.FirstError, "rate limit") {
			res.FirstError += " (a server for benchmarks runs with serve --enroll-rate 0)"
		}
	}
	var err error
	switch {
	case out == "json":
		err = writeJSON(a.stdout, res)
	case res.Errors+res.Interrupted < res.Requests:
		// A table of zeros would read as a measurement; JSON keeps its
		// fields for CI either way.
		err = loadgen.PrintTable(a.stdout, res)
	}
	if err != nil {
		return err
	}
	if res.Interrupted > 0 {
		// Not a failure of the server's: what ran is reported above.
		failed := ""
		if res.Errors > 0 {
			failed = fmt.Sprintf(", %d failed (first: %s)", res.Errors, orDash(res.FirstError))
		}
		return fmt.Errorf("%d of %d %s done%s, %d not sent or cut off: %w", res.Requests-res.Errors-min(res.Interrupted, res.Requests), res.Requests, what, failed, res.Interrupted, context.Canceled)
	}
	if res.Errors > 0 {
		return fmt.Errorf("%d of %d %s failed; first: %s", res.Errors, res.Requests, what, orDash(res.FirstError))
	}
	if res.WarmupErrors > 0 {
		return fmt.Errorf("%d of the %d warm-up %s failed; first: %s", res.WarmupErrors, res.Warmup, what, orDash(res.FirstError))
	}
	return nil
}

// benchPool opens the shared keep-alive connections (none in fresh mode)
// and returns the dialer fresh mode uses per request.
func (a *app) benchPool(f *benchFlags) ([]*grpc.ClientConn, func() (*grpc.ClientConn, error), error) {
	dial, err := a.benchDialer()
	if err != nil {
		return nil, nil, err
	}
	if f.fresh {
		return nil, dial, nil
	}
	n := (f.concurrency + workersPerConn - 1) / workersPerConn
	pool := make([]*grpc.ClientConn, 0, n)
	for range n {
		conn, err := dial()
		if err != nil {
			for _, p := range pool {
				p.Close()
			}
			return nil, nil, err
		}
		pool = append(pool, conn)
	}
	return pool, dial, nil
}

// benchOne is one init container's work: key, CSR, Enroll, file set in
// memory. With a nil conn it opens (and closes) a connection of its own.
func (a *app) benchOne(ctx context.Context, f *benchFlags, conn *grpc.ClientConn, dial func() (*grpc.ClientConn, error), format keystore.Format, holder string) error {
	if conn == nil {
		c, err := dial()
		if err != nil {
			return err
		}
		defer c.Close()
		conn = c
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout.d)
	defer cancel()
	res, err := enroll.NewClient(conn, a.target).Enroll(ctx, enroll.Request{
		Cluster: f.cluster, Role: f.role, Holder: holder, KeyType: ca.KeyTypeECDSAP256,
	})
	if err != nil {
		return err
	}
	_, err = credentials.Build(credentials.Material{Key: res.Key, Chain: res.Chain, Trusted: res.Trusted},
		credentials.Options{Format: format, Dir: "/flink-tls", Created: time.Now()})
	return err
}

type benchBakeFlags struct {
	cluster, role         string
	requests, concurrency int
	timeout               durationFlag
	out                   outputFormat
}

func (a *app) newBenchBakeCmd() *cobra.Command {
	f := benchBakeFlags{timeout: durationFlag{d: 2 * time.Minute}}
	cmd := &cobra.Command{
		Use:   "bake --cluster NAME --role ROLE",
		Short: "Send a burst of Bake calls the way image builds do and report throughput and latency",
		Long: `Send --requests Bake calls with --concurrency workers, each on a new TLS
connection, as separate flinkpki bake processes in an image build would. The
server makes every key; with an RSA cluster that is where the time goes, and
where the key pool (serve --bake-key-pool) helps: run it once right after the
server has been idle and once against a server started with
--bake-key-pool 0 to see the pool's effect. Each call bakes a new holder, so
use a cluster made for benchmarking. Takes an administrator token, or an
enrollment token for the cluster and role that allows that many uses
(token create --uses N). As with bench enroll, start a server for
benchmarking with serve --enroll-rate 0, or its per-identity limit is what
the run measures.`,
		Example: `  flinkpki cluster create bench-rsa --key-type rsa-2048
  flinkpki bench bake --cluster bench-rsa --role taskmanager --requests 200 --concurrency 8`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runBenchBake(cmd.Context(), &f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.cluster, "cluster", "", "cluster name (required)")
	fl.StringVar(&f.role, "role", "taskmanager", "role to bake")
	fl.IntVar(&f.requests, "requests", 200, "number of Bake calls")
	fl.IntVar(&f.concurrency, "concurrency", 8, "concurrent workers")
	fl.Var(&f.timeout, "request-timeout", "deadline of one call")
	addOutputFlag(cmd, &f.out)
	return cmd
}

func (a *app) runBenchBake(ctx context.Context, f *benchBakeFlags) error {
	if err := benchArgs(f.cluster, f.role, f.requests, &f.concurrency); err != nil {
		return err
	}
	dial, err := a.benchDialer()
	if err != nil {
		return err
	}
	prefix := holderPrefix("bake")
	fmt.Fprintf(a.stderr, "bench: %d bakes for cluster %q role %s, concurrency %d, holders %s-N\n", f.requests, f.cluster, f.role, f.concurrency, prefix)
	var keyType atomic.Value
	refused := runRefusal{requests: f.requests}
	o := loadgen.Run(ctx, loadgen.Load{Requests: f.requests, Concurrency: f.concurrency}, refused.wrap(func(ctx context.Context, _, i int) error {
		conn, err := dial()
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(ctx, f.timeout.d)
		defer cancel()
		res, err := enroll.NewClient(conn, a.target).Bake(ctx, enroll.Request{
			Cluster: f.cluster, Role: f.role, Holder: fmt.Sprintf("%s-%d", prefix, i),
		})
		if err == nil {
			keyType.Store(string(res.KeyType))
		}
		return err
	}))
	kt, _ := keyType.Load().(string)
	return refused.report(a, f.out, "bakes", o, loadgen.Result{FreshConnections: true, KeyType: kt, Format: "none"})
}

// runRefusal stops a bench run from sending at the server's first
// refusal: an unknown cluster, a wrong role or token. Every further request
// would be refused (and audited) too, so a typo costs at most one refusal
// per worker, not one per request; what ran is still reported.
type runRefusal struct {
	requests int                   // measured requests: loadgen numbers the warm-up's after them
	first    atomic.Pointer[error] // the first refusal
	skipped  atomic.Int64          // measured requests not sent
}

// errNotSent is a request a run did not send after a refusal.
var errNotSent = errors.New("not sent: the server refused an earlier request")

// wrap sends with do until a request is refused.
func (r *runRefusal) wrap(do func(ctx context.Context, w, i int) error) func(ctx context.Context, w, i int) error {
	return func(ctx context.Context, w, i int) error {
		if r.first.Load() != nil {
			if i < r.requests {
				r.skipped.Add(1)
			}
			return errNotSent
		}
		err := do(ctx, w, i)
		if err != nil && refusedOutright(err) {
			r.first.CompareAndSwap(nil, &err)
		}
		return err
	}
}

// report is a run's report, with the measured requests it did not send
// (res.NotSent), and its error with a note that it stopped at a refusal.
func (r *runRefusal) report(a *app, out outputFormat, what string, o loadgen.Outcome, res loadgen.Result) error {
	first := o.FirstErr
	if p := r.first.Load(); p != nil {
		first = *p
	}
	n := int(r.skipped.Load())
	res = o.Result(res)
	res.NotSent = n
	err := a.benchReport(out, what, first, res)
	if err != nil && n > 0 {
		return fmt.Errorf("%w (the run stopped at the first refusal and did not send %d of the measured %s)", err, n, what)
	}
	return err
}
