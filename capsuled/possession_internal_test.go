package capsuled

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/store"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/pdu"
)

// possessionLog is one writer's log of capsule sw.c: batches of 5, 495,
// 495 and 5 entries — 1,000 entries, whose last heartbeat is that of head
// 1,000.
type possessionLog struct {
	recs [][]capsule.Record
	hbs  []*capsule.Heartbeat
}

func newPossessionLog(sw *syncWorld) *possessionLog {
	w := capsule.NewWriter(sw.c, sw.writer.Key)
	sizes := []int{5, 495, 495, 5}
	l := &possessionLog{}
	n := 0
	for _, size := range sizes {
		for range size {
			n++
			w.Append([]byte{byte(n), byte(n >> 8), 0xd0})
		}
		recs, hb := w.Flush()
		l.recs, l.hbs = append(l.recs, recs), append(l.hbs, hb)
	}
	return l
}

// fill appends the log's batches to st until it holds upto entries (a batch
// boundary).
func (l *possessionLog) fill(t *testing.T, st *store.Store, c pdu.Name, upto uint64) {
	t.Helper()
	h, err := st.Head(c)
	if err != nil {
		t.Fatal(err)
	}
	for i, hb := range l.hbs {
		if hb.Seqno <= h.Seqno || hb.Seqno > upto {
			continue
		}
		if err := st.Append(context.Background(), c, l.recs[i], hb); err != nil {
			t.Fatal(err)
		}
	}
	if h, err = st.Head(c); err != nil || h.Seqno != upto {
		t.Fatalf("filled to %d (%v), want %d", h.Seqno, err, upto)
	}
}

// replicaOf is a SYNC-answering replica named name over a store of its own
// holding the first upto entries of l.
func replicaOf(t *testing.T, sw *syncWorld, l *possessionLog, name pdu.Name, upto uint64) *Server {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "store"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Create(context.Background(), sw.c, sw.meta.Marshal()); err != nil {
		t.Fatal(err)
	}
	l.fill(t, st, sw.c, upto)
	places, err := openPlacements(filepath.Join(t.TempDir(), "placements"))
	if err != nil {
		t.Fatal(err)
	}
	// The capsule's placement (s, p, m), as a CREATE would leave it: only
	// its other replicas are answered a possession tag.
	if err := places.put(sw.s.places.get(sw.c)); err != nil {
		t.Fatal(err)
	}
	return &Server{name: name, st: st, places: places, met: newMetrics(prometheus.NewRegistry()), cfg: Config{SyncAnswersPerPeer: 64}}
}

// syncRound runs one anti-entropy comparison of sw.c with its peers.
func syncRound(t *testing.T, sw *syncWorld) {
	t.Helper()
	waitFor(t, 20*time.Second, "the sync under way to end", func() bool {
		sw.s.sync.mu.Lock()
		defer sw.s.sync.mu.Unlock()
		return !sw.s.sync.running[sw.c]
	})
	sw.s.syncCapsule(context.Background(), sw.c, true)
}

// peerStatus is what sw.s's Status shows of peer.
func peerStatus(t *testing.T, sw *syncWorld, peer pdu.Name) PeerStatus {
	t.Helper()
	for _, c := range sw.s.Status() {
		for _, p := range c.Peers {
			if p.Name == peer {
				return p
			}
		}
	}
	t.Fatal("peer not in Status")
	return PeerStatus{}
}

