package capsuled

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/pdu"
)

// The tests in this file each kill mutants of anti-entropy's checks of
// what peers answer that survived the sync tests (docs/SECURITY.md §2.13).

// TestSyncPeerAnswersChecked: what a peer replica answers a SYNC with is
// believed only when it is a success and proves its head. An answer whose
// head heartbeat does not decode is counted unproven_head and shown
// nowhere (and does not crash the server); an error answer (503 busy, 404)
// is that peer's error in Status and counted, not an empty replica whose
// head 0 is proven. Mutants: sync.go proveHead's decode error ignored
// (:875 skip-if: a nil heartbeat dereferenced), askSync's error status
// ignored (:619 skip-if).
func TestSyncPeerAnswersChecked(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, PublishWait: 200 * time.Millisecond})
	src := syncSource(t, sw, []int{3, 2}, 10)
	var answer atomic.Value // func(resp *wire.Message)
	answer.Store(func(*wire.Message) {})
	sw.net.set(func(h pdu.Header, m *wire.Message) []peerAnswer {
		if m.Op != wire.OpSync {
			return nil
		}
		if h.Dst != sw.p.Name {
			return []peerAnswer{{from: h.Dst, msg: m.Reply(wire.StatusOK)}} // an empty peer
		}
		resp := src.handleSync(request{from: h.Src, dst: h.Dst, msg: m})
		answer.Load().(func(*wire.Message))(resp)
		return []peerAnswer{{from: h.Dst, msg: resp}}
	}, nil)

	answer.Store(func(resp *wire.Message) { resp.Head, resp.Heartbeat, resp.Segments = 1000, []byte{0xa1, 1, 2}, nil })
	syncRound(t, sw)
	if p := peerStatus(t, sw, sw.p.Name); p.Head != 0 || !p.Seen.IsZero() || !p.Unproven {
		t.Fatalf("a head heartbeat that does not decode: %+v; want nothing shown, unproven", p)
	}
	if n := counterValue(sw.s.met.dropped.WithLabelValues("unproven_head")); n != 1 {
		t.Fatalf("dropped_total{unproven_head} = %v, want 1", n)
	}

	// An honest round: p's head 5 proven and shown, this replica caught up.
	answer.Store(func(*wire.Message) {})
	syncRound(t, sw)
	if p := peerStatus(t, sw, sw.p.Name); p.Head != 5 || p.Seen.IsZero() || p.Error != "" {
		t.Fatalf("an honest answer: %+v", p)
	}
	for _, tc := range []struct {
		status wire.Status
		reason string
	}{{wire.StatusUnavailable, "busy"}, {wire.StatusNotFound, "refused"}} {
		was := counterValue(sw.s.met.syncErrors.WithLabelValues(tc.reason))
		answer.Store(func(resp *wire.Message) {
			*resp = *resp.Reply(tc.status)
			resp.Error = "not now"
		})
		syncRound(t, sw)
		p := peerStatus(t, sw, sw.p.Name)
		if p.Error == "" || p.Head != 5 {
			t.Fatalf("an answer with status %d: %+v; want the error shown, head 5 kept", tc.status, p)
		}
		if n := counterValue(sw.s.met.syncErrors.WithLabelValues(tc.reason)); n != was+1 {
			t.Fatalf("an answer with status %d: sync_errors_total{%s} went from %v to %v", tc.status, tc.reason, was, n)
		}
	}
}

// TestNoPossessionTagWhileBehind: while this replica is behind the head a
// peer showed (on the writer's heartbeat), it cannot check a possession
// tag, so its plain SYNCs ask for none: each would cost the peer up to 65
// entry reads for nothing. Mutant: replstatus.go checkDue's !e.held case
// skipped (:152 skip-case).
func TestNoPossessionTagWhileBehind(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, PublishWait: 200 * time.Millisecond})
	src := syncSource(t, sw, []int{3, 2}, 10)
	var nonced, asked atomic.Int64
	sw.net.set(func(h pdu.Header, m *wire.Message) []peerAnswer {
		if m.Op != wire.OpSync {
			return nil
		}
		if h.Dst != sw.p.Name {
			return []peerAnswer{{from: h.Dst, msg: m.Reply(wire.StatusOK)}} // an empty peer
		}
		asked.Add(1)
		if len(m.Hash) == wire.NonceLen {
			nonced.Add(1)
		}
		// p shows its head with the writer's heartbeat and withholds the
		// entries: this replica stays behind.
		resp := src.handleSync(request{from: h.Src, dst: h.Dst, msg: m})
		resp.Segments, resp.More = nil, false
		return []peerAnswer{{from: h.Dst, msg: resp}}
	}, nil)
	for range 3 {
		syncRound(t, sw)
	}
	if p := peerStatus(t, sw, sw.p.Name); p.Head != 5 || p.Seen.IsZero() {
		t.Fatalf("p's head on the writer's heartbeat not shown: %+v", p)
	}
	if h, _ := sw.s.st.Head(sw.c); h.Seqno != 0 {
		t.Fatalf("this replica holds %d entries; the test wants it behind", h.Seqno)
	}
	if asked.Load() != 3 || nonced.Load() != 1 {
		t.Fatalf("%d of %d SYNCs to p asked for a possession tag; want only the first (before p's head was known)",
			nonced.Load(), asked.Load())
	}
}
