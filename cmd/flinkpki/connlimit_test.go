package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
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
// trail, and a connection given back lets the next one in. A failed
// handshake gives its connection back once, though gRPC closes it twice.
// Real TLS on loopback, every connection from 127.0.0.1.
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
	hold := func(i int) {
		t.Helper()
		c, err := dial()
		if err != nil {
			t.Fatalf("connection %d of %d: %v", i+1, bound, err)
		}
		held = append(held, c)
	}
	for i := range bound - 1 {
		hold(i)
	}
	// Two handshakes that fail (not TLS at all): each connection is
	// counted while it lasts and given back when the server closes it.
	for range 2 {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.Copy(io.Discard, c) // until the server closes it
		c.Close()
	}
	hold(bound - 1)
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

// TestConnectionsCountPerIPAddress: the bound counts an IP address's own
// connections, an IPv6 address apart from the rest of its /64 (the pods of
// a node often share one), and an IPv4 address the same however the
// socket wrote it.
func TestConnectionsCountPerIPAddress(t *testing.T) {
	tests := []struct {
		name string
		a, b net.Addr
		same bool
	}{
		{"two IPv6 addresses of one /64 count apart", &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1}, &net.TCPAddr{IP: net.ParseIP("2001:db8::2"), Port: 1}, false},
		{"one IPv6 address counts once, whatever the port", &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1}, &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 2}, true},
		{"an IPv4-mapped address is its IPv4 address", &net.TCPAddr{IP: net.ParseIP("::ffff:10.0.0.1"), Port: 1}, &net.TCPAddr{IP: net.ParseIP("10.0.0.1").To4(), Port: 2}, true},
		{"two IPv4 addresses count apart", &net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 1}, &net.TCPAddr{IP: net.ParseIP("10.0.0.2"), Port: 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := remoteIP(tt.a) == remoteIP(tt.b); got != tt.same {
				t.Errorf("remoteIP(%v) = %q, remoteIP(%v) = %q: same = %v, want %v", tt.a, remoteIP(tt.a), tt.b, remoteIP(tt.b), got, tt.same)
			}
		})
	}
}
