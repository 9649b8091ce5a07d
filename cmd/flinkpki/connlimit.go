package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"google.golang.org/grpc/peer"
)

// maxConnsPerSource bounds the connections one IP address holds open to
// the gRPC listener (--max-connections-per-address). A pod needs
// one at a time (init, bake and the CLI open one each); each connection
// the server holds costs about 50 KiB, before anything on it is
// authenticated, so without a bound one pod running a job's code could
// open enough to exhaust the server's memory limit (256Mi in deploy/).
const maxConnsPerSource = 256

// connLimitListener refuses a connection, by closing it as it is
// accepted, from an IP address that already holds perSource open. Unlike
// the stream gate's bound, an IPv6 address counts alone, not with its
// /64: connections are held for as long as their peer keeps them, and the
// pods of a node (or of a whole subnet) often share a /64, so one pod
// holding its /64's connections would lock its neighbours out. The
// refusal is shed as the stream gate's are (shed: the metric
// flinkpki_requests_denied_total and its address's next refusal summary in
// the audit trail), with reason address_connections; the client sees the
// connection closed (gRPC's UNAVAILABLE, which init retries).
type connLimitListener struct {
	net.Listener
	perSource int
	shed      func(ctx context.Context, method, reason string, err error)

	mu   sync.Mutex
	open map[string]int // connections open per source
}

// limitConns bounds l's connections per source address; perSource 0
// leaves l unbounded (behind a proxy or a mesh sidecar, where every client
// has the proxy's address).
func limitConns(l net.Listener, perSource int, shed func(ctx context.Context, method, reason string, err error)) net.Listener {
	if perSource <= 0 {
		return l
	}
	return &connLimitListener{Listener: l, perSource: perSource, shed: shed, open: map[string]int{}}
}

// Accept returns the next connection whose address holds fewer than
// perSource, closing the others as they come.
func (l *connLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := remoteIP(c.RemoteAddr())
		l.mu.Lock()
		full := l.open[src] >= l.perSource
		if !full {
			l.open[src]++
		}
		l.mu.Unlock()
		if !full {
			setUserTimeout(c, keepaliveTimeout)
			return &limitedConn{Conn: c, release: sync.OnceFunc(func() { l.release(src) })}, nil
		}
		c.Close()
		if l.shed != nil {
			// The refusal's source is the peer's, as for a request's.
			ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: c.RemoteAddr(), LocalAddr: c.LocalAddr()})
			l.shed(ctx, "connection", "address_connections", fmt.Errorf("closed at once: %s has %d connections open, the most one address may", src, l.perSource))
		}
	}
}

// remoteIP is the IP address a connection came from, an IPv4 address
// written as one however it arrived, or the address as its network writes
// it when it has none.
func remoteIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap().String()
		}
	}
	if a == nil {
		return "unknown"
	}
	return a.String()
}

// release gives back one of src's connections.
func (l *connLimitListener) release(src string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[src]--; l.open[src] <= 0 {
		delete(l.open, src)
	}
}

// limitedConn is a connection counted against its source until it is
// closed (gRPC closes it when the connection ends, or its handshake fails:
// twice then, through the TLS connection and directly, so release runs
// once whatever the number of calls).
type limitedConn struct {
	net.Conn
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
