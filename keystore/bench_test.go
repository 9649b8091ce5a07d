package keystore_test

import (
	"testing"

	"github.com/flinkpki/flinkpki/keystore"
)

func benchmarkEncode(b *testing.B, f keystore.Format) {
	m := newMaterial(b, "ecdsa-p256")
	ks := m.keyStore("")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := keystore.EncodeKeyStore(f, ks); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkEncodeJKS measures a P-256 keystore with a two-certificate chain.
func BenchmarkEncodeJKS(b *testing.B) { benchmarkEncode(b, keystore.JKS) }

// BenchmarkEncodePKCS12 measures the same keystore as Modern2023 PKCS#12,
// dominated by PBKDF2's 2048 iterations.
func BenchmarkEncodePKCS12(b *testing.B) { benchmarkEncode(b, keystore.PKCS12) }

// BenchmarkEncodeJKSTrustStore measures a truststore with two CAs.
func BenchmarkEncodeJKSTrustStore(b *testing.B) {
	m := newMaterial(b, "ecdsa-p256")
	ts := m.trustStore("")
	for b.Loop() {
		if _, err := keystore.EncodeTrustStore(keystore.JKS, ts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
