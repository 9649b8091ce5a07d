package issuer

import (
	"errors"
	"strings"
	"testing"

	"github.com/flinkpki/flinkpki/ca"
)

func TestParseRole(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		in          string
		want        Role
		wantPurpose ca.Purpose
		wantErr     error
	}{
		{"jobmanager is signed by the internal CA", "jobmanager", RoleJobManager, ca.PurposeInternal, nil},
		{"taskmanager is signed by the internal CA", "taskmanager", RoleTaskManager, ca.PurposeInternal, nil},
		{"rest-server is signed by the REST CA", "rest-server", RoleRESTServer, ca.PurposeREST, nil},
		{"rest-client is signed by the REST CA", "rest-client", RoleRESTClient, ca.PurposeREST, nil},
		{"an empty role is refused", "", "", "", ErrUnknownRole},
		{"a capitalised role is refused", "JobManager", "", "", ErrUnknownRole},
	}
	for _, tt := range tests {
		got, err := ParseRole(tt.in)
		if !errors.Is(err, tt.wantErr) || got != tt.want {
			t.Errorf("%s: ParseRole(%q) = %q, %v", tt.name, tt.in, got, err)
			continue
		}
		if err == nil && got.Purpose() != tt.wantPurpose {
			t.Errorf("%s: Purpose() = %s, want %s", tt.name, got.Purpose(), tt.wantPurpose)
		}
		if err != nil && !strings.Contains(err.Error(), "jobmanager, taskmanager, rest-server, rest-client") {
			t.Errorf("%s: error %q does not list the roles", tt.name, err)
		}
	}
}
