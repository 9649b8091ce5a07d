package main

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fileSetPKCS12 is the visible file set of a PKCS#12 issuance.
var fileSetPKCS12 = []string{"ca.crt", "flink-ssl.yaml", "keystore.p12", "keystore.password", "tls.crt", "tls.key", "truststore.p12", "truststore.password"}

// visibleSet returns the visible names in an output directory (the hidden
// "..data" machinery of the atomic writer left out), failing the test when
// a visible name cannot be read.
func visibleSet(t testing.TB, dir string) []string {
	t.Helper()
	var names []string
	for _, n := range entries(t, dir) {
		if strings.HasPrefix(n, "..") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, n))
		if fi, lerr := os.Lstat(filepath.Join(dir, n)); errors.Is(err, fs.ErrNotExist) && lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			// A name whose link does not resolve yet is not there to a
			// reader: the set appears when ..data is renamed into place.
			continue
		}
		if err != nil || len(b) == 0 {
			t.Fatalf("%s/%s is visible but unreadable or empty: %v", dir, n, err)
		}
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// wholeOrNothing fails unless dir holds the whole file set or none of it,
// and reports whether it was whole.
func wholeOrNothing(t testing.TB, dir string) bool {
	t.Helper()
	got := visibleSet(t, dir)
	if len(got) == 0 {
		return false
	}
	if !slices.Equal(got, fileSetPKCS12) {
		t.Fatalf("%s holds a partial file set: %v", dir, got)
	}
	return true
}

// leafSerial reads the serial of the leaf in dir/tls.crt, formatted as the
// holder records show it.
func leafSerial(t testing.TB, dir string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(raw)
	if b == nil {
		t.Fatalf("%s/tls.crt holds no PEM block", dir)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.Text(16)
}

// holderSerials reads "holder list -o json" as holder name -> serial.
func holderSerials(t testing.TB, r result) map[string]string {
	t.Helper()
	var list struct {
		Holders []struct {
			Name   string `json:"name"`
			Serial string `json:"serial"`
		} `json:"holders"`
	}
	if err := json.Unmarshal([]byte(r.ok(t).stdout), &list); err != nil {
		t.Fatalf("holder list -o json: %v\n%s", err, r.stdout)
	}
	out := map[string]string{}
	for _, h := range list.Holders {
		out[h.Name] = h.Serial
	}
	return out
}

func newRNG(t testing.TB) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	return rand.New(rand.NewPCG(seed, 0x5eed))
}

