package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/store"
)

// pemCerts parses every certificate of a PEM bundle (none for none).
func pemCerts(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	certs, err := parseCertBundle(data)
	if err != nil && !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Fatal(err)
	}
	return certs
}

// writeAnchor writes a client's trust anchor file name in dir.
func writeAnchor(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// reachWith lists s's clusters with anchor as the client's --ca-file.
func reachWith(t *testing.T, s *testServer, anchor string) result {
	t.Helper()
	return runCLI(t, map[string]string{"FLINKPKI_SERVER": s.addr, "FLINKPKI_CA_FILE": anchor, "FLINKPKI_TOKEN_FILE": s.admin}, "cluster", "list")
}

// servingStates is admin serving-ca status -o json's states and IDs, in order.
func servingStates(t *testing.T, dir string) []string {
	t.Helper()
	r := runCLI(t, nil, "admin", "serving-ca", "status", "--data-dir", dir, "--kek-file", filepath.Join(dir, "kek"), "-o", "json").ok(t)
	var got struct {
		ServingCAs []servingCAJSON `json:"serving_cas"`
		PEM        string          `json:"pem"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	var out []string
	for i, c := range got.ServingCAs {
		if fp := ca.Fingerprint(pemCerts(t, []byte(got.PEM))[i]); fp != c.SHA256Fingerprint {
			t.Errorf("status row %d names %s, its PEM is %s", i, c.SHA256Fingerprint, fp)
		}
		out = append(out, c.State+":"+c.ID)
	}
	return out
}

// TestTheServingCAIsReplacedWithoutBreakingClients: the server's own
// serving CA (every client's server-ca.crt) goes through prepare, activate
// and retire with the server stopped in between (bbolt). A client that
// holds the bundle printed at prepare reaches the server at every step; a
// client that kept the old anchor alone does until the activation, and
// then fails as an unknown authority; the new anchor alone works from the
// activation on. Refused steps change nothing, and every step is audited.
func TestTheServingCAIsReplacedWithoutBreakingClients(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir)
	s.cli(t, s.admin, "cluster", "create", "orders").ok(t)
	oldAnchor, err := os.ReadFile(s.caFile)
	if err != nil {
		t.Fatal(err)
	}
	s.stop(t)
	anchors := t.TempDir()
	write := func(name string, data []byte) string { return writeAnchor(t, anchors, name, data) }
	oldOnly := write("old.crt", oldAnchor)
	step := func(name string, args ...string) result {
		t.Helper()
		return runCLI(t, nil, append([]string{"admin", "serving-ca", name, "--data-dir", dir, "--kek-file", filepath.Join(dir, "kek")}, args...)...)
	}
	dbFile := filepath.Join(dir, dbFileName)
	unchanged := func(what string, r result, want string) {
		t.Helper()
		before, _ := os.ReadFile(dbFile)
		r.refused(t, want)
		if after, _ := os.ReadFile(dbFile); string(after) != string(before) || r.stdout != "" {
			t.Fatalf("a refused %s changed the store or printed %q", what, r.stdout)
		}
	}
	reach := func(s *testServer, anchor string) result { t.Helper(); return reachWith(t, s, anchor) }

	unchanged("activate", step("activate"), "no serving CA is prepared")
	unchanged("retire", step("retire"), "no serving CA is retiring")

	r := step("prepare").ok(t)
	bundle := pemCerts(t, []byte(r.stdout))
	if len(bundle) != 2 || !bundle[0].Equal(pemCerts(t, oldAnchor)[0]) || !strings.Contains(r.stderr, "prepared serving CA "+ca.Fingerprint(bundle[1])) {
		t.Fatalf("prepare printed %d certificates (want the active one, then the new one), said %q", len(bundle), r.stderr)
	}
	if onDisk, _ := os.ReadFile(s.caFile); string(onDisk) != r.stdout {
		t.Fatal("prepare left the data directory's server-ca.crt without the new serving CA")
	}
	var printed serverCAJSON
	if err := json.Unmarshal([]byte(runCLI(t, nil, "server-ca", "--data-dir", dir, "-o", "json").ok(t).stdout), &printed); err != nil {
		t.Fatal(err)
	}
	if len(printed.Certificates) != 2 || printed.SHA256Fingerprint != ca.Fingerprint(bundle[0]) || printed.Certificates[1].SHA256Fingerprint != ca.Fingerprint(bundle[1]) {
		t.Fatalf("server-ca -o json during the replacement: %+v; want both CAs, the active one first and in the top-level fields", printed)
	}
	both := write("both.crt", []byte(r.stdout))
	newOnly := write("new.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: bundle[1].Raw}))
	unchanged("second prepare", step("prepare"), "is prepared already")
	// --out is written only when the step is done: a refused one leaves the
	// file clients read as it was (a shell's > would have emptied it).
	published := write("published.crt", []byte(r.stdout))
	unchanged("second prepare with --out", step("prepare", "--out", published), "is prepared already")
	if got, _ := os.ReadFile(published); string(got) != r.stdout {
		t.Fatal("a refused prepare changed its --out file")
	}
	if got := servingStates(t, dir); !slices.Equal(got, []string{"active:server", "prepared:server-2"}) {
		t.Fatalf("after prepare: %v", got)
	}

	s = startServer(t, dir)
	reach(s, oldOnly).ok(t)
	reach(s, both).ok(t)
	s.stop(t)

	r = step("activate", "--out", published).ok(t)
	if got := pemCerts(t, func() []byte { d, _ := os.ReadFile(published); return d }()); len(got) != 2 || !got[0].Equal(bundle[1]) || !got[1].Equal(bundle[0]) {
		t.Fatalf("activate wrote %d certificates to --out; want the new CA, then the old one", len(got))
	}
	if !strings.Contains(r.stdout, "retiring") || strings.Contains(r.stdout, "BEGIN CERTIFICATE") {
		t.Fatalf("activate --out printed %q; want the serving CAs' table, not the PEM", r.stdout)
	}
	if got := servingStates(t, dir); !slices.Equal(got, []string{"active:server-2", "retiring:server"}) {
		t.Fatalf("after activate: %v", got)
	}
	unchanged("prepare while one retires", step("prepare"), "is still retiring")

	s = startServer(t, dir)
	reach(s, both).ok(t)
	reach(s, newOnly).ok(t)
	if r := reach(s, oldOnly); r.code != 1 || !strings.Contains(r.stderr, "not signed by a CA this client trusts") {
		t.Fatalf("a client that kept the old anchor alone after the activation: exit %d, %s; want an unknown authority", r.code, r.stderr)
	}
	s.stop(t)

	r = step("retire").ok(t)
	if got := pemCerts(t, []byte(r.stdout)); len(got) != 1 || !got[0].Equal(bundle[1]) {
		t.Fatalf("retire printed %d certificates; want the new CA alone", len(got))
	}
	if got := servingStates(t, dir); !slices.Equal(got, []string{"active:server-2"}) {
		t.Fatalf("after retire: %v", got)
	}
	s = startServer(t, dir)
	reach(s, newOnly).ok(t)
	reach(s, both).ok(t)

	var list auditList
	if err := json.Unmarshal([]byte(s.cli(t, s.admin, "audit", "list", "-o", "json").ok(t).stdout), &list); err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, e := range list.Entries {
		if strings.HasPrefix(e.Action, "serving-ca.") {
			if e.Actor != servingActor || e.Details["fingerprint"] == "" {
				t.Errorf("audit entry %+v: want actor %s and the CA's fingerprint", e, servingActor)
			}
			steps = append(steps, e.Action)
		}
	}
	if want := []string{"serving-ca.prepare", "serving-ca.activate", "serving-ca.retire"}; !slices.Equal(steps, want) {
		t.Errorf("audited serving CA steps %v, want %v", steps, want)
	}
}

// TestARunningServerSwitchesToAnActivatedServingCA: on etcd the replicas
// keep running while another process activates a serving CA; each one's
// check (every servingCertCheck) sees that the store's active serving CA
// no longer signs its certificate, makes one from it, and brings its
// server-ca.crt up to date. Until then it keeps its certificate and
// changes nothing. A check that cannot read the store keeps the
// certificate and says what failed; a server-ca.crt that cannot be written
// does not hold the switch back. Run here on a bbolt store opened the way
// a replica holds it.
func TestARunningServerSwitchesToAnActivatedServingCA(t *testing.T) {
	dir := t.TempDir()
	kek := writeKEK(t, dir, "kek")
	st := openBoltStore(t, filepath.Join(dir, dbFileName), kek)
	defer st.Close()
	ctx := context.Background()
	now := time.Now()
	first, firstCA, err := serverIdentity(ctx, st, dir, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	var storeDown error
	serving := servingCertOn(ctx, st, dir, nil, first, firstCA)
	load := serving.load
	serving.load = func() (*servingCAs, error) {
		if storeDown != nil {
			return nil, storeDown
		}
		return load()
	}
	caFile := filepath.Join(dir, serverCAFileName)
	anchors := func() int { data, _ := os.ReadFile(caFile); return len(pemCerts(t, data)) }
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	checks := 0
	check := func() string {
		t.Helper()
		logs.Reset()
		checks++
		serving.check(now.Add(time.Duration(checks)*servingCertCheck), servingCertCheck, log)
		return logs.String()
	}
	step := func(name string, step servingStep, force bool) error {
		_, _, err := runServingStep(ctx, st, name, step, true, force)
		return err
	}

	if l := check(); l != "" || anchors() != 1 || serving.cur.Load() != first {
		t.Fatalf("nothing changed, yet the check logged %q (%d anchors)", l, anchors())
	}
	if err := step("prepare", prepareServingCA, false); err != nil {
		t.Fatal(err)
	}
	if l := check(); l != "" || anchors() != 2 || serving.cur.Load() != first {
		t.Fatalf("after prepare: logged %q, %d anchors; want the certificate kept and both CAs in server-ca.crt", l, anchors())
	}
	if err := step("activate", activateServingCA, false); err != nil {
		t.Fatal(err)
	}
	storeDown = errors.New("etcdserver: request timed out")
	if l := check(); !strings.Contains(l, "could not check which serving CA signs") || strings.Contains(l, "was not renewed") || serving.cur.Load() != first {
		t.Fatalf("a check that could not read the store logged %q; want it named as such, and the certificate kept", l)
	}
	storeDown = nil
	// server-ca.crt can no longer be written (here a directory holds its
	// name; a full volume would do): the switch still happens, and the
	// file's failure is a warning.
	if err := os.Remove(caFile); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(caFile, "in-the-way"), 0o700); err != nil {
		t.Fatal(err)
	}
	l := check()
	if err := os.RemoveAll(caFile); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(l, "could not bring server-ca.crt up to date") {
		t.Errorf("a server-ca.crt that cannot be written: logged %q; want a warning", l)
	}
	leaf := serving.cur.Load().Leaf
	if !strings.Contains(l, "serving certificate renewed") || leaf.CheckSignatureFrom(firstCA) == nil || leaf.CheckSignatureFrom(serving.ca.Load()) != nil || serving.ca.Load().Equal(firstCA) {
		t.Fatalf("after activate the check logged %q; want a certificate signed by the activated serving CA", l)
	}
	renewed := serving.cur.Load()
	if l := check(); l != "" || serving.cur.Load() != renewed || anchors() != 2 { // the file written again
		t.Fatalf("the next check logged %q, renewed again or lost an anchor (%d)", l, anchors())
	}

	// Retiring on etcd waits for three checks of every replica, unless forced.
	err = step("retire", retireServingCA, false)
	if err == nil || !strings.Contains(err.Error(), "running replicas switch to it at their next check (every 5m)") {
		t.Fatalf("retire on etcd right after the activation: %v; want it refused until the replicas' checks", err)
	}
	if err := step("retire", retireServingCA, true); err != nil {
		t.Fatal(err)
	}
	if l := check(); l != "" || anchors() != 1 || serving.cur.Load() != renewed {
		t.Fatalf("after retire: logged %q, %d anchors; want the new CA alone in server-ca.crt", l, anchors())
	}
	err = st.View(ctx, func(tx *store.Txn) error {
		_, err := tx.ServingCA(store.ServingRetiring)
		return err
	})
	if err == nil {
		t.Fatal("the retired serving CA is still in the store")
	}
}

// TestTheServingCAIsReplacedOnEtcdWhileReplicasRun: on an HA installation
// the steps run while the replicas serve. A replica that has not had its
// check since the activation still presents a certificate of the
// old CA, and one started since presents the new CA's: a client that holds
// the bundle reaches both, so the fleet may switch one replica at a time.
// retire is refused until the replicas' checks are due, or forced once
// every replica has restarted.
func TestTheServingCAIsReplacedOnEtcdWhileReplicasRun(t *testing.T) {
	h := newHAStore(t)
	a, b := h.replica(t), h.replica(t)
	oldAnchor, err := os.ReadFile(a.caFile)
	if err != nil {
		t.Fatal(err)
	}
	anchors := t.TempDir()
	write := func(name string, data []byte) string { return writeAnchor(t, anchors, name, data) }
	step := func(name string, args ...string) result {
		t.Helper()
		return runCLI(t, nil, append([]string{"admin", "serving-ca", name, "--etcd-endpoints", strings.Join(h.etcd.Endpoints(), ","),
			"--etcd-prefix", h.prefix, "--kek-file", h.kek}, args...)...)
	}
	reach := func(s *testServer, anchor string) result { t.Helper(); return reachWith(t, s, anchor) }
	oldOnly := write("old.crt", oldAnchor)
	both := write("both.crt", []byte(step("prepare").ok(t).stdout))
	reach(a, both).ok(t)
	r := step("activate").ok(t)
	if !strings.Contains(r.stderr, "running replicas switch to it within 5m") {
		t.Errorf("activate on etcd said %q; want when the running replicas switch", r.stderr)
	}
	newCA := pemCerts(t, []byte(r.stdout))[0]
	newOnly := write("new.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: newCA.Raw}))
	before := h.revision(t)
	oneLineError(t, step("retire"), 1, "running replicas switch to it at their next check")
	if h.revision(t) != before {
		t.Fatal("a refused retire wrote to etcd")
	}

	reach(a, oldOnly).ok(t) // no check since the activation: the old CA's certificate
	a.stop(t)
	c := h.replica(t)
	reach(c, newOnly).ok(t)
	reach(c, both).ok(t)
	reach(b, both).ok(t) // the fleet, half switched, serves the bundle's holders
	if got := pemCerts(t, func() []byte { d, _ := os.ReadFile(c.caFile); return d }()); len(got) != 2 || !got[0].Equal(newCA) {
		t.Fatalf("a replica started after the activation wrote %d certificates to its server-ca.crt; want the new CA first, then the old", len(got))
	}
	if r := reach(c, oldOnly); r.code != 1 {
		t.Fatalf("the old anchor alone reached a replica that serves the new CA: %+v", r)
	}
	b.stop(t)
	if got := pemCerts(t, []byte(step("retire", "--force").ok(t).stdout)); len(got) != 1 || !got[0].Equal(newCA) {
		t.Fatalf("retire --force printed %d certificates; want the new CA alone", len(got))
	}
	reach(h.replica(t), newOnly).ok(t)
}
