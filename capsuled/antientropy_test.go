package capsuled_test

import (
	"context"
	"crypto/rand"
	"sort"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestJunkCapsulesDoNotSlowSync: one member places many capsules on a
// server, each with 15 replicas nobody can reach, and keeps placing more.
// Anti-entropy compares capsules in parallel, asks peers in parallel with
// a timeout, stops at a NAK and backs off from peers that do not answer:
// the lag of an honest capsule (written to replica a only, pulled by b)
// stays within a few times its lag without the junk.
func TestJunkCapsulesDoNotSlowSync(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	a := w.newReplica(r1, "a")
	b := w.newReplicaConf(r1, "b", capsuled.Config{Placement: capsuled.PlacementPolicy{MaxReplicas: 16, MaxPerOwner: -1}})
	cc := w.user(r1, "writer")
	tc := newTestCapsule(t, "honest")
	tc.create(t, cc, 1, a, b)
	name := tc.meta.Name()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// Writes reach a only; b learns them by anti-entropy.
	wr, err := cc.NewWriter(ctx, name, tc.writer.Key, client.WriterOptions{Cadence: -1, Replicas: []pdu.Name{a.id.Name}, W: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close(context.Background())
	lag := func() time.Duration {
		t.Helper()
		if _, err := wr.Append(ctx, []byte("x")); err != nil {
			t.Fatal(err)
		}
		d, err := wr.Flush(ctx)
		if err != nil || !d.Met {
			t.Fatalf("write: %v %v", d, err)
		}
		start := time.Now()
		for {
			h, err := b.srv.Store().Head(name)
			if err == nil && h.Seqno >= d.Seqno {
				return time.Since(start)
			}
			if time.Since(start) > 30*time.Second {
				return time.Since(start)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	median := func(n int, between func()) time.Duration {
		var ds []time.Duration
		for range n {
			if between != nil {
				between()
			}
			ds = append(ds, lag())
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[n/2]
	}
	base := median(5, nil)

	junkOwner, err := certs.NewIdentity(certs.KindClient, "junk owner")
	if err != nil {
		t.Fatal(err)
	}
	u := w.rawUser(r1)
	placeJunk := func(n int) {
		for range n {
			meta, err := certs.NewCapsule(junkOwner.Key, junkOwner.Public(), "junk")
			if err != nil {
				t.Fatal(err)
			}
			replicas := []pdu.Name{b.id.Name}
			for range 15 {
				var x pdu.Name
				_, _ = rand.Read(x[:])
				replicas = append(replicas, x)
			}
			rec, err := capsule.SignPlacement(junkOwner.Key, meta, replicas, 1, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			ad, err := certs.IssueAdCert(junkOwner.Key, meta.Name(), b.id.Name, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			c := meta.Name()
			if resp := u.do(b.id.Name, &wire.Message{Op: wire.OpCreate, Capsule: c[:], Metadata: meta.Marshal(), AdCert: ad.Marshal(),
				Placement: rec.Marshal()}); !resp.Status.Success() {
				t.Fatalf("junk create: %s %s", resp.Status, resp.Error)
			}
		}
	}
	placeJunk(40)
	// The junk keeps coming: fresh capsules with fresh unreachable peers
	// before every measurement.
	junk := median(5, func() { placeJunk(5) })
	t.Logf("honest lag: %s without junk, %s with %d junk capsules of 15 unreachable replicas (sync errors: %v unreachable, %v nak; %v skipped)",
		base, junk, len(b.srv.Store().Capsules())-1, b.metric("gdp_capsuled_sync_errors_total", "unreachable"),
		b.metric("gdp_capsuled_sync_errors_total", "nak"), b.metric("gdp_capsuled_sync_skipped_total", ""))
	if bound := max(5*base, 3*time.Second); junk > bound {
		t.Fatalf("honest lag with junk capsules %s, above %s (5x the %s without)", junk, bound, base)
	}
}

// TestFedCapsuleNotPulled: while a writer's batches keep extending a
// capsule on its replicas, periodic anti-entropy leaves it alone (it would
// only fetch and verify a second time the batches in flight; a replica
// that misses one learns it from the next batch's gap); once the writer is
// quiet for a sync interval, the replicas compare again.
func TestFedCapsuleNotPulled(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	a, b := w.newReplica(r1, "a"), w.newReplica(r1, "b")
	cc := w.user(r1, "writer")
	tc := newTestCapsule(t, "fed")
	tc.create(t, cc, 2, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wr, err := cc.NewWriter(ctx, tc.meta.Name(), tc.writer.Key, client.WriterOptions{Cadence: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close(context.Background())
	syncs := func() float64 { return a.opCount("SYNC") + b.opCount("SYNC") }
	// One record at a time, each acknowledged before the next: the
	// replicas never see a gap, so nothing forces a sync.
	write := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); {
			if _, err := wr.Append(ctx, []byte("x")); err != nil {
				t.Fatal(err)
			}
			if d, err := wr.Flush(ctx); err != nil || !d.Met {
				t.Fatalf("write: %v %v", d, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	write(500 * time.Millisecond) // past the start-up comparisons
	before := syncs()
	write(3 * time.Second) // ~10 periodic rounds per replica (300 ms)
	fed := a.metric("gdp_capsuled_sync_fed_total", "") + b.metric("gdp_capsuled_sync_fed_total", "")
	if got := syncs() - before; got > 4 || fed < 6 {
		t.Fatalf("while being written: %v SYNC requests answered, %v periodic comparisons skipped; want at most 4 and at least 6", got, fed)
	}
	quiet := syncs()
	eventually(t, slow*10*time.Second, "the replicas compare again once the writer is quiet", func() bool { return syncs() >= quiet+2 })
}

// opCount sums r's gdp_capsuled_requests_total for operation op over every
// status.
func (r *replica) opCount(op string) float64 {
	mfs, err := r.reg.Gather()
	if err != nil {
		return -1
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "gdp_capsuled_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" && l.GetValue() == op {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}
