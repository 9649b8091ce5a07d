// Command stepca-bench puts step-ca beside flinkpki on the same machine, so
// that make bench can report a same-run ratio rather than a figure from
// another day. It is a benchmark tool, not part of the product.
//
//	stepca-bench setup DIR --address 127.0.0.1:PORT
//	step-ca DIR/ca.json &
//	stepca-bench enroll --dir DIR --requests N --concurrency C [--fresh-connections] [-o json]
//
// setup writes what `step ca init` would: a P-256 root and intermediate, a
// badger database and one JWK provisioner whose private key the load
// generator holds. enroll then does per request what a step client does with
// a one-time token and what flinkpki bench enroll does for flinkpki: make a
// P-256 key, a CSR with the name as CN and DNS SAN, sign a one-time token
// (ES256, unique jti, so step-ca persists it against reuse), POST /1.0/sign,
// parse the chain, and assemble the same JKS file set in memory. The rows
// come from the same loadgen package, so they mean the same.
package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/flinkpki/flinkpki/credentials"
	"github.com/flinkpki/flinkpki/enroll"
	"github.com/flinkpki/flinkpki/internal/gctune"
	"github.com/flinkpki/flinkpki/internal/loadgen"
	"github.com/flinkpki/flinkpki/keystore"
)

const provisionerName = "bench"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: stepca-bench setup DIR --address HOST:PORT | enroll --dir DIR [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "setup":
		err = setupCmd(os.Args[2:])
	case "enroll":
		err = enrollCmd(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: use setup or enroll", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "stepca-bench:", err)
		os.Exit(1)
	}
}

func setupCmd(args []string) error {
	fs := flag.NewFlagSet("setup", flag.ContinueOnError)
	address := fs.String("address", "127.0.0.1:9443", "address step-ca listens on")
	if len(args) < 1 {
		return errors.New("setup needs a directory")
	}
	dir := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*address)
	if err != nil {
		return fmt.Errorf("--address %q: %w", *address, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	rootKey, rootCert, err := makeCA("bench step-ca root", nil, nil)
	if err != nil {
		return err
	}
	interKey, interCert, err := makeCA("bench step-ca intermediate", rootKey, rootCert)
	if err != nil {
		return err
	}
	interKeyDER, err := x509.MarshalECPrivateKey(interKey)
	if err != nil {
		return err
	}
	provKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	priv := jose.JSONWebKey{Key: provKey, Algorithm: string(jose.ES256), Use: "sig"}
	thumb, err := priv.Thumbprint(crypto.SHA256)
	if err != nil {
		return err
	}
	priv.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	pub := priv.Public()
	privJSON, err := priv.MarshalJSON()
	if err != nil {
		return err
	}
	pubJSON, err := pub.MarshalJSON()
	if err != nil {
		return err
	}
	conf := map[string]any{
		"root":     filepath.Join(dir, "root_ca.crt"),
		"crt":      filepath.Join(dir, "intermediate_ca.crt"),
		"key":      filepath.Join(dir, "intermediate_ca_key"),
		"address":  *address,
		"dnsNames": []string{host},
		"logger":   map[string]string{"format": "text"},
		"db":       map[string]string{"type": "badgerv2", "dataSource": filepath.Join(dir, "db")},
		"authority": map[string]any{
			"provisioners": []any{map[string]any{"type": "JWK", "name": provisionerName, "key": json.RawMessage(pubJSON)}},
		},
	}
	confJSON, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"root_ca.crt":         pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootCert.Raw}),
		"intermediate_ca.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: interCert.Raw}),
		"intermediate_ca_key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: interKeyDER}),
		"provisioner.json":    privJSON,
		"ca.json":             confJSON,
		"ca-url":              []byte("https://" + *address),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	fmt.Printf("step-ca configuration in %s; start it with: step-ca %s\n", dir, filepath.Join(dir, "ca.json"))
	return nil
}

// makeCA makes a P-256 CA certificate, self-signed when parent is nil.
func makeCA(cn string, parentKey *ecdsa.PrivateKey, parent *x509.Certificate) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: parent != nil,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return key, cert, err
}

type enrollFlags struct {
	dir                   string
	requests, concurrency int
	warmup                int
	fresh, http1          bool
	output                string
}

