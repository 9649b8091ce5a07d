//go:build flinke2e

// Package e2e proves flinkpki against real Apache Flink processes: a
// JobManager and TaskManagers started from the configuration `flinkpki init`
// writes, a job whose shuffle crosses the TaskManagers' TLS data plane, a
// stranger from another cluster kept out, a CA rotation on the live cluster,
// and REST with mutual TLS from the cluster's REST CA. run.sh prepares the
// Flink classpaths with Maven and runs this with -tags flinke2e.
package e2e

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// phases records the wall time of each phase, printed at the end.
type phases struct {
	t     testing.TB
	name  string
	start time.Time
	lines []string
}

// next closes the running phase and opens another.
func (p *phases) next(name string) {
	p.done()
	p.name, p.start = name, time.Now()
	p.t.Logf("=== phase %s", name)
}

func (p *phases) done() {
	if p.name == "" {
		return
	}
	line := fmt.Sprintf("%-28s %6.1fs", p.name, time.Since(p.start).Seconds())
	p.lines = append(p.lines, line)
	p.t.Logf("phase %s", line)
	p.name = ""
}

// env returns a required environment variable set by run.sh.
func env(t testing.TB, key string) string {
	t.Helper()
	v := os.Getenv(key)
	if v == "" {
		t.Fatalf("%s is not set; run this through interop/flink/run.sh", key)
	}
	return v
}

// TestFlinkInterop runs every scenario once per Flink version named in
// FLINK_E2E_VERSIONS ("VERSION=KEYTYPE[,tm-san] ..."), against one flinkpki
// server. With tm-san, TaskManager leaves also name the loopback host
// (init --dns localhost --ip 127.0.0.1): Flink 2.3's Netty 4.2 shuffle
// client verifies the peer TaskManager's host name.
func TestFlinkInterop(t *testing.T) {
	bin, target, work := env(t, "FLINKPKI_BIN"), env(t, "FLINK_E2E_TARGET"), env(t, "FLINK_E2E_WORK")
	p := startPKI(t, bin, work)
	var summary []string
	for _, spec := range strings.Fields(env(t, "FLINK_E2E_VERSIONS")) {
		version, opts, _ := strings.Cut(spec, "=")
		keyType, tmSAN, _ := strings.Cut(opts, ",")
		t.Run("flink-"+version, func(t *testing.T) {
			start := time.Now()
			lines := runVersion(t, p, target, work, version, keyType, tmSAN == "tm-san")
			summary = append(summary, fmt.Sprintf("Flink %s (%s):", version, opts))
			summary = append(summary, lines...)
			summary = append(summary, fmt.Sprintf("%-28s %6.1fs", "total", time.Since(start).Seconds()))
		})
	}
	t.Logf("phase timings:\n  %s", strings.Join(summary, "\n  "))
}

// runVersion runs all scenarios on one Flink version and returns the timings.
func runVersion(t *testing.T, p *pki, target, work, version, keyType string, tmSAN bool) []string {
	cp, err := os.ReadFile(filepath.Join(target, version, "classpath.txt"))
	if err != nil {
		t.Fatalf("Flink %s classpath: %v (run.sh builds it with Maven)", version, err)
	}
	dist := &flinkDist{version: version, classpath: strings.TrimSpace(string(cp)),
		jobJar: filepath.Join(target, version, "job.jar"), log4j: env(t, "FLINK_E2E_LOG4J"),
		work: filepath.Join(work, "flink-"+version)}
	if err := os.MkdirAll(dist.work, 0o700); err != nil {
		t.Fatal(err)
	}
	ph := &phases{t: t}
	defer ph.done()
	id := "f" + strings.ReplaceAll(version, ".", "")

	ph.next("lint reads as Flink does")
	checkLintFacts(t, dist, p)

	ph.next("YAML lists and nulls, as lint reads")
	checkYAMLLists(t, dist, p)

	ph.next("start JM + 2 TMs")
	c := newFlinkCluster(t, dist, p, id+"-a", keyType)
	if tmSAN {
		c.tmSANs = []string{"--dns", "localhost", "--ip", "127.0.0.1"}
	}
	c.startJM(t, "jm-0")
	c.startTM(t, "tm-1")
	c.startTM(t, "tm-2")
	tms := c.waitTMs(t, "tm-1", "tm-2")

	ph.next("job over 2 TMs")
	c.runJob(t, 4)

	ph.next("links are TLS")
	checkInternalTLS(t, c, tms)

	ph.next("REST mutual TLS")
	checkRESTTLS(t, c)

	ph.next("stranger TM refused")
	checkStranger(t, dist, p, c, id+"-b", keyType)

	ph.next("TLS 1.3 cluster, job")
	checkTLS13(t, dist, p, id+"-t", keyType, tmSAN)

	ph.next("protocol list, as lint reads")
	checkProtocolList(t, dist, p, id+"-l", keyType)

	ph.next("SSL provider, quoting, as lint reads")
	checkSSLProvider(t, dist, p, id+"-s", keyType)

	rotate(t, ph, c)
	ph.done()
	return ph.lines
}

