package api

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/issuer"
	"github.com/flinkpki/flinkpki/store"
)

func TestDomainErrorsMapToStatusCodesKeepingTheirSentence(t *testing.T) {
	cases := []struct {
		name string
		err  error
		code codes.Code
	}{
		{"an unknown token", fmt.Errorf("%w: unknown token", authority.ErrUnauthenticated), codes.Unauthenticated},
		{"a token for another cluster", fmt.Errorf("%w: token is for cluster \"a\"", authority.ErrDenied), codes.PermissionDenied},
		{"a missing cluster", fmt.Errorf("%w: cluster \"x\" not found", authority.ErrNotFound), codes.NotFound},
		{"a weak CSR key", fmt.Errorf("%w: %w: RSA key of 1024 bits", issuer.ErrBadCSR, issuer.ErrWeakKey), codes.InvalidArgument},
		{"a blocked rotation", fmt.Errorf("%w: 2 live holders", ca.ErrBlocked), codes.FailedPrecondition},
		{"an overloaded signer", fmt.Errorf("%w: try again", authority.ErrBusy), codes.ResourceExhausted},
		{"a store that is down", fmt.Errorf("%w: etcd", store.ErrUnavailable), codes.Unavailable},
		{"a deadline", context.DeadlineExceeded, codes.DeadlineExceeded},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := status.Convert(toStatus(c.err))
			if st.Code() != c.code || st.Message() != c.err.Error() {
				t.Errorf("toStatus = %s %q, want %s %q", st.Code(), st.Message(), c.code, c.err.Error())
			}
		})
	}
}

func TestInternalFaultsDoNotLeakTheirDetail(t *testing.T) {
	err := errors.New("open /var/lib/flinkpki/flinkpki.db: key fpe_secret: corrupt page 7")
	st := status.Convert(toStatus(err))
	if st.Code() != codes.Internal || st.Message() != "internal error; the server log has the details" {
		t.Errorf("toStatus = %s %q, want Internal with the generic sentence", st.Code(), st.Message())
	}
	var ie *InternalError
	if !errors.As(toStatus(err), &ie) || ie.Cause != err {
		t.Errorf("toStatus does not keep the fault for the server log: %#v", toStatus(err))
	}
	if toStatus(nil) != nil {
		t.Error("toStatus(nil) is not nil")
	}
}
