package authority_test

import (
	"crypto"
	"errors"
	"testing"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/ca"
)

// TestBakeReturnsAServerMadeKeyThatTalksToEnrolledHolders covers bake: the
// key comes back once, matches the leaf, is of the cluster's key type, and
// the baked credentials complete mutual TLS with an enrolled holder.
func TestBakeReturnsAServerMadeKeyThatTalksToEnrolledHolders(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "b1", KeyType: "ecdsa-p384"})
	iss, err := e.Authority.Bake(e.Ctx, admin, authority.EnrollRequest{Cluster: "b1", Role: "taskmanager", Holder: "image-1"})
	if err != nil {
		t.Fatalf("bake: %v", err)
	}
	if iss.Key == nil {
		t.Fatal("bake returned no key")
	}
	if kt, err := ca.KeyTypeOf(iss.Key.Public()); err != nil || kt != ca.KeyTypeECDSAP384 || iss.KeyType != "ecdsa-p384" {
		t.Errorf("baked key is %s (%v), reported as %s; want ecdsa-p384", kt, err, iss.KeyType)
	}
	baked := authoritytest.NewCreds(iss.Key, iss, e.Clock.Now)
	if pub, ok := baked.Leaf().PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(iss.Key.Public()) {
		t.Errorf("the baked leaf does not certify the returned key")
	}
	mustTalk(t, baked, e.Enroll("b1", "jobmanager", "jm-0"))
	wantAudit(t, e, "b1", "enroll", "ok", "admin:test")
}

// TestEnrollRefusesRequestsThatCannotBeSigned covers refusals that happen
// before signing: each is the right sentinel error, writes no holder, and
// is audited as denied.
func TestEnrollRefusesRequestsThatCannotBeSigned(t *testing.T) {
	t.Parallel()
	e := authoritytest.New(t)
	e.CreateCluster(authority.CreateClusterRequest{Name: "v1"})
	_, rsaCSR, err := authoritytest.NewCSR("rsa-2048", "jm-0")
	if err != nil {
		t.Fatal(err)
	}
	_, goodCSR, err := authoritytest.NewCSR("ecdsa-p256", "jm-0")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cluster string
		req     authority.EnrollRequest
		actor   authority.Actor
		want    error
	}{
		{"a key of another type than the cluster's is refused", "v1",
			authority.EnrollRequest{Cluster: "v1", Role: "jobmanager", Holder: "jm-0", CSR: rsaCSR}, admin, authority.ErrInvalid},
		{"an unknown cluster is refused", "nope",
			authority.EnrollRequest{Cluster: "nope", Role: "jobmanager", Holder: "jm-0", CSR: goodCSR}, admin, authority.ErrNotFound},
		{"a missing holder name is refused", "v1",
			authority.EnrollRequest{Cluster: "v1", Role: "jobmanager", CSR: goodCSR}, admin, authority.ErrInvalid},
		{"an anonymous caller is refused", "v1",
			authority.EnrollRequest{Cluster: "v1", Role: "jobmanager", Holder: "jm-0", CSR: goodCSR}, authority.Actor{}, authority.ErrUnauthenticated},
		{"a Kubernetes service account that is not bound is refused", "v1",
			authority.EnrollRequest{Cluster: "v1", Role: "jobmanager", Holder: "jm-0", CSR: goodCSR},
			authority.Actor{Kind: authority.ActorK8s, Namespace: "flink", ServiceAccount: "jm", Pod: "jm-0"}, authority.ErrDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Authority.Enroll(e.Ctx, tt.actor, tt.req)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if n := holderCount(t, e, "v1"); n != 0 {
				t.Errorf("a refused enrollment wrote %d holders", n)
			}
			wantAudit(t, e, tt.cluster, "enroll", "denied", tt.actor.String())
		})
	}
	if _, err := e.Authority.Enroll(e.Ctx, admin, authority.EnrollRequest{Cluster: "v1", Role: "jobmanager", Holder: "jm-0", CSR: goodCSR}); err != nil {
		t.Errorf("the same request with a good CSR and holder fails: %v", err)
	}
}
