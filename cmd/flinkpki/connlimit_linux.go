package main

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// setUserTimeout sets TCP_USER_TIMEOUT on an accepted connection, as gRPC
// does on the connections it accepts itself: it cannot on one wrapped for
// counting (limitedConn), and without it a peer that vanished with data
// unacknowledged holds its connection for TCP's retransmissions (minutes)
// rather than keepaliveTimeout.
func setUserTimeout(c net.Conn, d time.Duration) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d/time.Millisecond))
	})
}
