//go:build !linux

package main

import "io"

// isTerminal is false where flinkpki does not check (it is built for
// Linux; elsewhere --out - writes wherever standard output goes).
func isTerminal(io.Writer) bool { return false }