// checkInternalTLS proves that the RPC, blob and data ports speak only TLS
// with client authentication against the cluster's own CA.
func checkInternalTLS(t *testing.T, c *flinkCluster, tms map[string]taskManager) {
	own, err := loadMaterial(c.tlsDir("tm-1"))
	if err != nil {
		t.Fatal(err)
	}
	ports := map[string]int{"JobManager RPC": c.rpcPort, "blob server": c.blobPort}
	for id, tm := range tms {
		ports["data port of "+id] = tm.DataPort
	}
	for what, port := range ports {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		answer, err := probeCleartext(addr)
		if err != nil {
			t.Errorf("%s (%s) is not TLS-only: %v", what, addr, err)
		} else {
			t.Logf("%s (%s), cleartext probe: %s", what, addr, answer)
		}
		if err := handshake(addr, own.cert, own.roots); err != nil {
			t.Errorf("%s (%s) refused a TaskManager certificate of its own cluster: %v", what, addr, err)
		}
		if err := handshake(addr, nil, own.roots); err == nil {
			t.Errorf("%s (%s) accepted a TLS client without a certificate", what, addr)
		} else {
			t.Logf("%s without a client certificate: %v", what, err)
		}
	}
}

// checkTLS13 runs a second cluster whose every process was enrolled with
// --tls-protocol TLSv1.3: the job crosses its TaskManagers' data plane, the
// RPC, blob, data and REST ports negotiate TLS 1.3 with its own
// certificates, and a client limited to TLS 1.2 is refused on each. Its
// processes stop at the end of the phase.
func checkTLS13(t *testing.T, dist *flinkDist, p *pki, name, keyType string, tmSAN bool) {
	c := newFlinkCluster(t, dist, p, name, keyType, "--tls-protocol", "TLSv1.3")
	if tmSAN {
		c.tmSANs = []string{"--dns", "localhost", "--ip", "127.0.0.1"}
	}
	defer c.stop(t, "jm-0", "tm-1", "tm-2")
	c.startJM(t, "jm-0")
	c.startTM(t, "tm-1")
	c.startTM(t, "tm-2")
	tms := c.waitTMs(t, "tm-1", "tm-2")
	c.runJob(t, 4)
	own, err := loadMaterial(c.tlsDir("tm-1"))
	if err != nil {
		t.Fatal(err)
	}
	restClient, err := loadMaterial(filepath.Join(c.work, "rest-client"))
	if err != nil {
		t.Fatal(err)
	}
	type port struct {
		addr string
		m    tlsMaterial
	}
	ports := map[string]port{
		"JobManager RPC": {fmt.Sprintf("127.0.0.1:%d", c.rpcPort), own},
		"blob server":    {fmt.Sprintf("127.0.0.1:%d", c.blobPort), own},
		"REST":           {fmt.Sprintf("127.0.0.1:%d", c.restPort), restClient},
	}
	for id, tm := range tms {
		ports["data port of "+id] = port{fmt.Sprintf("127.0.0.1:%d", tm.DataPort), own}
	}
	for what, pt := range ports {
		if v, err := handshakeVersion(pt.addr, pt.m.cert, pt.m.roots, tls.VersionTLS13); err != nil || v != tls.VersionTLS13 {
			t.Errorf("%s (%s): TLS 1.3 with the cluster's own certificate: version %x, %v", what, pt.addr, v, err)
		}
		if v, err := handshakeVersion(pt.addr, pt.m.cert, pt.m.roots, tls.VersionTLS12); err == nil {
			t.Errorf("%s (%s) accepted a client limited to TLS 1.2 (version %x)", what, pt.addr, v)
		} else {
			t.Logf("%s limited to TLS 1.2: refused: %v", what, err)
		}
	}
}