// TestAServerKilledUnderIssuanceLoadLosesNothingAndRecordsOnlyReturnedLeaves
// kills the real server with SIGKILL while eight init clients enroll, starts
// it again on the same directory and port, and lets the clients retry to
// the end. No committed state may be lost or half-written, and every holder
// record must name the leaf its client finally wrote, never one that was
// signed and committed but whose answer was lost in the crash.
func TestAServerKilledUnderIssuanceLoadLosesNothingAndRecordsOnlyReturnedLeaves(t *testing.T) {
	rng := newRNG(t)
	p := startProcServer(t)
	p.cli(t, p.admin, "cluster", "create", "crash").ok(t)
	p.cli(t, p.admin, "cluster", "create", "bystander", "--key-type", "rsa-2048").ok(t)
	tok := p.asServer().tokenFor(t, "crash", "taskmanager", "--uses", "1000", "--ttl", "1h")
	clustersBefore := p.cli(t, p.admin, "cluster", "list", "-o", "json").ok(t).stdout

	const workers, perWorker = 8, 4
	outs := t.TempDir()
	var issued atomic.Int64
	var wg sync.WaitGroup
	retried := make(chan string, workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				holder := fmt.Sprintf("tm-%d-%d", w, i)
				r := p.cli(t, "", "init", "--cluster", "crash", "--role", "taskmanager", "--holder", holder,
					"--out", filepath.Join(outs, holder), "--token-file", tok, "--timeout", "60s")
				if r.code != 0 {
					t.Errorf("an init did not get through the crash: %s: exit %d: %s", holder, r.code, r.stderr)
					return
				}
				if strings.Contains(r.stderr, "retrying") {
					retried <- holder
				}
				issued.Add(1)
			}
		})
	}
	killAt := int64(1 + rng.IntN(workers*perWorker/2))
	waitUntil(t, fmt.Sprintf("%d issuances", killAt), &wg, func() bool { return issued.Load() >= killAt })
	time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
	p.kill(t)
	t.Logf("killed the server after %d of %d issuances", issued.Load(), workers*perWorker)
	p.start(t)
	wg.Wait()
	close(retried)
	t.Logf("%d inits retried through the crash", len(retried))
	if t.Failed() {
		t.FailNow()
	}

	if after := p.cli(t, p.admin, "cluster", "list", "-o", "json").ok(t).stdout; after != clustersBefore {
		t.Errorf("clusters or CAs changed across the crash:\nbefore %s\nafter  %s", clustersBefore, after)
	}
	p.cli(t, p.admin, "audit", "verify").ok(t)
	validLineages(t, readCAStatus(t, p.cli(t, p.admin, "ca", "status", "--cluster", "crash", "-o", "json")))
	validLineages(t, readCAStatus(t, p.cli(t, p.admin, "ca", "status", "--cluster", "bystander", "-o", "json")))
	serials := holderSerials(t, p.cli(t, p.admin, "holder", "list", "--cluster", "crash", "-o", "json"))
	if len(serials) != workers*perWorker {
		t.Errorf("%d holder records, want %d: %v", len(serials), workers*perWorker, serials)
	}
	for holder, serial := range serials {
		dir := filepath.Join(outs, holder)
		if !wholeOrNothing(t, dir) {
			t.Errorf("holder %s is recorded but its client wrote no file set", holder)
			continue
		}
		if got := leafSerial(t, dir); got != serial {
			t.Errorf("holder %s is recorded with serial %s, but its client holds the leaf %s", holder, serial, got)
		}
	}
	for _, holder := range entries(t, outs) {
		if _, recorded := serials[holder]; !wholeOrNothing(t, filepath.Join(outs, holder)) && recorded {
			t.Errorf("out dir of recorded holder %s is empty", holder)
		}
	}
	if code := p.term(t); code != 0 {
		t.Errorf("server exited %d on SIGTERM:\n%s", code, p.log.String())
	}
	checkBoltFile(t, p.dir)
}

// rotationStep is one step of the CA rotation protocol with the lineage
// states (as counts) before and after it.
type rotationStep struct {
	name          string
	before, after map[string]int
}

var rotationSteps = []rotationStep{
	{"prepare", map[string]int{"active": 1}, map[string]int{"active": 1, "prepared": 1}},
	{"activate", map[string]int{"active": 1, "prepared": 1}, map[string]int{"active": 1, "retiring": 1}},
	{"retire", map[string]int{"active": 1, "retiring": 1}, map[string]int{"active": 1}},
}

func stateCounts(st caStatus, purpose string) map[string]int {
	n := map[string]int{}
	for _, l := range st.Lineages {
		if l.Purpose == purpose {
			for _, c := range l.CAs {
				n[c.State]++
			}
		}
	}
	return n
}

func sameCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// rotationRounds is how often each rotation step is interrupted.
const rotationRounds = 5

