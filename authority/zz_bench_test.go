package authority_test

import (
	"testing"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
)

func BenchmarkHandshake(b *testing.B) {
	e := authoritytest.New(b)
	e.CreateCluster(authority.CreateClusterRequest{Name: "b"})
	x := e.Enroll("b", "jobmanager", "jm-0")
	y := e.Enroll("b", "taskmanager", "tm-0")
	for b.Loop() {
		if err := authoritytest.Handshake(x, y); err != nil {
			b.Fatal(err)
		}
	}
}
