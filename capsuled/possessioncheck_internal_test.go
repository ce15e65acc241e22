package capsuled

import (
	"sync"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/pdu"
)

// syncAsks records whether each SYNC sent to one peer asked for a
// possession tag (carried a nonce), round by round.
type syncAsks struct {
	mu     sync.Mutex
	nonced []bool
}

func (a *syncAsks) add(m *wire.Message) {
	a.mu.Lock()
	a.nonced = append(a.nonced, len(m.Hash) == wire.NonceLen)
	a.mu.Unlock()
}

// take returns the SYNCs recorded since the last take.
func (a *syncAsks) take() []bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.nonced
	a.nonced = nil
	return out
}

// checkDueNow makes the next possession check of peer's head of sw.c due,
// as if possession_interval had passed since the last one.
func checkDueNow(sw *syncWorld, peer pdu.Name) {
	r := &sw.s.repl
	r.mu.Lock()
	defer r.mu.Unlock()
	k := [2]pdu.Name{sw.c, peer}
	e := r.m[k]
	e.nextCheck = time.Time{}
	r.m[k] = e
}

// TestPossessionCheckSchedule: this server asks peer p for a possession
// tag only when a check is due. The first SYNC of the first round asks
// (nothing proven); quiet rounds after it ask for none, and p stays shown
// at the head it proved; once this server's own head moves (a writer's
// batch reached both), the first SYNC of the next round asks; so it does
// once possession_interval has passed. A liar that proved 995 honestly
// and then claims 1,000 (which this server holds) with the writer's
// copied heartbeat and no tag, to a SYNC that asked for none, is not shown
// at 1,000: the SYNC is asked again at once with a nonce, where the liar
// either answers honestly (995, proven) or claims 1,000 again and fails
// the check (counted, its error shown, 995 kept as the head it proved).
func TestPossessionCheckSchedule(t *testing.T) {
	for _, liar := range []string{"honest when asked", "lies when asked"} {
		t.Run(liar, func(t *testing.T) {
			sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, PublishWait: 200 * time.Millisecond})
			l := newPossessionLog(sw)
			l.fill(t, sw.s.st, sw.c, 500)
			p := replicaOf(t, sw, l, sw.p.Name, 500)
			hb1000 := l.hbs[len(l.hbs)-1].Marshal()
			var asks syncAsks
			var mu sync.Mutex
			lying := false
			sw.net.set(func(h pdu.Header, m *wire.Message) []peerAnswer {
				if m.Op != wire.OpSync {
					return nil
				}
				if h.Dst != sw.p.Name {
					return []peerAnswer{{from: h.Dst, msg: m.Reply(wire.StatusOK)}} // an empty peer
				}
				asks.add(m)
				resp := p.handleSync(request{from: h.Src, msg: m})
				mu.Lock()
				lie := lying && (len(m.Hash) == 0 || liar == "lies when asked")
				mu.Unlock()
				if lie {
					resp.Head, resp.Heartbeat = 1000, hb1000
				}
				return []peerAnswer{{from: h.Dst, msg: resp}}
			}, nil)
			ok := sw.s.met.possessionChecks.WithLabelValues("ok")
			failed := sw.s.met.possessionChecks.WithLabelValues("failed")
			syncRound(t, sw)
			asks.take() // the start-up round's and this one's
			okWas := counterValue(ok)
			if ps := peerStatus(t, sw, sw.p.Name); ps.Head != 500 || ps.Unproven || okWas < 1 {
				t.Fatalf("p after the first rounds: %+v, %v checks", ps, okWas)
			}
			for i := range 3 {
				syncRound(t, sw)
				if got := asks.take(); len(got) != 1 || got[0] {
					t.Fatalf("quiet round %d: SYNCs asking for a tag %v, want one asking none", i, got)
				}
				if ps := peerStatus(t, sw, sw.p.Name); ps.Head != 500 || ps.Seen.IsZero() || ps.Unproven {
					t.Fatalf("quiet round %d: the proven head not shown: %+v", i, ps)
				}
			}
			if n := counterValue(ok); n != okWas {
				t.Fatalf("%v checks in quiet rounds", n-okWas)
			}
			// A writer's batch reaches both replicas: this server's head moved.
			l.fill(t, sw.s.st, sw.c, 995)
			l.fill(t, p.st, sw.c, 995)
			syncRound(t, sw)
			if got := asks.take(); len(got) == 0 || !got[0] {
				t.Fatalf("the round after an append: SYNCs asking for a tag %v, want the first asking", got)
			}
			if ps := peerStatus(t, sw, sw.p.Name); ps.Head != 995 || ps.Unproven || counterValue(ok) != okWas+1 {
				t.Fatalf("after an append: %+v, %v checks, want %v", ps, counterValue(ok), okWas+1)
			}
			// possession_interval passes.
			syncRound(t, sw)
			if got := asks.take(); len(got) != 1 || got[0] {
				t.Fatalf("quiet again: SYNCs asking for a tag %v", got)
			}
			checkDueNow(sw, sw.p.Name)
			syncRound(t, sw)
			if got := asks.take(); len(got) != 1 || !got[0] {
				t.Fatalf("once the interval passed: SYNCs asking for a tag %v, want one asking", got)
			}
			// The liar: this server holds 1,000; p (holding 995, proven)
			// claims 1,000 to a SYNC that asked for no tag.
			l.fill(t, sw.s.st, sw.c, 1000)
			syncRound(t, sw) // own head moved: a check, of 995
			asks.take()
			mu.Lock()
			lying = true
			mu.Unlock()
			okWas, failedWas := counterValue(ok), counterValue(failed)
			syncRound(t, sw)
			got := asks.take()
			if len(got) != 2 || got[0] || !got[1] {
				t.Fatalf("a claim of another head without a tag: SYNCs asking for a tag %v, want [false true] (asked again at once with a nonce)", got)
			}
			ps := peerStatus(t, sw, sw.p.Name)
			if ps.Head == 1000 {
				t.Fatalf("the unproven claim of 1,000 shows: %+v", ps)
			}
			if ps.Lag != 5 {
				t.Fatalf("p's lag %d, want 5 (at 995)", ps.Lag)
			}
			switch liar {
			case "honest when asked":
				if ps.Head != 995 || ps.Unproven || counterValue(ok) != okWas+1 || counterValue(failed) != failedWas {
					t.Fatalf("honest when asked: %+v, ok %v failed %v", ps, counterValue(ok)-okWas, counterValue(failed)-failedWas)
				}
			default:
				if ps.Head != 995 || !ps.Unproven || ps.Error == "" || counterValue(failed) != failedWas+1 {
					t.Fatalf("lies when asked: %+v, failed %v", ps, counterValue(failed)-failedWas)
				}
				// The check stays pending: each next round asks at once
				// (its first SYNC carries a nonce), and fails again.
				for i := range 2 {
					syncRound(t, sw)
					if got := asks.take(); len(got) != 1 || !got[0] {
						t.Fatalf("round %d after a failed check: SYNCs asking for a tag %v, want one asking", i, got)
					}
					if n := counterValue(failed); n != failedWas+2+float64(i) {
						t.Fatalf("round %d after a failed check: %v checks failed in all, want %v", i, n-failedWas, 2+i)
					}
				}
			}
		})
	}
}
