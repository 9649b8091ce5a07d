// Command flinkpki is the flinkpki server and its command-line client.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
