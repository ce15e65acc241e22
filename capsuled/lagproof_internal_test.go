package capsuled

import (
	"context"
	"crypto/ed25519"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestLagIgnoresUnprovenHeads: a peer answers our SYNCs claiming head
// 1,000 (it holds 5): without a heartbeat, with the writer's heartbeat of
// its real head, or with a heartbeat for 1,000 signed by a key that is not
// the writer's. Each claim is counted (dropped_total{unproven_head}) and
// left out of Status and the lag gauges; once the peer answers honestly
// (with the writer's heartbeat for its head) its head shows, and the
// peer's own SYNC requests (from its head + 1, unproven) do not move it.
// A lie after that leaves a possession check due: the next round asks for
// a tag at once, and the honest answer clears the unproven mark.
func TestLagIgnoresUnprovenHeads(t *testing.T) {
	_, forger, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	lies := map[string]func(c pdu.Name, resp *wire.Message){
		"no heartbeat": func(_ pdu.Name, resp *wire.Message) { resp.Heartbeat, resp.Head = nil, 1000 },
		"heartbeat of another head": func(_ pdu.Name, resp *wire.Message) {
			resp.Head = 1000
		},
		"heartbeat not the writer's": func(c pdu.Name, resp *wire.Message) {
			hb := &capsule.Heartbeat{Capsule: c, Seqno: 1000, Time: time.Now().UnixNano()}
			hb.Sign(forger)
			resp.Heartbeat, resp.Head = hb.Marshal(), 1000
		},
	}
	for name, lie := range lies {
		t.Run(name, func(t *testing.T) {
			sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, PublishWait: 200 * time.Millisecond})
			src := syncSource(t, sw, []int{3, 2}, 10)
			var lying atomic.Bool
			lying.Store(true)
			sw.net.set(func(h pdu.Header, m *wire.Message) []peerAnswer {
				if m.Op != wire.OpSync {
					return nil
				}
				if h.Dst != sw.p.Name {
					return []peerAnswer{{from: h.Dst, msg: m.Reply(wire.StatusOK)}} // an empty peer
				}
				resp := src.handleSync(request{from: h.Src, dst: h.Dst, msg: m})
				if lying.Load() {
					lie(sw.c, resp)
				}
				return []peerAnswer{{from: h.Dst, msg: resp}}
			}, nil)
			round := func() {
				waitFor(t, 20*time.Second, "the sync under way to end", func() bool {
					sw.s.sync.mu.Lock()
					defer sw.s.sync.mu.Unlock()
					return !sw.s.sync.running[sw.c]
				})
				sw.s.syncCapsule(context.Background(), sw.c, true)
			}
			peer := func() PeerStatus {
				for _, c := range sw.s.Status() {
					for _, p := range c.Peers {
						if p.Name == sw.p.Name {
							return p
						}
					}
				}
				t.Fatal("peer p not in Status")
				return PeerStatus{}
			}
			round()
			if p := peer(); p.Head == 1000 {
				t.Fatalf("the lying peer's claimed head shows: %+v", p)
			}
			if most, _ := LagFigures(sw.s.Status()); most >= 1000-5-1 {
				t.Fatalf("lag gauge %d follows the lie", most)
			}
			if n := counterValue(sw.s.met.dropped.WithLabelValues("unproven_head")); n < 1 {
				t.Fatalf("dropped_total{unproven_head} = %v", n)
			}
			if n := UnprovenReplicas(sw.s.Status()); n != 1 {
				t.Fatalf("%d replicas with an unproven head, want 1 (p)", n)
			}
			lying.Store(false)
			round()
			if p := peer(); p.Head != 5 || p.Seen.IsZero() || p.Unproven {
				t.Fatalf("an honest, proven head not shown: %+v", p)
			}
			// The peer's own SYNC request asks from 1,001: a claim
			// nobody asked for and nothing proves.
			sw.s.handleSync(request{from: sw.p.Name, dst: sw.s.name, msg: &wire.Message{Op: wire.OpSync, ID: 99, Capsule: sw.c[:], From: 1001}})
			if p := peer(); p.Head != 5 {
				t.Fatalf("a peer's SYNC request moved its head: %+v", p)
			}
			// A head once proven is not verified again when an answer
			// repeats it; a different one is, however proven the last.
			lying.Store(true)
			round()
			if p := peer(); p.Head != 5 || !p.Unproven {
				t.Fatalf("the lie after a proven head shows, or is not marked unproven: %+v", p)
			}
			// It leaves a possession check due: the next round asks p
			// for a tag at once, and the honest answer clears the mark.
			lying.Store(false)
			was := counterValue(sw.s.met.possessionChecks.WithLabelValues("ok"))
			round()
			if p := peer(); p.Head != 5 || p.Unproven || counterValue(sw.s.met.possessionChecks.WithLabelValues("ok")) != was+1 {
				t.Fatalf("after an unproven claim, an honest answer: %+v, %v checks (want 1)", p, counterValue(sw.s.met.possessionChecks.WithLabelValues("ok"))-was)
			}
		})
	}
}