// checkRESTTLS proves the REST endpoint wants a client certificate from the
// cluster's REST CA: none, or an internal one, is refused.
func checkRESTTLS(t *testing.T, c *flinkCluster) {
	restCA, err := loadMaterial(filepath.Join(c.work, "rest-client"))
	if err != nil {
		t.Fatal(err)
	}
	internal, err := loadMaterial(c.tlsDir("tm-1"))
	if err != nil {
		t.Fatal(err)
	}
	var overview map[string]any
	if err := c.rest.get("/overview", &overview); err != nil {
		t.Fatalf("REST with the rest-client certificate: %v", err)
	}
	if overview["taskmanagers"] != float64(2) {
		t.Errorf("REST /overview says %v TaskManagers, want 2", overview["taskmanagers"])
	}
	refused := map[string]flinkREST{
		"no client certificate":               {client: restClient(restCA.roots, nil), base: c.rest.base},
		"an internal TaskManager certificate": {client: restClient(restCA.roots, internal.cert), base: c.rest.base},
	}
	for what, r := range refused {
		if err := r.get("/overview", &overview); err == nil {
			t.Errorf("REST answered a client presenting %s", what)
		} else {
			t.Logf("REST with %s: refused: %v", what, err)
		}
	}
	if answer, err := probeRESTCleartext(fmt.Sprintf("127.0.0.1:%d", c.restPort)); err != nil {
		t.Errorf("REST port is not TLS-only: %v", err)
	} else {
		t.Logf("REST port, cleartext probe: %s", answer)
	}
}

// handshakeFailure is how a refused TLS peer shows in the logs of the
// JobManager or the stranger (Pekko/Akka and Netty word it differently).
var handshakeFailure = regexp.MustCompile(`SSLHandshakeException|PKIX path|certificate_unknown|bad_certificate|unknown_ca|Empty client certificate chain`)

// checkStranger starts a TaskManager enrolled in another flinkpki cluster
// and proves it never registers and that the logs show the handshake failure.
func checkStranger(t *testing.T, dist *flinkDist, p *pki, c *flinkCluster, other, keyType string) {
	o := newFlinkCluster(t, dist, p, other, keyType)
	holder := "tm-stranger"
	jmLog := filepath.Join(dist.work, c.name+"-jm-0.log")
	// Only what the JobManager logs from now on counts: the TLS probes
	// earlier provoked handshake failures of their own.
	var jmFrom int
	if fi, err := os.Stat(jmLog); err == nil {
		jmFrom = int(fi.Size())
	}
	p.initHolder(t, other, "taskmanager", holder, o.tmToken, c.tmBase, o.tlsDir(holder), o.confDir(holder))
	stranger := dist.startTaskManager(t, other+"-"+holder, holder, o.confDir(holder))
	defer stranger.stop(t)
	strangerLog := filepath.Join(dist.work, other+"-"+holder+".log")
	// Both ends must show the refused handshake: the stranger cannot verify
	// the JobManager (unknown CA), and the JobManager gets no acceptable
	// client certificate from it.
	logs := []string{strangerLog, jmLog}
	from := []int{0, jmFrom}
	evidence := make([]string, len(logs))
	err := waitFor(60*time.Second, 500*time.Millisecond, func() error {
		missing := 0
		for i, f := range logs {
			b, _ := os.ReadFile(f)
			b = b[min(from[i], len(b)):]
			if loc := handshakeFailure.FindIndex(b); loc != nil {
				evidence[i] = lineAround(b, loc[0])
			} else {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if !stranger.alive() {
			return fmt.Errorf("the stranger TaskManager exited: %v", stranger.err)
		}
		return fmt.Errorf("%w: %d of the logs show no handshake failure", errNotYet, missing)
	})
	if err != nil {
		t.Fatalf("no TLS handshake failure in both %s and %s: %v", strangerLog, jmLog, err)
	}
	for i, f := range logs {
		t.Logf("handshake failure in %s: %s", filepath.Base(f), evidence[i])
	}
	time.Sleep(3 * time.Second) // give a wrongly accepted registration time to show
	got, err := c.rest.taskManagers()
	if err != nil {
		t.Fatal(err)
	}
	if _, in := got[holder]; in || len(got) != 2 {
		t.Fatalf("the JobManager lists %d TaskManagers (%v) after the stranger started; want only tm-1 and tm-2", len(got), keys(got))
	}
}

func keys(m map[string]taskManager) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
