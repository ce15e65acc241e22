package certs

import (
	"crypto/ed25519"
	"testing"
	"time"
)

// BenchmarkVerifyRoute verifies a full capsule chain (AdCert + RtCert +
// membership: three Ed25519 signatures, four metadata hashes) per
// iteration, with no caching. Compare with BenchmarkEd25519Verify: the
// ceiling is the raw verify rate divided by three.
func BenchmarkVerifyRoute(b *testing.B) {
	f := newFixture(b)
	name := f.capsule.Name()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if _, err := f.v.VerifyRoute(f.chain, name, f.router.Name); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	chains := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(chains, "chains/s")
	b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "chains/cpu-s")
	// The baseline in the same run and the same load: 3*b.N raw verifies
	// right after. "of-ceiling" is chains/s over (verifies/s / 3); 1.0 means
	// all time goes to the three signature checks.
	vps := rawVerifyRate(b, f, 3*b.N)
	b.ReportMetric(vps, "ed25519-verifies/s")
	b.ReportMetric(chains/(vps/3), "of-ceiling")
}

func rawVerifyRate(b *testing.B, f *fixture, n int) float64 {
	msg := sigStructure(KindRtCert, f.rt.appendPayload(nil))
	pub := f.server.Public()
	start := time.Now()
	for i := 0; i < n; i++ {
		if !ed25519.Verify(pub, msg, f.rt.sig) {
			b.Fatal("verify failed")
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkParseVerifyRoute adds strict parsing of the encoded chain, as a
// router does for an ADVERTISE off the wire.
func BenchmarkParseVerifyRoute(b *testing.B) {
	f := newFixture(b)
	enc := f.chain.Marshal()
	name := f.capsule.Name()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		c, err := ParseChain(enc)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.v.VerifyRoute(c, name, f.router.Name); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "chains/cpu-s")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "chains/s")
}

// BenchmarkEd25519Verify is the baseline: one raw crypto/ed25519 Verify of a
// certificate-sized message.
func BenchmarkEd25519Verify(b *testing.B) {
	f := newFixture(b)
	msg := sigStructure(KindRtCert, f.rt.appendPayload(nil))
	pub := f.server.Public()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if !ed25519.Verify(pub, msg, f.rt.sig) {
			b.Fatal("verify failed")
		}
	}
	b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "verifies/cpu-s")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/3, "chains/s-ceiling")
}
