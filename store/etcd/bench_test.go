package etcd_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/flinkpki/flinkpki/store"
)

// BenchmarkUpdate measures single-key write transactions on the shared
// three-member cluster.
func BenchmarkUpdate(b *testing.B) {
	ctx := context.Background()
	be := newBackend(b, shared.Endpoints(), testPrefix(b))
	i := 0
	for b.Loop() {
		i++
		err := be.Update(ctx, func(tx store.Tx) error {
			return tx.Put([]byte("holders"), fmt.Appendf(nil, "k%08d", i), []byte("value"))
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkUpdateParallel measures guarded read-modify-write transactions
// on distinct keys from many goroutines.
func BenchmarkUpdateParallel(b *testing.B) {
	ctx := context.Background()
	be := newBackend(b, shared.Endpoints(), testPrefix(b))
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		var id [8]byte
		rand.Read(id[:])
		for pb.Next() {
			err := be.Update(ctx, func(tx store.Tx) error {
				tx.Get([]byte("tokens"), id[:])
				return tx.Put([]byte("tokens"), id[:], []byte("value"))
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