// unprovenGauge reads gdp_capsuled_replicas_unproven from sw's registry.
func unprovenGauge(t *testing.T, sw *syncWorld) float64 {
	t.Helper()
	fams, err := sw.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "gdp_capsuled_replicas_unproven" {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no gauge gdp_capsuled_replicas_unproven")
	return 0
}

// TestLagNeedsPossession: this server holds 1,000 entries; peer p holds
// the first 5 and claims head 1,000 in its SYNC answers with the writer's
// genuine heartbeat of 1,000 (copied: heartbeats are public). Its claim
// carries no possession tag, its own tag (over its head 5), a tag for
// another nonce (an answer replayed), a tag over a tampered entry, or the
// tag of another replica that holds everything (relayed); each is counted
// (dropped_total{head_not_held}) and p stays shown at the head it proved,
// 5, 995 behind in the lag gauge, and is counted as a replica with an
// unproven head (gdp_capsuled_replicas_unproven). Honest p holding all 1,000 is counted at
// 1,000 and the gauge reads 0, and the round after asks for no tag (no
// check due); an honest answer without the tag (an older peer) is refused
// when it claims a head other than the one proven, and a head proven
// before is withdrawn at the next due check.
func TestLagNeedsPossession(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, PublishWait: 200 * time.Millisecond})
	l := newPossessionLog(sw)
	l.fill(t, sw.s.st, sw.c, 1000)
	full := replicaOf(t, sw, l, sw.p.Name, 1000)                                                      // p, honest
	prefix := replicaOf(t, sw, l, sw.p.Name, 5)                                                       // p, holding 5
	other := &Server{name: sw.m.Name, st: full.st, places: full.places, met: full.met, cfg: full.cfg} // m: honest, all 1,000
	hb1000 := l.hbs[len(l.hbs)-1].Marshal()
	sampled := func(m *wire.Message) [][]byte { // the entries the SYNC's tag samples, the last one tampered
		var out [][]byte
		for i, k := range wire.PossessionSamples(sw.c, m.Hash, 1000, m.Limit) {
			e := l.entryOf(k)
			if i == int(m.Limit)-1 {
				e.Data = append(bytes.Clone(e.Data), 1)
				e.DataHash = capsule.NewRecord(e.Capsule, e.Seqno, e.Time, e.Prev, e.Data).DataHash
			}
			out = append(out, e.Marshal())
		}
		return out
	}
	headEntry := l.recs[len(l.recs)-1][len(l.recs[len(l.recs)-1])-1].Marshal()

	var prevNonce, lastNonce []byte // of the SYNCs p was sent (mu)
	claim1000 := func(resp *wire.Message) *wire.Message {
		resp.Head, resp.Heartbeat = 1000, hb1000
		return resp
	}
	lies := map[string]func(m *wire.Message) *wire.Message{
		"copied heartbeat, no tag": func(m *wire.Message) *wire.Message {
			resp := claim1000(prefix.handleSync(request{from: sw.s.name, msg: m}))
			resp.Possession = nil
			return resp
		},
		"copied heartbeat, its own tag": func(m *wire.Message) *wire.Message {
			return claim1000(prefix.handleSync(request{from: sw.s.name, msg: m}))
		},
		"a tag for another nonce (replayed)": func(m *wire.Message) *wire.Message {
			// p's genuine answer to this server's SYNC before this one
			// (as an observer on the path, or p before it lost entries,
			// kept it): with the nonce of that SYNC.
			old := *m
			old.Hash = prevNonce
			stale := full.handleSync(request{from: sw.s.name, msg: &old})
			resp := claim1000(prefix.handleSync(request{from: sw.s.name, msg: m}))
			resp.Possession = stale.Possession
			return resp
		},
		"a tag over a tampered entry": func(m *wire.Message) *wire.Message {
			resp := claim1000(prefix.handleSync(request{from: sw.s.name, msg: m}))
			resp.Possession = wire.PossessionSampledTag(sw.c, sw.p.Name, m.Hash, 1000, m.Limit, headEntry, sampled(m))
			return resp
		},
		"another replica's tag (relayed)": func(m *wire.Message) *wire.Message {
			return other.handleSync(request{from: sw.s.name, msg: m})
		},
		"an honest answer without the tag (an older peer)": func(m *wire.Message) *wire.Message {
			resp := full.handleSync(request{from: sw.s.name, msg: m})
			resp.Possession = nil
			return resp
		},
	}
	var mu sync.Mutex
	var answer func(m *wire.Message) *wire.Message
	sw.net.set(func(h pdu.Header, m *wire.Message) []peerAnswer {
		if m.Op != wire.OpSync {
			return nil
		}
		if h.Dst == sw.m.Name {
			return []peerAnswer{{from: h.Dst, msg: other.handleSync(request{from: h.Src, msg: m})}}
		}
		mu.Lock()
		defer mu.Unlock()
		if answer == nil {
			// The anti-entropy round New starts, before the first
			// subtest sets an answer: p is silent (unreachable).
			return nil
		}
		prevNonce, lastNonce = lastNonce, m.Hash
		return []peerAnswer{{from: h.Dst, msg: answer(m)}}
	}, nil)
	setAnswer := func(a func(m *wire.Message) *wire.Message) {
		mu.Lock()
		answer = a
		mu.Unlock()
	}
	honest := func(src *Server) func(m *wire.Message) *wire.Message {
		return func(m *wire.Message) *wire.Message { return src.handleSync(request{from: sw.s.name, msg: m}) }
	}
	unheld := sw.s.met.dropped.WithLabelValues("head_not_held")

	for name, lie := range lies {
		t.Run(name, func(t *testing.T) {
			// p shows at the head it proved it holds, 5.
			setAnswer(honest(prefix))
			syncRound(t, sw)
			if p := peerStatus(t, sw, sw.p.Name); p.Head != 5 || p.Seen.IsZero() || p.Lag != 995 {
				t.Fatalf("the peer holding 5: %+v", p)
			}
			if most, _ := LagFigures(sw.s.Status()); most != 995 {
				t.Fatalf("lag gauge %d, want 995", most)
			}
			was := counterValue(unheld)
			setAnswer(lie)
			syncRound(t, sw)
			if p := peerStatus(t, sw, sw.p.Name); p.Head != 5 || p.Lag != 995 {
				t.Fatalf("the claim of 1,000 shows: %+v", p)
			}
			if most, _ := LagFigures(sw.s.Status()); most != 995 {
				t.Fatalf("lag gauge %d follows the claim, want 995", most)
			}
			if n := counterValue(unheld); n != was+1 {
				t.Fatalf("dropped_total{head_not_held} went from %v to %v, want +1", was, n)
			}
			if p := peerStatus(t, sw, sw.p.Name); !strings.Contains(p.Error, "does not show it holds the head") || !p.Unproven {
				t.Fatalf("the peer's error %q, unproven %v", p.Error, p.Unproven)
			}
			// Left out of the lag figures, but counted apart.
			if v := unprovenGauge(t, sw); v != 1 {
				t.Fatalf("gdp_capsuled_replicas_unproven = %v, want 1", v)
			}
		})
	}
	t.Run("honest", func(t *testing.T) {
		setAnswer(honest(full))
		was := counterValue(unheld)
		syncRound(t, sw)
		if p := peerStatus(t, sw, sw.p.Name); p.Head != 1000 || p.Seen.IsZero() || p.Lag != 0 {
			t.Fatalf("the honest peer holding 1,000: %+v", p)
		}
		if most, _ := LagFigures(sw.s.Status()); most != 0 {
			t.Fatalf("lag gauge %d, want 0", most)
		}
		// The next round asks for no tag (no check due: the head is the
		// one proven, this server's has not moved) and p stays shown.
		checksWas := counterValue(sw.s.met.possessionChecks.WithLabelValues("ok"))
		syncRound(t, sw)
		if n := counterValue(unheld); n != was {
			t.Fatalf("honest answers counted head_not_held: %v → %v", was, n)
		}
		mu.Lock()
		asked := lastNonce != nil
		mu.Unlock()
		if n := counterValue(sw.s.met.possessionChecks.WithLabelValues("ok")); asked || n != checksWas {
			t.Fatalf("a round with no check due asked for a tag (%v) or checked one (%v → %v)", asked, checksWas, n)
		}
		if p := peerStatus(t, sw, sw.p.Name); p.Head != 1000 || p.Seen.IsZero() || p.Lag != 0 {
			t.Fatalf("the honest peer between checks: %+v", p)
		}
		if p := peerStatus(t, sw, sw.p.Name); p.Error != "" || p.Unproven {
			t.Fatalf("an honest peer's error %q, unproven %v", p.Error, p.Unproven)
		}
		if v := unprovenGauge(t, sw); v != 0 {
			t.Fatalf("gdp_capsuled_replicas_unproven = %v, want 0", v)
		}
	})
	t.Run("proven, then not", func(t *testing.T) {
		// A head p proved it holds, that a later answer does not prove
		// (a replica that lost entries, or holds only some): withdrawn at
		// the next due check. Until then (within possession_interval, or
		// until this server's head moves) an answer repeating the proven
		// head keeps it shown: that is the window SECURITY documents.
		setAnswer(lies["an honest answer without the tag (an older peer)"])
		syncRound(t, sw)
		if p := peerStatus(t, sw, sw.p.Name); p.Head != 1000 || p.Seen.IsZero() {
			t.Fatalf("before a check is due: %+v", p)
		}
		checkDueNow(sw, sw.p.Name) // possession_interval passed
		was := counterValue(sw.s.met.possessionChecks.WithLabelValues("failed"))
		syncRound(t, sw)
		if p := peerStatus(t, sw, sw.p.Name); !p.Seen.IsZero() || p.Error == "" || !p.Unproven {
			t.Fatalf("a proven head no longer proven stays shown: %+v", p)
		}
		if n := counterValue(sw.s.met.possessionChecks.WithLabelValues("failed")); n != was+1 {
			t.Fatalf("possession_checks_total{failed} %v → %v, want +1", was, n)
		}
	})
}

