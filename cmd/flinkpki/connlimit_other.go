//go:build !linux

package main

import (
	"net"
	"time"
)

// setUserTimeout does nothing where TCP_USER_TIMEOUT does not exist (gRPC
// sets it on Linux only, too).
func setUserTimeout(net.Conn, time.Duration) {}
