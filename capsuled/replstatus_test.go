package capsuled_test

import (
	"context"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsuled"
)

// TestStatusReplication: Status shows each capsule's head and what the
// server learnt of its peer's, each from the peer's answers to its own
// SYNCs, proven by the writer's heartbeat of the head (a learnt b's head
// from b's SYNC requests too, before heads had to be proven: a compared
// once an hour then; now it compares as b does). When b stops, a's view of
// it stays at the head last heard and the lag grows with a's writes.
func TestStatusReplication(t *testing.T) {
	w := newWorld(t)
	r1 := w.router("r1")
	a := w.newReplica(r1, "a")
	b := w.newReplica(r1, "b")
	cc := w.user(r1, "writer")
	tc := newTestCapsule(t, "status")
	tc.create(t, cc, 1, a, b)
	name := tc.meta.Name()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	write := tc.writes(ctx, t, cc, 1, a)
	write(5)
	peerOf := func(r *replica) (capsuled.CapsuleStatus, capsuled.PeerStatus) {
		st := r.srv.Status()
		if len(st) != 1 || st[0].Name != name || len(st[0].Peers) != 1 {
			t.Fatalf("status %+v", st)
		}
		return st[0], st[0].Peers[0]
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ca, pa := peerOf(a)
		cb, pb := peerOf(b)
		if ca.Head == 5 && pa.Name == b.id.Name && pa.Head == 5 && pa.Lag == 0 && !pa.Seen.IsZero() &&
			cb.Head == 5 && pb.Name == a.id.Name && pb.Head == 5 && !pb.Seen.IsZero() && cb.Lag() == 0 &&
			ca.Replicas == 2 && ca.W == 1 && ca.Description == "status" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a: %+v %+v\nb: %+v %+v", ca, pa, cb, pb)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.stop()
	write(3)
	c, p := peerOf(a)
	if c.Head != 8 || c.Newest != 8 || p.Head != 5 || p.Lag != 3 {
		t.Fatalf("after b stopped and 3 more records: %+v %+v", c, p)
	}
	// The same figures as gauges, for Prometheus.
	if v := gaugeValue(t, a, "gdp_capsuled_replication_lag_records"); v != 3 {
		t.Errorf("gdp_capsuled_replication_lag_records = %v, want 3", v)
	}
	if v := gaugeValue(t, a, "gdp_capsuled_capsules_lagging"); v != 1 {
		t.Errorf("gdp_capsuled_capsules_lagging = %v, want 1", v)
	}
}

func gaugeValue(t *testing.T, r *replica, name string) float64 {
	t.Helper()
	fams, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}
