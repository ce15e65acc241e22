package capsuled

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestSyncRequestsCounted: a peer sends 60 SYNCs (plain and range, 20 at
// a time, sync_answers_per_peer 2, so some may be refused 503): every one
// is answered once, and gdp_capsuled_requests_total{op="SYNC"} summed over
// its statuses counts exactly the answers. (A benchmark's reading of 2–6
// for ~100 answers read one status's series, not the sum.)
func TestSyncRequestsCounted(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, SyncAnswersPerPeer: 2})
	var answers atomic.Int64
	sw.net.set(func(h pdu.Header, m *wire.Message) []peerAnswer {
		if m.Op == wire.OpSync && m.IsResponse() && h.Dst == sw.p.Name {
			answers.Add(1)
		}
		return nil // s's own SYNCs to its peers go unanswered
	}, nil)
	base := syncCount(t, sw)
	const n = 60
	for i := range n {
		m := &wire.Message{Op: wire.OpSync, ID: uint64(1000 + i), Capsule: sw.c[:], From: 1}
		if i%2 == 1 {
			m.From, m.To = 2, 9 // a range SYNC
		}
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		pb, err := (&pdu.Header{Type: pdu.TypeData, TTL: 32, Src: sw.p.Name, Dst: sw.net.self, Payload: b}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		sw.net.c.HandlePDU(pb)
		if i%20 == 19 {
			waitFor(t, 10*time.Second, "the answers", func() bool { return answers.Load() == int64(i+1) })
		}
	}
	waitFor(t, 10*time.Second, "every answer", func() bool { return answers.Load() == n })
	if got := syncCount(t, sw) - base; got != n {
		t.Fatalf("requests_total{op=SYNC} grew by %v for %d answers", got, n)
	}
}

// syncCount sums gdp_capsuled_requests_total{op="SYNC"} over its statuses.
func syncCount(t *testing.T, sw *syncWorld) float64 {
	t.Helper()
	mfs, err := sw.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "gdp_capsuled_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" && l.GetValue() == "SYNC" {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
