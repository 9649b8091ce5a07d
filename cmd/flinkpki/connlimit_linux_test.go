package main

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestAcceptedConnectionsKeepTheirTCPUserTimeout: the limit's listener
// hands gRPC a wrapped connection, on which gRPC cannot set
// TCP_USER_TIMEOUT itself; the listener sets it, to keepaliveTimeout.
func TestAcceptedConnectionsKeepTheirTCPUserTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := limitConns(ln, 4, nil)
	defer l.Close()
	go func() {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			defer c.Close()
			time.Sleep(time.Second)
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lc, ok := c.(*limitedConn)
	if !ok {
		t.Fatalf("accepted %T, want the counted connection", c)
	}
	raw, err := lc.Conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ms int
	var gerr error
	if err := raw.Control(func(fd uintptr) { ms, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT) }); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if want := int(keepaliveTimeout / time.Millisecond); ms != want {
		t.Errorf("TCP_USER_TIMEOUT = %d ms, want %d", ms, want)
	}
}
