package issuer

import (
	"context"
	"testing"

	"github.com/flinkpki/flinkpki/ca"
)

// BenchmarkIssueP256 measures leaf signing with a P-256 CA from all cores,
// the server-side cost of one init container. Go's x509.CreateCertificate
// verifies its own signature, so each op is one sign plus one verify.
func BenchmarkIssueP256(b *testing.B) {
	s := newSigner(b, ca.PurposeInternal, ca.KeyTypeECDSAP256, 0)
	req := Request{Cluster: "orders", Holder: "tm-0", Role: RoleTaskManager, PublicKey: newKey(b, ca.KeyTypeECDSAP256).Public()}
	cfg := Config{Now: fixedClock(t0.Add(1e9))}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := Issue(ctx, cfg, s, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkCheckCSRP256 measures CSR parsing and checking, the other
// per-request cost on the server (one signature verification).
func BenchmarkCheckCSRP256(b *testing.B) {
	der := newCSR(b, newKey(b, ca.KeyTypeECDSAP256), nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := CheckCSR(der, 0); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