// TestAServerKilledDuringEachRotationStepKeepsAValidLineage kills the real
// server a random 0-50 ms into each rotation step, rotationRounds times. After
// every restart the lineage must be the state before the step or the state
// after it (after it, when the step was acknowledged), and the step must
// then complete.
func TestAServerKilledDuringEachRotationStepKeepsAValidLineage(t *testing.T) {
	rng := newRNG(t)
	p := startProcServer(t, "--rotation-interval", "0")
	p.cli(t, p.admin, "cluster", "create", "rot").ok(t)
	status := func() caStatus {
		return readCAStatus(t, p.cli(t, p.admin, "ca", "status", "--cluster", "rot", "-o", "json"))
	}
	landed := 0
	for round := range rotationRounds {
		for _, step := range rotationSteps {
			if got := stateCounts(status(), "internal"); !sameCounts(got, step.before) {
				t.Fatalf("round %d: before %s the lineage is %v, want %v", round, step.name, got, step.before)
			}
			done := make(chan result, 1)
			go func() { done <- p.cli(t, p.admin, "ca", step.name, "--cluster", "rot") }()
			// A step takes a few milliseconds, so the delays lean towards
			// zero to land inside it as often as after it.
			u := rng.Float64()
			delay := time.Duration(u * u * u * float64(50*time.Millisecond)).Round(100 * time.Microsecond)
			time.Sleep(delay)
			p.kill(t)
			r := <-done
			t.Logf("round %d %s: killed after %s; client exit %d", round, step.name, delay, r.code)
			p.start(t)
			st := status()
			validLineages(t, st)
			got := stateCounts(st, "internal")
			switch {
			case sameCounts(got, step.after):
				landed++
			case r.code == 0:
				t.Fatalf("round %d: %s was acknowledged but lost in the crash: lineage %v", round, step.name, got)
			case sameCounts(got, step.before):
				p.cli(t, p.admin, "ca", step.name, "--cluster", "rot").ok(t)
			default:
				t.Fatalf("round %d: after a crash in %s the lineage is %v (%s), neither before nor after the step",
					round, step.name, got, lineageStates(st, "internal"))
			}
			if got := stateCounts(status(), "internal"); !sameCounts(got, step.after) {
				t.Fatalf("round %d: %s could not be completed after the crash: lineage %v", round, step.name, got)
			}
		}
	}
	t.Logf("%d of %d steps had committed when the server was killed", landed, rotationRounds*len(rotationSteps))
	p.cli(t, p.admin, "audit", "verify").ok(t)
	out := filepath.Join(t.TempDir(), "out")
	p.cli(t, p.admin, "bake", "--cluster", "rot", "--role", "jobmanager", "--holder", "jm-0", "--out", out).ok(t)
}

// TestAKilledInitLeavesTheWholeFileSetOrNothing kills the real init
// process at random instants of its run: its output directory must then
// hold the whole file set or nothing, and a later init must still succeed
// there.
func TestAKilledInitLeavesTheWholeFileSetOrNothing(t *testing.T) {
	rng := newRNG(t)
	p := startProcServer(t)
	p.cli(t, p.admin, "cluster", "create", "kinit").ok(t)
	tok := p.asServer().tokenFor(t, "kinit", "taskmanager", "--uses", "100", "--ttl", "1h")
	killed, whole, rounds := 0, 0, 0
	var out string
	// At least 10 rounds, and more (up to 30) until 3 inits were killed
	// mid-flight: an init takes only a few milliseconds here, so a kill
	// often lands after it has finished.
	for ; rounds < 10 || (killed < 3 && rounds < 30); rounds++ {
		out = filepath.Join(t.TempDir(), "out")
		cmd := exec.Command(p.bin, "init", "--cluster", "kinit", "--role", "taskmanager", "--holder", fmt.Sprintf("tm-%d", rounds),
			"--out", out, "--server", p.addr, "--ca-file", p.caFile, "--token-file", tok, "--timeout", "10s")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The delays lean towards zero, to land inside the run as often as
		// after it.
		u := rng.Float64()
		time.Sleep(time.Duration(u * u * u * float64(80*time.Millisecond)))
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			killed++
		}
		if wholeOrNothing(t, out) {
			whole++
		}
	}
	p.cli(t, "", "init", "--cluster", "kinit", "--role", "taskmanager", "--holder", "tm-last",
		"--out", out, "--token-file", tok).ok(t)
	if !wholeOrNothing(t, out) {
		t.Errorf("an init after a killed one wrote nothing")
	}
	t.Logf("%d of %d inits were killed mid-flight; %d file sets were whole", killed, rounds, whole)
	if killed == 0 {
		t.Errorf("no init was killed mid-flight; the test proved nothing")
	}
}