func enrollCmd(args []string) error {
	var f enrollFlags
	fs := flag.NewFlagSet("enroll", flag.ContinueOnError)
	fs.StringVar(&f.dir, "dir", "", "directory written by setup (required)")
	fs.IntVar(&f.requests, "requests", 1000, "number of enrollments")
	fs.IntVar(&f.concurrency, "concurrency", 16, "concurrent workers")
	fs.IntVar(&f.warmup, "warmup", 0, "enrollments sent first and not measured, as flinkpki bench enroll --warmup")
	fs.BoolVar(&f.fresh, "fresh-connections", false, "a new TLS connection per request")
	fs.BoolVar(&f.http1, "http1", false, "HTTP/1.1 (one connection per worker when keep-alive) instead of HTTP/2")
	fs.StringVar(&f.output, "o", "table", "output: table or json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.dir == "" || f.requests < 1 || f.concurrency < 1 || f.warmup < 0 {
		return errors.New("enroll needs --dir, --requests and --concurrency of at least 1, and --warmup of at least 0")
	}
	c, err := newClient(f.dir)
	if err != nil {
		return err
	}
	f.concurrency = min(f.concurrency, f.requests)
	// The same collector setting as flinkpki bench enroll, so both load
	// generators cost the machine the same.
	gctune.Start(context.Background(), 64<<20, time.Second)
	// Keep-alive: like flinkpki bench enroll, one HTTP/2 connection per 16
	// workers; with --http1, one connection per worker.
	perConn := 16
	if f.http1 {
		perConn = 1
	}
	var pool []*http.Client
	if !f.fresh {
		for range (f.concurrency + perConn - 1) / perConn {
			pool = append(pool, c.httpClient(f.http1, false))
		}
	}
	runID := make([]byte, 4)
	_, _ = rand.Read(runID)
	prefix := "bench-" + hex.EncodeToString(runID)
	fmt.Fprintf(os.Stderr, "stepca-bench: %d enrollments at %s, concurrency %d\n", f.requests, c.url, f.concurrency)
	o := loadgen.Run(context.Background(), loadgen.Load{Requests: f.requests, Concurrency: f.concurrency, Warmup: f.warmup}, func(ctx context.Context, w, i int) error {
		var hc *http.Client
		if f.fresh {
			hc = c.httpClient(f.http1, true)
			defer hc.CloseIdleConnections()
		} else {
			hc = pool[w/perConn]
		}
		return c.enrollOne(ctx, hc, fmt.Sprintf("%s-%d", prefix, i))
	})
	res := o.Result(loadgen.Result{
		Target: "step-ca", FreshConnections: f.fresh, Connections: len(pool), KeyType: "ecdsa-p256", Format: string(keystore.JKS),
	})
	if o.FirstErr != nil {
		res.FirstError = o.FirstErr.Error()
	}
	if f.output == "json" {
		err = json.NewEncoder(os.Stdout).Encode(res)
	} else {
		err = loadgen.PrintTable(os.Stdout, res)
	}
	if err != nil {
		return err
	}
	if res.Errors > 0 || res.WarmupErrors > 0 {
		return fmt.Errorf("%d of %d enrollments and %d of %d warm-up enrollments failed; first: %s", res.Errors, res.Requests, res.WarmupErrors, res.Warmup, res.FirstError)
	}
	return nil
}

type client struct {
	url    string
	roots  *x509.CertPool
	signer jose.Signer
}

func newClient(dir string) (*client, error) {
	url, err := os.ReadFile(filepath.Join(dir, "ca-url"))
	if err != nil {
		return nil, fmt.Errorf("%w (run setup first)", err)
	}
	rootPEM, err := os.ReadFile(filepath.Join(dir, "root_ca.crt"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		return nil, errors.New("root_ca.crt holds no certificate")
	}
	keyJSON, err := os.ReadFile(filepath.Join(dir, "provisioner.json"))
	if err != nil {
		return nil, err
	}
	var key jose.JSONWebKey
	if err := key.UnmarshalJSON(keyJSON); err != nil {
		return nil, fmt.Errorf("provisioner.json: %w", err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key.Key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", key.KeyID))
	if err != nil {
		return nil, err
	}
	return &client{url: string(bytes.TrimSpace(url)), roots: roots, signer: signer}, nil
}

func (c *client) httpClient(http1, fresh bool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: c.roots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   !http1,
		DisableKeepAlives:   fresh,
		MaxIdleConnsPerHost: 1,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

type signRequest struct {
	CSR string `json:"csr"`
	OTT string `json:"ott"`
}

type signResponse struct {
	Crt       string   `json:"crt"`
	CA        string   `json:"ca"`
	CertChain []string `json:"certChain"`
}

func (c *client) enrollOne(ctx context.Context, hc *http.Client, name string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	csr, err := enroll.CreateCSR(rand.Reader, key, name, []string{name}, nil)
	if err != nil {
		return err
	}
	ott, err := c.token(name)
	if err != nil {
		return err
	}
	body, err := json.Marshal(signRequest{
		CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})), OTT: ott,
	})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/1.0/sign", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("step-ca answered %s: %s", resp.Status, bytes.TrimSpace(raw))
	}
	var sr signResponse
	if err := json.Unmarshal(raw, &sr); err != nil {
		return err
	}
	chain, trusted, err := enroll.ParseAnswer(key, pemDERs(sr.CertChain), pemDERs([]string{sr.CA}))
	if err != nil {
		return err
	}
	_, err = credentials.Build(credentials.Material{Key: key, Chain: chain, Trusted: trusted},
		credentials.Options{Format: keystore.JKS, Dir: "/flink-tls", Created: time.Now()})
	return err
}

// token is a one-time token the way step's CLI makes it: ES256, kid of the
// provisioner key, audience the sign URL, a unique jti.
func (c *client) token(name string) (string, error) {
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	now := time.Now()
	claims := struct {
		jwt.Claims
		SANs []string `json:"sans"`
	}{
		Claims: jwt.Claims{
			Issuer: provisionerName, Subject: name, Audience: jwt.Audience{c.url + "/1.0/sign"},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
			Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute)), ID: hex.EncodeToString(jti),
		},
		SANs: []string{name},
	}
	return jwt.Signed(c.signer).Claims(claims).Serialize()
}

// pemDERs returns the DER of every PEM block in in.
func pemDERs(in []string) [][]byte {
	var out [][]byte
	for _, s := range in {
		rest := []byte(s)
		for {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			out = append(out, b.Bytes)
		}
	}
	return out
}
