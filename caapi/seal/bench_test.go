package seal_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/caapi/seal"
	"github.com/gdpnet/gdpnet/capsuled/capsuledtest"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
)

// BenchmarkSealedAppend: appends of 256-byte records to an encrypted
// capsule (seal.Sealer over client.Writer) beside the baseline in the same
// run, plain appends with the same Writer options to a plain capsule on
// the same server; rounds of 2,000 records and a durable Flush in ABBA
// order, b.N records of each kind (at least 40,000, so one iteration
// under make bench's 1s measures enough). Reports both rates, their ratio
// (the target: ≥ 0.8) and the ratio of the process's CPU time
// per record (writer, router and server all run in this process).
func BenchmarkSealedAppend(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	w := capsuledtest.New(b)
	r := w.Router("r1")
	srv := w.Server(r, "s1")
	cc := w.User(r, "bench writer")
	plainCap, sealedCap := capsuledtest.NewCapsule(b, "plain"), capsuledtest.NewCapsule(b, "sealed")
	plainCap.Create(b, cc, 1, srv)
	sealedCap.Create(b, cc, 1, srv)
	reader, err := certs.NewIdentity(certs.KindClient, "bench reader")
	if err != nil {
		b.Fatal(err)
	}
	pw, err := cc.NewWriter(ctx, plainCap.Name(), plainCap.Writer.Key, client.WriterOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer pw.Close(ctx)
	sw, err := cc.NewWriter(ctx, sealedCap.Name(), sealedCap.Writer.Key, client.WriterOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer sw.Close(ctx)
	sl, err := seal.NewSealer(ctx, sw, sealedCap.Writer.Key, reader.Public())
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 256)
	// Many short rounds in ABBA order: the machine's load changes over a
	// run, and short alternating rounds see the same load; neither kind
	// always runs second (after the other's writes left the server's
	// store compaction debt).
	const chunk = 2000
	rounds := max(b.N, 40000) / chunk
	n := chunk
	var plainCPU, sealedCPU time.Duration
	run := func(name string, appendOne func([]byte) error, flush func() (client.Durability, error)) (time.Duration, time.Duration) {
		c0 := cpuTime()
		t0 := time.Now()
		for i := 0; i < n; i++ {
			copy(data, fmt.Sprintf("%s record %d", name, i))
			if err := appendOne(data); err != nil {
				b.Fatal(err)
			}
		}
		if d, err := flush(); err != nil || !d.Met {
			b.Fatalf("%s flush: %v, %v", name, d, err)
		}
		return time.Since(t0), cpuTime() - c0
	}
	plainFn := func(d []byte) error { _, err := pw.Append(ctx, d); return err }
	sealedFn := func(d []byte) error { _, err := sl.Append(ctx, d); return err }
	var plain, sealed time.Duration
	b.ResetTimer()
	for round := 0; round < rounds; round++ {
		p := func() {
			wall, cpu := run("plain", plainFn, func() (client.Durability, error) { return pw.Flush(ctx) })
			plain, plainCPU = plain+wall, plainCPU+cpu
		}
		s := func() {
			wall, cpu := run("sealed", sealedFn, func() (client.Durability, error) { return sw.Flush(ctx) })
			sealed, sealedCPU = sealed+wall, sealedCPU+cpu
		}
		if round%2 == 0 {
			p()
			s()
		} else {
			s()
			p()
		}
	}
	b.StopTimer()
	pr := float64(rounds*n) / plain.Seconds()
	sr := float64(rounds*n) / sealed.Seconds()
	b.ReportMetric(pr, "plain-records/s")
	b.ReportMetric(sr, "sealed-records/s")
	b.ReportMetric(sr/pr, "sealed-vs-plain")
	// The same work per CPU second of this process (writer, router and
	// server all run in it): the cost of sealing without the machine's
	// other load in the figure.
	b.ReportMetric(float64(plainCPU)/float64(sealedCPU), "sealed-vs-plain-cpu")
	// CPU per record of each kind: what sealing adds, in microseconds.
	b.ReportMetric(float64(plainCPU.Microseconds())/float64(rounds*n), "plain-cpu-us/record")
	b.ReportMetric(float64(sealedCPU.Microseconds())/float64(rounds*n), "sealed-cpu-us/record")
}

// cpuTime is the CPU time this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
