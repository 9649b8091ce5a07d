//go:build flinke2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// jdkOpens are the module flags flink-dist's config.yaml passes to every
// Flink JVM on JDK 17 (env.java.opts.all); without flink-dist we pass them.
var jdkOpens = strings.Fields(`--add-exports=java.base/sun.net.util=ALL-UNNAMED
--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED
--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED
--add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED
--add-opens=java.base/java.io=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED
--add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.lang.reflect=ALL-UNNAMED
--add-opens=java.base/java.text=ALL-UNNAMED --add-opens=java.base/java.time=ALL-UNNAMED
--add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED
--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED
--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED`)

// startupFlags keep JVM start-up cheap on a 2-core machine.
var startupFlags = []string{"-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto"}

// flinkDist stands in for flink-dist: one Flink version's classpath (built
// by Maven from the modules), the job jar, and the log4j configuration.
type flinkDist struct {
	version   string
	classpath string
	jobJar    string
	log4j     string
	work      string

	mu      sync.Mutex
	memArgs map[string][2][]string // GET_JM/GET_TM_RESOURCE_PARAMS → JVM args, dynamic properties
}

// javaArgs is the common JVM command line for a Flink process.
func (d *flinkDist) javaArgs(logFile string, jvm []string, classpath string) []string {
	tmp := logFile + ".tmp"
	_ = os.MkdirAll(tmp, 0o700)
	args := []string{"java"}
	args = append(args, jvm...)
	args = append(args, startupFlags...)
	args = append(args, jdkOpens...)
	// FLINK_E2E_EXTRA_JVM_OPTS plays env.java.opts.all, e.g. to try a
	// workaround; run.sh prints it, so a green run never hides one.
	args = append(args, strings.Fields(os.Getenv("FLINK_E2E_EXTRA_JVM_OPTS"))...)
	return append(args, "-Dlog.file="+logFile, "-Dlog4j.configurationFile=file:"+d.log4j,
		"-Djava.io.tmpdir="+tmp, "-cp", classpath)
}

var bashJavaUtilsResult = regexp.MustCompile(`(?m)^BASH_JAVA_UTILS_EXEC_RESULT:(.*)$`)

// memoryArgs does what flink-dist's config.sh does before starting a
// JobManager or TaskManager: BashJavaUtils turns the memory options of the
// configuration into -Xmx/-Xms/direct/metaspace flags and into the dynamic
// properties that fix every memory component. The result depends only on
// the memory options, which all our processes share, so it is computed once.
func (d *flinkDist) memoryArgs(t testing.TB, command, confDir string) (jvm, dynamic []string) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if r, ok := d.memArgs[command]; ok {
		return r[0], r[1]
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	argv := append(d.javaArgs(filepath.Join(d.work, "bashjavautils.log"), nil, d.classpath),
		"org.apache.flink.runtime.util.bash.BashJavaUtils", command, "--configDir", confDir)
	out, _, err := runCmd(ctx, nil, argv...)
	if err != nil {
		t.Fatalf("BashJavaUtils %s: %v", command, err)
	}
	m := bashJavaUtilsResult.FindAllStringSubmatch(out, -1)
	if len(m) < 2 {
		t.Fatalf("BashJavaUtils %s printed no JVM and dynamic parameters: %q", command, out)
	}
	jvm, dynamic = strings.Fields(m[0][1]), strings.Fields(m[1][1])
	if d.memArgs == nil {
		d.memArgs = map[string][2][]string{}
	}
	d.memArgs[command] = [2][]string{jvm, dynamic}
	return jvm, dynamic
}

// startJobManager starts StandaloneSessionClusterEntrypoint from confDir
// (the directory flinkpki init wrote), as jobmanager.sh would.
func (d *flinkDist) startJobManager(t testing.TB, name, confDir string) *proc {
	t.Helper()
	jvm, dyn := d.memoryArgs(t, "GET_JM_RESOURCE_PARAMS", confDir)
	logFile := filepath.Join(d.work, name+".log")
	argv := append(d.javaArgs(logFile, jvm, d.classpath), "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint",
		"--configDir", confDir)
	argv = append(argv, dyn...)
	return startProc(t, name, argv, []string{"FLINK_CONF_DIR=" + confDir}, logFile+".out")
}

// startTaskManager starts TaskManagerRunner from confDir, as taskmanager.sh
// would; the resource id makes it recognisable in the REST API.
func (d *flinkDist) startTaskManager(t testing.TB, name, resourceID, confDir string) *proc {
	t.Helper()
	jvm, dyn := d.memoryArgs(t, "GET_TM_RESOURCE_PARAMS", confDir)
	logFile := filepath.Join(d.work, name+".log")
	argv := append(d.javaArgs(logFile, jvm, d.classpath), "org.apache.flink.runtime.taskexecutor.TaskManagerRunner",
		"--configDir", confDir)
	argv = append(argv, dyn...)
	argv = append(argv, "-D", "taskmanager.resource-id="+resourceID)
	return startProc(t, name, argv, []string{"FLINK_CONF_DIR=" + confDir}, logFile+".out")
}

// submitJob runs the SubmitJob client (Flink's own REST client) against the
// JobManager and waits for FINISHED; clientConf holds the client's REST TLS
// material.
func (d *flinkDist) submitJob(clientConf string, restPort, parallelism int, records int64) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	logFile := filepath.Join(d.work, "client.log")
	argv := append(d.javaArgs(logFile, []string{"-Xmx256m"}, d.classpath+":"+d.jobJar),
		"io.flinkpki.interop.SubmitJob", clientConf, "127.0.0.1", fmt.Sprint(restPort),
		fmt.Sprint(parallelism), fmt.Sprint(records), d.jobJar)
	out, _, err := runCmd(ctx, []string{"FLINK_CONF_DIR=" + clientConf}, argv...)
	if err != nil {
		return out, fmt.Errorf("job with parallelism %d did not finish (client log %s): %w", parallelism, logFile, err)
	}
	if !strings.Contains(out, "FINISHED") {
		return out, fmt.Errorf("job client exited 0 without reporting FINISHED: %q", out)
	}
	return strings.TrimSpace(out), nil
}
