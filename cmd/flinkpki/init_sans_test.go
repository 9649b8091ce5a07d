package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/flinkpki/flinkpki/issuer"
)

// TestReverseNamesAnswerFromTheHostsFile looks up loopback addresses
// through the real resolver, which reads this machine's /etc/hosts first,
// as the resolver in a pod reads the kubelet's: whatever names it holds
// for 127.0.0.1 come back without the trailing dot, and an address nothing
// names adds nothing (quickly: reverseLookupTimeout bounds it).
func TestReverseNamesAnswerFromTheHostsFile(t *testing.T) {
	hosts, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatalf("this test reads the names /etc/hosts gives 127.0.0.1: %v", err)
	}
	want := hostsNames(string(hosts), "127.0.0.1")
	if len(want) == 0 {
		t.Fatalf("/etc/hosts names nothing for 127.0.0.1, so nothing could be checked:\n%s", hosts)
	}
	got := reverseNames(context.Background(), nil, []string{"127.0.0.1", "198.51.100.77"})
	for _, n := range want {
		if !slices.Contains(got, n) {
			t.Errorf("reverse names of 127.0.0.1: %q; want %q among them (/etc/hosts names it)", got, n)
		}
	}
	for _, n := range got {
		if err := issuer.ValidateDNSName(n); err != nil {
			t.Errorf("reverse name %q is not one a certificate can carry: %v", n, err)
		}
	}
}

// TestLocalNamesStopAtTheSANLimit gives init --dns names up to one short of
// the limit: the names it adds by itself fill the one place left and no
// more, so the CSR is never refused for the names init chose.
func TestLocalNamesStopAtTheSANLimit(t *testing.T) {
	var dns []string
	for i := range issuer.MaxSANs - 1 {
		dns = append(dns, fmt.Sprintf("tm-%d.flink.example", i))
	}
	d, ips := withLocalNames(context.Background(), dns, nil)
	if n := len(d) + len(ips); n != issuer.MaxSANs {
		t.Fatalf("%d SANs after adding local names to %d (%q, %q); want exactly %d", n, len(dns), d, ips, issuer.MaxSANs)
	}
	d, ips = withLocalNames(context.Background(), nil, nil)
	if !slices.Contains(d, "localhost") || !slices.Contains(ips, "127.0.0.1") {
		t.Fatalf("local names %q, %q; want localhost and 127.0.0.1 among them", d, ips)
	}
}

// hostsNames is what a hosts file names addr, comments left out.
func hostsNames(hosts, addr string) []string {
	var out []string
	for _, line := range strings.Split(hosts, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if f := strings.Fields(line); len(f) > 1 && f[0] == addr {
			out = append(out, f[1:]...)
		}
	}
	return out
}
