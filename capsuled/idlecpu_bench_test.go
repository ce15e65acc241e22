package capsuled_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// BenchmarkIdleReplicas: the CPU two replicas spend on capsules nobody
// writes: anti-entropy compares each capsule with its peer every
// sync_interval (1 s, the default), and asks for a proof of possession
// only when a check is due (possession_interval, default 1m). Replicas a
// and b (one router, real QUIC) hold GDP_IDLE_CAPSULES capsules (default
// 200) of GDP_IDLE_RECORDS records (default 4) of GDP_IDLE_BYTES bytes
// (default 50,000) each; once every capsule's peer is shown proven and
// one more interval has passed, the whole process's CPU time (routers,
// a, b) is measured over GDP_IDLE_SECONDS (default 20). cpu-ms/s is CPU
// milliseconds per second of wall time; checks/s the possession checks
// both replicas ran; syncs/s the SYNCs both answered. GDP_IDLE_SAMPLES
// sets possession_samples (default 16; a check reads 1 + min(samples,
// records) entries on each side). Skipped unless GDP_IDLE_CAPSULES is set
// (it takes a minute or more):
//
//	GDP_IDLE_CAPSULES=200 go test -run '^$' -bench IdleReplicas -benchtime 1x ./capsuled
func BenchmarkIdleReplicas(b *testing.B) {
	env := func(k string, def int) int {
		if n, err := strconv.Atoi(os.Getenv(k)); err == nil && n > 0 {
			return n
		}
		return def
	}
	if os.Getenv("GDP_IDLE_CAPSULES") == "" {
		b.Skip("GDP_IDLE_CAPSULES not set")
	}
	nCaps, nRecs, size, secs := env("GDP_IDLE_CAPSULES", 200), env("GDP_IDLE_RECORDS", 4), env("GDP_IDLE_BYTES", 50000), env("GDP_IDLE_SECONDS", 20)
	w := newWorld(b)
	r1 := w.router("r1")
	conf := capsuled.Config{SyncInterval: time.Second, PossessionSamples: env("GDP_IDLE_SAMPLES", capsuled.DefaultPossessionSamples)}
	ra, rb := w.newReplicaConf(r1, "a", conf), w.newReplicaConf(r1, "b", conf)
	cc := w.user(r1, "writer")
	ctx := context.Background()
	data := make([]byte, size)
	for i := range nCaps {
		tc := newTestCapsule(b, fmt.Sprintf("idle %d", i))
		tc.create(b, cc, 2, ra, rb)
		wr, err := cc.NewWriter(ctx, tc.meta.Name(), tc.writer.Key, client.WriterOptions{Cadence: -1, Replicas: []pdu.Name{ra.id.Name, rb.id.Name}, W: 2})
		if err != nil {
			b.Fatal(err)
		}
		for j := range nRecs {
			data[0], data[1] = byte(j), byte(i)
			if _, err := wr.Append(ctx, data); err != nil {
				b.Fatal(err)
			}
		}
		if d, err := wr.Flush(ctx); err != nil || !d.Met {
			b.Fatalf("capsule %d: %v %v", i, d, err)
		}
		_ = wr.Close(ctx)
	}
	proven := func(r *replica) bool {
		st := r.srv.Status()
		if len(st) != nCaps {
			return false
		}
		for _, c := range st {
			if c.Head != uint64(nRecs) || len(c.Peers) != 1 || c.Peers[0].Head != uint64(nRecs) || c.Peers[0].Unproven || c.Peers[0].Seen.IsZero() {
				return false
			}
		}
		return true
	}
	eventually(b, 2*time.Minute, "every capsule's peer shown, proven", func() bool { return proven(ra) && proven(rb) })
	time.Sleep(3 * time.Second) // the rounds that proved them end
	count := func(name, label string) float64 { return ra.metric(name, label) + rb.metric(name, label) }
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	checks, syncs := count("gdp_capsuled_possession_checks_total", "ok"), count("gdp_capsuled_requests_total", "SYNC")
	time.Sleep(time.Duration(secs) * time.Second)
	el, used := time.Since(start).Seconds(), cpuTime()-cpu
	checks, syncs = count("gdp_capsuled_possession_checks_total", "ok")-checks, count("gdp_capsuled_requests_total", "SYNC")-syncs
	b.StopTimer()
	b.ReportMetric(float64(used.Milliseconds())/el, "cpu-ms/s")
	b.ReportMetric(checks/el, "checks/s")
	b.ReportMetric(syncs/el, "syncs/s")
	b.ReportMetric(float64(used.Microseconds())/max(syncs, 1), "cpu-µs/sync")
}