// TestLagPossessionCheckedOnceHeld: while this server is behind, a peer's
// head shows on the writer's heartbeat alone (the tag cannot be checked);
// a peer that claimed 1,000 with a copied heartbeat while holding 5 is
// withdrawn from the figures as soon as this server holds 1,000 itself and
// the claim fails the check; Status shows why.
func TestLagPossessionCheckedOnceHeld(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, PublishWait: 200 * time.Millisecond})
	l := newPossessionLog(sw)
	l.fill(t, sw.s.st, sw.c, 500)
	prefix := replicaOf(t, sw, l, sw.p.Name, 5)
	hb1000 := l.hbs[len(l.hbs)-1].Marshal()
	sw.net.set(func(h pdu.Header, m *wire.Message) []peerAnswer {
		if m.Op != wire.OpSync {
			return nil
		}
		if h.Dst == sw.m.Name {
			return []peerAnswer{{from: h.Dst, msg: m.Reply(wire.StatusOK)}} // an empty peer
		}
		resp := prefix.handleSync(request{from: h.Src, msg: m})
		resp.Head, resp.Heartbeat = 1000, hb1000
		return []peerAnswer{{from: h.Dst, msg: resp}}
	}, nil)
	syncRound(t, sw)
	if p := peerStatus(t, sw, sw.p.Name); p.Head != 1000 {
		t.Fatalf("behind the claim, the heartbeat alone shows it: %+v", p)
	}
	l.fill(t, sw.s.st, sw.c, 1000) // the writer's batches reach this server
	unheld := sw.s.met.dropped.WithLabelValues("head_not_held")
	for i := range 2 {
		syncRound(t, sw)
		if p := peerStatus(t, sw, sw.p.Name); p.Head == 1000 || !p.Seen.IsZero() {
			t.Fatalf("round %d: the claim stays shown once checkable: %+v", i, p)
		}
		if n := counterValue(unheld); n != float64(i+1) {
			t.Fatalf("round %d: dropped_total{head_not_held} %v", i, n)
		}
	}
	// The failure is the peer's anti-entropy error: Status shows it, and
	// syncFailures logged it at WARN once when it started (DEBUG since).
	if p := peerStatus(t, sw, sw.p.Name); !strings.Contains(p.Error, "does not show it holds the head") || !strings.Contains(p.Error, "check that replica") {
		t.Fatalf("the peer's error: %q", p.Error)
	}
	sw.s.syncLog.mu.Lock()
	failing := sw.s.syncLog.failed[[2]pdu.Name{sw.c, sw.p.Name}]
	sw.s.syncLog.mu.Unlock()
	if !failing {
		t.Fatal("the failure is not in the anti-entropy failure log")
	}
}
