package k8sauth

import (
	"context"
	"errors"
	"testing"

	"github.com/flinkpki/flinkpki/k8sauth/k8stest"
)

// sentinels lists every refusal Verify may report.
var sentinels = []error{
	ErrMalformed, ErrSignature, ErrUnknownKey, ErrIssuer, ErrAudience,
	ErrExpired, ErrNotYetValid, ErrClaims, ErrLegacyToken,
}

// FuzzVerify checks that Verify never panics, that every refusal wraps one
// of the sentinels, and that an accepted token yields a self-consistent
// identity. The committed corpus holds tokens of every shape in the refusal
// table; the runtime seeds add tokens signed by the fuzz verifier's own key
// so mutations start from inputs that pass the signature check.
func FuzzVerify(f *testing.F) {
	iss := k8stest.NewECIssuer(f, testIssuer)
	v := newVerifier(f, iss.JWKS())
	f.Add(iss.Mint(validClaims()))
	f.Add(iss.Mint(with(func(c *k8stest.Claims) { c.Legacy = true })))
	f.Add(iss.Sign([]byte(`{"iss":"` + testIssuer + `","aud":"flinkpki","exp":1e300}`)))
	f.Add(unsignedToken(f, iss.KeyID(), iss.Payload(validClaims())))
	f.Fuzz(func(t *testing.T, raw string) {
		id, err := v.Verify(context.Background(), raw)
		if err != nil {
			if id != nil {
				t.Fatalf("identity returned with error %v", err)
			}
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error %v wraps no sentinel", err)
		}
		if id == nil || id.Namespace == "" || id.ServiceAccount == "" ||
			id.Subject != "system:serviceaccount:"+id.Namespace+":"+id.ServiceAccount {
			t.Fatalf("accepted token gave an inconsistent identity %+v", id)
		}
	})
}
