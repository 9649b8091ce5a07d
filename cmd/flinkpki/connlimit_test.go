package main

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestAnAddressHoldsAtMostItsConnections: a peer that opens connections
// and keeps them (no request, no credential) holds at most
// --max-connections-per-address of them; one more is closed as it is
// accepted, counted as address_connections and summarised in the audit
// trail, and a connection given back lets the next one in. Real TLS on
// loopback, every connection from 127.0.0.1.
func TestAnAddressHoldsAtMostItsConnections(t *testing.T) {
	const bound = 3
	metricsAddr := freeAddr(t)
	dir := filepath.Join(t.TempDir(), "data")
	s := startServer(t, dir, "--max-connections-per-address", "3", "--metrics-listen", metricsAddr)
	pem, err := os.ReadFile(s.caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	dial := func() (*tls.Conn, error) {
		d := &net.Dialer{Timeout: 5 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", s.addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
		if err != nil {
			return nil, err
		}
		// The handshake completes on the client before the server has
		// read its last flight: a read tells whether the server kept the
		// connection (its HTTP/2 settings come) or closed it (EOF).
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != nil {
			c.Close()
			return nil, err
		}
		_ = c.SetReadDeadline(time.Time{})
		return c, nil
	}
	var held []*tls.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range bound {
		c, err := dial()
		if err != nil {
			t.Fatalf("connection %d of %d: %v", i+1, bound, err)
		}
		held = append(held, c)
	}
	if c, err := dial(); err == nil {
		c.Close()
		t.Fatalf("connection %d from one address was kept; want it closed at once past --max-connections-per-address %d", bound+1, bound)
	}
	if n := deniedMetric(t, metricsAddr, "address_connections"); n < 1 {
		t.Errorf("flinkpki_requests_denied_total{reason=\"address_connections\"} = %d, want at least 1", n)
	}
	// One given back: the server notices the close and the next
	// connection is kept (as soon as the server has read the EOF).
	held[0].Close()
	held = held[1:]
	var next *tls.Conn
	for deadline := time.Now().Add(10 * time.Second); next == nil; time.Sleep(20 * time.Millisecond) {
		if next, err = dial(); err != nil && time.Now().After(deadline) {
			t.Fatalf("after one of %d connections closed, a new one is still refused: %v", bound, err)
		}
	}
	held = append(held, next)
	// The connections past the bound are in the audit trail, as the
	// address's refusals are: under their reason, in the summaries.
	for _, c := range held {
		c.Close()
	}
	held = nil
	s.stop(t) // writes the last summary
	s = startServer(t, dir)
	tally := tallyRefusals(t, auditEntries(t, s, ""), func(e auditJSON) bool {
		return e.Details["reason"] == "address_connections" && e.Actor == "anonymous:127.0.0.1"
	})
	t.Logf("audited: %d one by one, %d in %d summaries", tally.individual, tally.summarised, tally.summaries)
	if tally.individual+tally.summarised < 1 {
		t.Errorf("no audit entry accounts for the connection closed past the bound (%+v)", tally)
	}
}
