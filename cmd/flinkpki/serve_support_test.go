package main

import (
	"slices"
	"testing"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/ca"
)

// TestTheKeyPoolPrewarmsKeyTypesOfEveryCluster: the RSA key types the bake
// key pool fills at start come from every cluster, not only the first page.
func TestTheKeyPoolPrewarmsKeyTypesOfEveryCluster(t *testing.T) {
	e := authoritytest.New(t)
	for _, c := range []authority.CreateClusterRequest{{Name: "a"}, {Name: "b"}, {Name: "c", KeyType: "rsa-2048"}, {Name: "d", KeyType: "rsa-2048"}} {
		e.CreateCluster(c)
	}
	for _, page := range []int{1, 2, 1000} {
		if got, want := rsaKeyTypesInUse(e.Ctx, e.Store, page), []ca.KeyType{"rsa-2048"}; !slices.Equal(got, want) {
			t.Errorf("in pages of %d: %v, want %v", page, got, want)
		}
	}
}
