//go:build flinke2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// flinkCluster is one standalone Flink session cluster whose every process
// is configured only by what `flinkpki init` wrote from a base configuration.
type flinkCluster struct {
	dist     *flinkDist
	pki      *pki
	name     string // flinkpki cluster name
	work     string
	jmBase   string // base conf of the JobManager: loopback, memory, REST TLS
	tmBase   string // base conf of the TaskManagers: loopback, memory
	client   string // Flink client conf dir: REST address and rest-client TLS
	jmToken  string
	tmToken  string
	tmSANs   []string // extra init flags naming the host a TaskManager is reached by
	tlsFlags []string // bake and init flags every process of the cluster shares (--tls-protocol)
	restPort int
	rpcPort  int
	blobPort int
	rest     flinkREST
	procs    map[string]*proc
}

// baseConfig is the small configuration every process starts from: loopback
// addresses, small memory, two slots per TaskManager and no ssl keys.
func baseConfig(rpcPort, restPort, blobPort int) string {
	return fmt.Sprintf(`jobmanager.rpc.address: 127.0.0.1
jobmanager.rpc.port: %d
jobmanager.bind-host: 127.0.0.1
jobmanager.memory.process.size: 768m
taskmanager.host: 127.0.0.1
taskmanager.bind-host: 127.0.0.1
taskmanager.numberOfTaskSlots: 2
taskmanager.memory.process.size: 1200m
taskmanager.memory.managed.fraction: 0.1
rest.address: 127.0.0.1
rest.bind-address: 127.0.0.1
rest.port: %d
blob.server.port: %d
heartbeat.interval: 2000
heartbeat.timeout: 10000
cluster.registration.max-timeout: 3000
cluster.registration.error-delay: 2000
cluster.registration.refused-registration-delay: 2000
slot.request.timeout: 60000
restart-strategy.type: none
`, rpcPort, restPort, blobPort)
}

// writeConf writes config.yaml into a fresh directory.
func writeConf(t testing.TB, dir, content string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("create %s: %v", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(content), 0o600); err != nil {
		t.Fatalf("write %s/config.yaml: %v", dir, err)
	}
}

// readSecret reads a password file written by flinkpki.
func readSecret(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return strings.TrimSpace(string(b))
}

// sslLine picks one key's line out of a flink-ssl.yaml written by flinkpki.
func sslLine(t testing.TB, dir, key string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "flink-ssl.yaml"))
	if err != nil {
		t.Fatalf("read flink-ssl.yaml: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, key+":") {
			return line
		}
	}
	t.Fatalf("%s/flink-ssl.yaml has no %s", dir, key)
	return ""
}

// restSSL renders the security.ssl.rest.* keys for one baked REST file set.
// bake writes the stores and passwords; the REST keys are ours to merge, as
// the README explains (init merges only the internal keys).
func restSSL(t testing.TB, dir string) string {
	t.Helper()
	ks := readSecret(t, filepath.Join(dir, "keystore.password"))
	ts := readSecret(t, filepath.Join(dir, "truststore.password"))
	return fmt.Sprintf(`security.ssl.rest.enabled: true
security.ssl.rest.authentication-enabled: true
security.ssl.rest.keystore: %s
security.ssl.rest.keystore-password: %s
security.ssl.rest.key-password: %s
security.ssl.rest.truststore: %s
security.ssl.rest.truststore-password: %s
`, filepath.Join(dir, "keystore.p12"), ks, ks, filepath.Join(dir, "truststore.p12"), ts)
}

