package issuer

import (
	"fmt"
	"net"
	"net/url"
)

// MaxHolderLen is the longest holder ID, the limit of a Kubernetes pod name.
const MaxHolderLen = 253

// TrustDomain is the host part of every leaf's URI SAN.
const TrustDomain = "flinkpki"

// ValidateHolder checks a holder ID: 1 to 253 characters of letters, digits,
// '.', '_' and '-', and not "." or "..". These need no escaping in a URI path
// segment and are valid SPIFFE path segments, so the URI SAN is unambiguous.
func ValidateHolder(h string) error {
	if h == "" || len(h) > MaxHolderLen {
		return fmt.Errorf("%w: holder ID must be 1 to %d characters, got %d", ErrInvalidRequest, MaxHolderLen, len(h))
	}
	if h == "." || h == ".." {
		return fmt.Errorf("%w: holder ID %q is not allowed", ErrInvalidRequest, h)
	}
	for i := 0; i < len(h); i++ {
		if !holderByte(h[i]) {
			return fmt.Errorf("%w: holder ID %q may contain only letters, digits, '.', '_' and '-'", ErrInvalidRequest, h)
		}
	}
	return nil
}

func holderByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// ValidateCluster checks a cluster name as the contract defines it: 1 to 63
// lower-case letters, digits and '-', starting and ending with a letter or
// digit (a DNS label, so it is also safe in the URI SAN).
func ValidateCluster(name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("%w: cluster name must be 1 to 63 characters, got %d", ErrInvalidRequest, len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(name)-1) {
			return fmt.Errorf("%w: cluster name %q must be lower-case letters, digits and '-', starting and ending with a letter or digit", ErrInvalidRequest, name)
		}
	}
	return nil
}

// HolderURI is the URI SAN that identifies a holder:
// spiffe://flinkpki/cluster/<cluster>/role/<role>/holder/<holder>. Peers and
// audits can tell from it alone which cluster, role and pod a leaf belongs to.
func HolderURI(cluster string, role Role, holder string) *url.URL {
	return &url.URL{
		Scheme: "spiffe",
		Host:   TrustDomain,
		Path:   "/cluster/" + cluster + "/role/" + string(role) + "/holder/" + holder,
	}
}

// ValidateDNSName accepts a host name of letter/digit/hyphen labels, at most
// 253 characters. Wildcards are refused: a leaf names the hosts it serves.
func ValidateDNSName(d string) error {
	if d == "" || len(d) > 253 {
		return fmt.Errorf("%w: DNS name %q must be 1 to 253 characters", ErrInvalidRequest, d)
	}
	label := 0
	for i := 0; i <= len(d); i++ {
		if i == len(d) || d[i] == '.' {
			if label == 0 || label > 63 || d[i-1] == '-' || d[i-label] == '-' {
				return fmt.Errorf("%w: DNS name %q is not a valid host name", ErrInvalidRequest, d)
			}
			label = 0
			continue
		}
		c := d[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%w: DNS name %q is not a valid host name (letters, digits, '-' and '.' only; no wildcards)", ErrInvalidRequest, d)
		}
		label++
	}
	return nil
}

// CheckSANs applies the role's SAN rules: a REST server must name at least
// one host, a REST client names none, JobManagers and TaskManagers may name
// some (Flink does not verify host names internally, but a sidecar might).
func CheckSANs(role Role, dns []string, ips []net.IP) error {
	n := len(dns) + len(ips)
	switch {
	case n > MaxSANs:
		return fmt.Errorf("%w: %d SANs requested, more than the limit of %d", ErrInvalidRequest, n, MaxSANs)
	case role == RoleRESTServer && n == 0:
		return fmt.Errorf("%w: a rest-server certificate needs at least one DNS name or IP address", ErrInvalidRequest)
	case role == RoleRESTClient && n > 0:
		return fmt.Errorf("%w: a rest-client certificate carries no DNS names or IP addresses", ErrInvalidRequest)
	}
	for _, d := range dns {
		if err := ValidateDNSName(d); err != nil {
			return err
		}
	}
	for _, ip := range ips {
		if ip.To16() == nil {
			return fmt.Errorf("%w: IP address %v is malformed", ErrInvalidRequest, []byte(ip))
		}
	}
	return nil
}
