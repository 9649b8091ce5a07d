//go:build flinke2e

package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// tlsMaterial is one flinkpki file set (tls.crt, tls.key, ca.crt) as Go
// needs it to speak TLS to Flink.
type tlsMaterial struct {
	cert  *tls.Certificate
	roots *x509.CertPool
}

// loadMaterial reads the PEM half of a file set written by init or bake.
func loadMaterial(dir string) (tlsMaterial, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		return tlsMaterial{}, fmt.Errorf("load key pair from %s: %w", dir, err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return tlsMaterial{}, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return tlsMaterial{}, fmt.Errorf("no CA certificate in %s/ca.crt", dir)
	}
	return tlsMaterial{cert: &cert, roots: roots}, nil
}

// restClient is an HTTPS client for Flink's REST API. With a nil client
// certificate it presents none.
func restClient(roots *x509.CertPool, cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

// flinkREST reads the JobManager's REST API with the rest-client material.
type flinkREST struct {
	client *http.Client
	base   string
}

func (r flinkREST) get(path string, into any) error {
	resp, err := r.client.Get(r.base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	return json.Unmarshal(body, into)
}

// taskManager is the part of /taskmanagers the test looks at.
type taskManager struct {
	ID       string `json:"id"`
	DataPort int    `json:"dataPort"`
	Slots    int    `json:"slotsNumber"`
}

// taskManagers lists the registered TaskManagers by resource id.
func (r flinkREST) taskManagers() (map[string]taskManager, error) {
	var body struct {
		TaskManagers []taskManager `json:"taskmanagers"`
	}
	if err := r.get("/taskmanagers", &body); err != nil {
		return nil, err
	}
	out := map[string]taskManager{}
	for _, tm := range body.TaskManagers {
		out[tm.ID] = tm
	}
	return out, nil
}

// waitTaskManagers waits until exactly the named TaskManagers are registered.
func (r flinkREST) waitTaskManagers(timeout time.Duration, want ...string) (map[string]taskManager, error) {
	sort.Strings(want)
	var got map[string]taskManager
	err := waitFor(timeout, 300*time.Millisecond, func() error {
		var err error
		got, err = r.taskManagers()
		if err != nil {
			return err
		}
		ids := make([]string, 0, len(got))
		for id := range got {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		if fmt.Sprint(ids) != fmt.Sprint(want) {
			return fmt.Errorf("%w: registered TaskManagers %v, want %v", errNotYet, ids, want)
		}
		return nil
	})
	return got, err
}
