package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/issuer"
)

// TestReverseNamesAnswerFromTheHostsFile looks up loopback addresses
// through the real resolver, which reads this machine's /etc/hosts first,
// as the resolver in a pod reads the kubelet's: the first name it holds for
// 127.0.0.1 comes back, without the trailing dot, and an address nothing
// names adds nothing, within reverseLookupTimeout.
func TestReverseNamesAnswerFromTheHostsFile(t *testing.T) {
	hosts, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatalf("this test reads the names /etc/hosts gives 127.0.0.1: %v", err)
	}
	var want string
	for _, n := range hostsNames(string(hosts), "127.0.0.1") {
		if issuer.ValidateDNSName(n) == nil {
			want = n
			break
		}
	}
	if want == "" {
		t.Fatalf("/etc/hosts gives 127.0.0.1 no name a certificate can carry, so nothing could be checked:\n%s", hosts)
	}
	start := time.Now()
	got := reverseNames(context.Background(), nil, []string{"127.0.0.1", "198.51.100.77"})
	took := time.Since(start)
	if !slices.Contains(got, want) {
		t.Errorf("reverse names of 127.0.0.1: %q; want %q among them (/etc/hosts names it first)", got, want)
	}
	for _, n := range got {
		if err := issuer.ValidateDNSName(n); err != nil {
			t.Errorf("reverse name %q is not one a certificate can carry: %v", n, err)
		}
	}
	if took > reverseLookupTimeout+time.Second {
		t.Errorf("the lookups took %s; want them cut at %s", took, reverseLookupTimeout)
	}
}

// TestLocalNamesStopAtTheSANLimit gives init --dns names up to one short of
// the limit: the names it adds by itself fill the one place left, with the
// host name first, and the rest are reported as left out, so the CSR is
// never refused for the names init chose and the operator hears of it.
func TestLocalNamesStopAtTheSANLimit(t *testing.T) {
	var dns []string
	for i := range issuer.MaxSANs - 1 {
		dns = append(dns, fmt.Sprintf("tm-%d.flink.example", i))
	}
	d, ips, dropped := withLocalNames(context.Background(), dns, nil)
	if n := len(d) + len(ips); n != issuer.MaxSANs {
		t.Fatalf("%d SANs after adding local names to %d (%q, %q); want exactly %d", n, len(dns), d, ips, issuer.MaxSANs)
	}
	if h, err := os.Hostname(); err == nil && issuer.ValidateDNSName(h) == nil && d[len(d)-1] != h {
		t.Errorf("the one place left went to %q; want the host name %q, which peers reach the pod by", d[len(d)-1], h)
	}
	if !slices.Contains(dropped, "localhost") || !slices.Contains(dropped, "127.0.0.1") {
		t.Errorf("left out: %q; want localhost and 127.0.0.1 among them", dropped)
	}
	d, ips, dropped = withLocalNames(context.Background(), nil, nil)
	if !slices.Contains(d, "localhost") || !slices.Contains(ips, "127.0.0.1") || len(dropped) != 0 {
		t.Fatalf("local names %q, %q, left out %q; want localhost and 127.0.0.1 among them and nothing left out", d, ips, dropped)
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