// newFlinkCluster creates the flinkpki cluster, bakes the REST material and
// writes the base configurations; no Flink process runs yet.
func newFlinkCluster(t testing.TB, dist *flinkDist, p *pki, name, keyType string, tlsFlags ...string) *flinkCluster {
	t.Helper()
	c := &flinkCluster{dist: dist, pki: p, name: name, work: filepath.Join(dist.work, name), tlsFlags: tlsFlags,
		restPort: freePort(t), rpcPort: freePort(t), blobPort: freePort(t), procs: map[string]*proc{}}
	p.must(t, "cluster", "create", name, "--key-type", keyType)
	c.jmToken = p.token(t, name, "jobmanager")
	c.tmToken = p.token(t, name, "taskmanager")

	restServer, restClientDir := filepath.Join(c.work, "rest-server"), filepath.Join(c.work, "rest-client")
	p.must(t, append([]string{"bake", "--cluster", name, "--role", "rest-server", "--holder", name + "-rest-server",
		"--out", restServer, "--dns", "localhost", "--ip", "127.0.0.1"}, tlsFlags...)...)
	p.must(t, append([]string{"bake", "--cluster", name, "--role", "rest-client", "--holder", name + "-rest-client", "--out", restClientDir}, tlsFlags...)...)

	base := baseConfig(c.rpcPort, c.restPort, c.blobPort)
	c.tmBase, c.jmBase, c.client = filepath.Join(c.work, "base-tm"), filepath.Join(c.work, "base-jm"), filepath.Join(c.work, "client-conf")
	writeConf(t, c.tmBase, base)
	writeConf(t, c.jmBase, base+restSSL(t, restServer))
	writeConf(t, c.client, fmt.Sprintf("rest.address: 127.0.0.1\nrest.port: %d\n%s%s\n%s\n", c.restPort,
		restSSL(t, restClientDir), sslLine(t, restClientDir, "security.ssl.protocol"), sslLine(t, restClientDir, "security.ssl.algorithms")))

	m, err := loadMaterial(restClientDir)
	if err != nil {
		t.Fatal(err)
	}
	c.rest = flinkREST{client: restClient(m.roots, m.cert), base: fmt.Sprintf("https://127.0.0.1:%d", c.restPort)}
	return c
}

func (c *flinkCluster) tlsDir(holder string) string  { return filepath.Join(c.work, holder, "tls") }
func (c *flinkCluster) confDir(holder string) string { return filepath.Join(c.work, holder, "conf") }

// startJM enrolls the JobManager holder and starts it from its own conf.
func (c *flinkCluster) startJM(t testing.TB, holder string) {
	t.Helper()
	c.pki.initHolder(t, c.name, "jobmanager", holder, c.jmToken, c.jmBase, c.tlsDir(holder), c.confDir(holder), c.tlsFlags...)
	c.procs[holder] = c.dist.startJobManager(t, c.name+"-"+holder, c.confDir(holder))
}

// startTM enrolls a TaskManager holder and starts it from its own conf.
func (c *flinkCluster) startTM(t testing.TB, holder string) {
	t.Helper()
	c.pki.initHolder(t, c.name, "taskmanager", holder, c.tmToken, c.tmBase, c.tlsDir(holder), c.confDir(holder), append(slices.Clone(c.tmSANs), c.tlsFlags...)...)
	c.procs[holder] = c.dist.startTaskManager(t, c.name+"-"+holder, holder, c.confDir(holder))
}

// stop stops the named processes.
func (c *flinkCluster) stop(t testing.TB, holders ...string) {
	t.Helper()
	for _, h := range holders {
		if p := c.procs[h]; p != nil {
			p.stop(t)
		}
	}
}

// waitTMs fails the test unless exactly the named TaskManagers register.
func (c *flinkCluster) waitTMs(t testing.TB, want ...string) map[string]taskManager {
	t.Helper()
	got, err := c.rest.waitTaskManagers(90*time.Second, want...)
	if err != nil {
		t.Fatalf("cluster %s: %v (logs in %s)", c.name, err, c.dist.work)
	}
	return got
}

// runJob submits the shuffle job with Flink's client and requires FINISHED.
func (c *flinkCluster) runJob(t testing.TB, parallelism int) {
	t.Helper()
	out, err := c.dist.submitJob(c.client, c.restPort, parallelism, 50_000)
	if err != nil {
		t.Fatalf("cluster %s: %v\n%s", c.name, err, out)
	}
	t.Logf("%s", out)
}
