package issuer

import (
	"crypto/x509"
	"fmt"
	"strings"

	"github.com/flinkpki/flinkpki/ca"
)

// Role is what a holder does with its leaf; it picks the CA lineage and the
// certificate profile.
type Role string

// The roles flinkpki issues for.
const (
	RoleJobManager  Role = "jobmanager"
	RoleTaskManager Role = "taskmanager"
	RoleRESTServer  Role = "rest-server"
	RoleRESTClient  Role = "rest-client"
)

// Roles lists every role in the order shown to people.
func Roles() []Role {
	return []Role{RoleJobManager, RoleTaskManager, RoleRESTServer, RoleRESTClient}
}

// ParseRole checks a role name from a flag or a request.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles() {
		if string(r) == s {
			return r, nil
		}
	}
	names := make([]string, 0, len(Roles()))
	for _, r := range Roles() {
		names = append(names, string(r))
	}
	return "", fmt.Errorf("%w %q: choose one of %s", ErrUnknownRole, s, strings.Join(names, ", "))
}

// String returns the role name.
func (r Role) String() string { return string(r) }

// Purpose returns the CA lineage that signs this role: internal mTLS for
// JobManagers and TaskManagers, the separate REST CA for REST material.
func (r Role) Purpose() ca.Purpose {
	switch r {
	case RoleRESTServer, RoleRESTClient:
		return ca.PurposeREST
	default:
		return ca.PurposeInternal
	}
}

// extKeyUsage is the profile's extended key usage. JobManagers and
// TaskManagers are both client and server on every internal connection.
func (r Role) extKeyUsage() []x509.ExtKeyUsage {
	switch r {
	case RoleRESTServer:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	case RoleRESTClient:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	default:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
}

func (r Role) valid() bool {
	switch r {
	case RoleJobManager, RoleTaskManager, RoleRESTServer, RoleRESTClient:
		return true
	}
	return false
}
