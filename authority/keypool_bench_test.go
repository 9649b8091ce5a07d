package authority_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/authority/authoritytest"
	"github.com/flinkpki/flinkpki/ca"
)

// BenchmarkBakeBurst measures a burst of 200 RSA-2048 bakes, 8 at a time,
// after idle time: with the key pool full, and generating every key on
// demand. Run it with -benchtime=1x; filling the pool takes seconds.
func BenchmarkBakeBurst(b *testing.B) {
	for _, pooled := range []bool{false, true} {
		name := "on-demand"
		if pooled {
			name = "pool"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				pool := authority.NewKeyPool(authority.KeyPoolConfig{Size: 200, Idle: time.Millisecond, Prewarm: []ca.KeyType{ca.KeyType("rsa-2048")}})
				var keys authority.KeySource = pool
				if !pooled {
					keys = authority.NewKeyPool(authority.KeyPoolConfig{Size: 1}) // bounded workers, nothing kept ready
				}
				env := authoritytest.New(b, authoritytest.WithKeyPool(keys))
				env.CreateCluster(authority.CreateClusterRequest{Name: "burst", KeyType: "rsa-2048"})
				if pooled {
					ctx, cancel := context.WithCancel(context.Background())
					go pool.Run(ctx)
					for pool.Ready()[ca.KeyType("rsa-2048")] < 200 {
						time.Sleep(20 * time.Millisecond)
					}
					cancel()
				}
				b.StartTimer()
				start := time.Now()
				var wg sync.WaitGroup
				sem := make(chan struct{}, 8)
				for i := range 200 {
					wg.Add(1)
					sem <- struct{}{}
					go func() {
						defer wg.Done()
						defer func() { <-sem }()
						_, err := env.Authority.Bake(env.Ctx, authoritytest.Admin, authority.EnrollRequest{Cluster: "burst", Role: "taskmanager", Holder: fmt.Sprintf("b-%d", i)})
						if err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
				b.ReportMetric(200/time.Since(start).Seconds(), "bakes/s")
			}
		})
	}
}
