package capsuled

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/store"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
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

// TestReconcileTrustsOnlyAMajority: s holds writer a's line 1..3, peer p
// writer b's (two writers with one key), and s reconciles with p. What the
// peers answer decides nothing unless it is a majority's line and arrives
// whole: a peer that holds s's line is agreement (nothing adopted); a third
// replica that does not answer, answers without the entry (it is behind),
// or answers with another entry than the one asked leaves the fork
// undecided (an error, no evidence stored, s's line kept); with the
// majority on b's line, p's SYNC answer with no segments, no answer, or a
// segment that does not decode or verify is an error, s's line kept, and no
// crash. Mutants: reconcile.go :63 skip-if (agreement bisected and
// adopted), :107 skip-if (a missing vote judged as a genuine fork), entryAt
// :154, :157 and :164 skip-if (a silent replica's nil answer or an empty
// one dereferenced, another entry's hash taken as its vote), :114 and :117
// skip-if (the SYNC answer's absence or emptiness ignored: a nil or empty
// answer dereferenced), :128 skip-if (a failed adoption reported adopted).
// (:121, the decode error ignored, lives: the store's Adopt refuses the
// undecoded batch the same way.)
func TestReconcileTrustsOnlyAMajority(t *testing.T) {
	for _, how := range []string{"p holds s's line", "m silent", "m behind", "m answers another entry", "no segments", "no SYNC answer", "undecodable segment", "segment that does not verify"} {
		t.Run(how, func(t *testing.T) {
			sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: 300 * time.Millisecond, PublishWait: 200 * time.Millisecond})
			line := func(tag byte) ([]capsule.Record, *capsule.Heartbeat, wire.Segment) {
				w := capsule.NewWriter(sw.c, sw.writer.Key)
				for i := range 3 {
					w.Append([]byte{tag, byte(i)})
				}
				recs, hb := w.Flush()
				seg := wire.Segment{Heartbeat: hb.Marshal()}
				for _, r := range recs {
					seg.Records = append(seg.Records, r.Marshal())
				}
				return recs, hb, seg
			}
			aRecs, aHB, _ := line('a')
			bRecs, _, bSeg := line('b')
			waitFor(t, 20*time.Second, "the start-up sync to end", func() bool {
				sw.s.sync.mu.Lock()
				defer sw.s.sync.mu.Unlock()
				return !sw.s.sync.running[sw.c]
			})
			if err := sw.s.st.AppendExtending(context.Background(), sw.c, aRecs, aHB); err != nil {
				t.Fatal(err)
			}
			pRecs := bRecs
			if how == "p holds s's line" {
				pRecs = aRecs
			}
			sw.net.set(func(h pdu.Header, m *wire.Message) []peerAnswer {
				resp := m.Reply(wire.StatusOK)
				switch {
				case m.Op == wire.OpRead && m.From >= 1 && m.From <= 3:
					switch {
					case h.Dst == sw.p.Name:
						resp.Records = [][]byte{pRecs[m.From-1].Marshal()}
					case how == "m silent":
						return nil
					case how == "m behind":
						// OK, no records: m has not taken a side.
					case how == "m answers another entry":
						resp.Records = [][]byte{bRecs[2].Marshal()}
					default:
						resp.Records = [][]byte{bRecs[m.From-1].Marshal()}
					}
				case m.Op == wire.OpSync && h.Dst == sw.p.Name:
					resp.Head, resp.From, resp.To, resp.Segments = 3, m.From, 3, []wire.Segment{bSeg}
					switch how {
					case "no segments":
						resp.Segments = nil
					case "no SYNC answer":
						return nil
					case "undecodable segment":
						resp.Segments = []wire.Segment{{Records: bSeg.Records, Heartbeat: []byte{0xa1, 1, 2}}}
					case "segment that does not verify":
						resp.Segments = []wire.Segment{{Records: bSeg.Records, Heartbeat: aHB.Marshal()}}
					}
				default:
					return nil
				}
				return []peerAnswer{{from: h.Dst, msg: resp}}
			}, nil)
			adopted, err := sw.s.reconcile(context.Background(), sw.c, sw.p.Name, 3)
			switch {
			case adopted:
				t.Fatalf("adopted p's line (%v)", err)
			case how == "p holds s's line" && !errors.Is(err, errAgreed):
				t.Fatalf("the replicas agree: %v, want errAgreed", err)
			case how != "p holds s's line" && (err == nil || errors.Is(err, errAgreed)):
				t.Fatalf("no decision could be taken: %v, want an error", err)
			}
			var eq *capsule.EquivocationError
			if errors.As(err, &eq) {
				t.Fatalf("judged a fork: %v", err)
			}
			if evs, err := sw.s.st.Evidence(sw.c); err != nil || len(evs) != 0 {
				t.Fatalf("%d pieces of fork evidence stored (%v)", len(evs), err)
			}
			if h, err := sw.s.st.Head(sw.c); err != nil || h.Seqno != 3 || !h.Heartbeat.Equal(aHB) {
				t.Fatalf("s's head %d (%v): its own line not kept", h.Seqno, err)
			}
		})
	}
}

// TestPullAfterReconcile: s holds writer a's batch 1..3; p holds writer
// b's 1..3 and 4..5 (two writers with one key) and answers s's SYNC from 4.
// When the third replica m holds b's line, s adopts it and the same pull
// goes on to p's head 5; when m holds a's, s's line is the majority's: the
// pull ends there, with no error shown for p (p adopts s's line on its
// side). Mutants: sync.go storeAnswer :934 skip-if (an adoption reported
// as "ours is the majority's": the pull stops at 3) and :938 skip-if (the
// majority's line reported as p's error).
func TestPullAfterReconcile(t *testing.T) {
	for _, mHolds := range []string{"a", "b"} {
		t.Run("m holds "+mHolds, func(t *testing.T) {
			sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, PublishWait: 200 * time.Millisecond})
			batch := func(w *capsule.Writer, tag byte, n int) ([]capsule.Record, *capsule.Heartbeat, wire.Segment) {
				for i := range n {
					w.Append([]byte{tag, byte(i)})
				}
				recs, hb := w.Flush()
				seg := wire.Segment{Heartbeat: hb.Marshal()}
				for _, r := range recs {
					seg.Records = append(seg.Records, r.Marshal())
				}
				return recs, hb, seg
			}
			aRecs, aHB, _ := batch(capsule.NewWriter(sw.c, sw.writer.Key), 'a', 3)
			wb := capsule.NewWriter(sw.c, sw.writer.Key)
			b1, _, b1Seg := batch(wb, 'b', 3)
			b2, b5, b2Seg := batch(wb, 'b', 2)
			bRecs := append(b1, b2...)
			mRecs := aRecs
			if mHolds == "b" {
				mRecs = b1
			}
			waitFor(t, 20*time.Second, "the start-up sync to end", func() bool {
				sw.s.sync.mu.Lock()
				defer sw.s.sync.mu.Unlock()
				return !sw.s.sync.running[sw.c]
			})
			if err := sw.s.st.AppendExtending(context.Background(), sw.c, aRecs, aHB); err != nil {
				t.Fatal(err)
			}
			sw.net.set(func(h pdu.Header, m *wire.Message) []peerAnswer {
				resp := m.Reply(wire.StatusOK)
				switch {
				case m.Op == wire.OpSync && h.Dst == sw.p.Name:
					resp.Head, resp.Heartbeat = 5, b5.Marshal()
					switch {
					case m.From >= 1 && m.From <= 3:
						resp.From, resp.To, resp.Segments = 1, 5, []wire.Segment{b1Seg, b2Seg}
					case m.From <= 5:
						resp.From, resp.To, resp.Segments = 4, 5, []wire.Segment{b2Seg}
					}
				case m.Op == wire.OpSync:
					// m: nothing beyond what s holds (head 0: no claim).
				case m.Op == wire.OpRead && m.From >= 1 && m.From <= 5:
					recs := bRecs
					if h.Dst == sw.m.Name {
						if m.From > 3 {
							return []peerAnswer{{from: h.Dst, msg: resp}}
						}
						recs = mRecs
					}
					resp.Records = [][]byte{recs[m.From-1].Marshal()}
				default:
					return nil
				}
				return []peerAnswer{{from: h.Dst, msg: resp}}
			}, nil)
			sw.s.syncCapsule(context.Background(), sw.c, true)
			h, err := sw.s.st.Head(sw.c)
			if err != nil {
				t.Fatal(err)
			}
			p := peerStatus(t, sw, sw.p.Name)
			switch mHolds {
			case "b":
				if h.Seqno != 5 || !h.Heartbeat.Equal(b5) {
					t.Fatalf("the majority on b's line: s's head %d after one pull, want b's 5", h.Seqno)
				}
			default:
				if h.Seqno != 3 || !h.Heartbeat.Equal(aHB) {
					t.Fatalf("the majority on a's line: s's head %d, want a's 3", h.Seqno)
				}
				if p.Error != "" {
					t.Fatalf("the majority on s's line: p shows the error %q", p.Error)
				}
			}
			if evs, err := sw.s.st.Evidence(sw.c); err != nil || len(evs) != 0 {
				t.Fatalf("%d pieces of fork evidence stored (%v)", len(evs), err)
			}
		})
	}
}

// TestCheckRangeAnswer: a range SYNC's answer is taken only when it starts
// where the range before it ended, each segment starts right after the one
// before (with a record, or with a hole its heartbeat declares) and ends
// at its heartbeat, and the last ends at the To it states; an empty answer
// (To = From-1) and a segment of holes only are in line. Mutants: sync.go
// checkRangeAnswer :520 skip-if, :523 boundary, :532 boundary, :536
// skip-if, :541 skip-if, both operands and boundaries, :546 skip-if.
func TestCheckRangeAnswer(t *testing.T) {
	var c pdu.Name
	c[0] = 7
	_, key, _ := ed25519.GenerateKey(nil)
	w := capsule.NewWriter(c, key)
	seg := func(recs []capsule.Record, hb *capsule.Heartbeat) store.Segment {
		return store.Segment{Records: recs, Heartbeat: hb}
	}
	batch := func(n int) store.Segment {
		for range n {
			w.Append([]byte("x"))
		}
		return seg(w.Flush())
	}
	s1 := batch(3) // 1..3
	s2 := batch(2) // 4..5
	w.Hole()       // 6
	s3 := batch(1) // hole 6, record 7
	w.Hole()       // 8
	s4 := batch(0) // hole 8 only
	s5 := batch(2) // 9..10
	beyond := seg(s2.Records, s1.Heartbeat)
	for _, tc := range []struct {
		name     string
		from, to uint64
		segs     []store.Segment
		expect   uint64
		ok       bool
	}{
		{"in line", 1, 10, []store.Segment{s1, s2, s3, s4, s5}, 1, true},
		{"in line from a hole", 6, 8, []store.Segment{s3, s4}, 6, true},
		{"empty", 4, 3, nil, 4, true},
		{"not where the range before ended", 1, 3, []store.Segment{s1}, 2, false},
		{"a segment missing", 1, 7, []store.Segment{s1, s3}, 1, false},
		{"records beyond the heartbeat", 1, 3, []store.Segment{s1, beyond}, 1, false},
		{"a To beyond its segments", 1, 9, []store.Segment{s1, s2, s3, s4}, 1, false},
		{"a To before its segments end", 1, 5, []store.Segment{s1, s2, s3}, 1, false},
	} {
		m := &wire.Message{From: tc.from, To: tc.to}
		err := checkRangeAnswer(m, tc.segs, tc.expect)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, errMisaligned)) {
			t.Errorf("%s: %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

// TestSyncNAKMatched: a NAK cuts a peer request short only when its echo
// is the request as sent: this server's name as source, the peer as
// destination, and at least 16 bytes of the request (its random id). An
// empty or short echo, another PDU version, a header length below the
// minimum, fewer than 16 bytes of the request, or another source is taken
// by no request (and does not crash); an echo of exactly the header and 16
// bytes is. Mutants: sync.go syncState.nak :1204 skip-if and both operands,
// :1208 skip-if, drop-or-left, drop-or-right, :1208:27 boundary. (:1204
// boundary lives: an echo of exactly a header fails the 16-byte check.)
func TestSyncNAKMatched(t *testing.T) {
	self, peer, other := pdu.Name{1}, pdu.Name{2}, pdu.Name{3}
	sent := make([]byte, 64)
	for i := range sent {
		sent[i] = byte(i * 7)
	}
	pkt, err := (&pdu.Header{Type: pdu.TypeData, TTL: 8, Src: self, Dst: peer, Payload: sent}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	hl := int(pkt[1]) * 4
	edit := func(n int, f func(e []byte)) []byte {
		e := append([]byte(nil), pkt[:n]...)
		if f != nil {
			f(e)
		}
		return e
	}
	for _, tc := range []struct {
		name string
		echo []byte
		ok   bool
	}{
		{"the request", edit(hl+32, nil), true},
		{"the header and 16 bytes of the request", edit(hl+16, nil), true},
		{"empty", nil, false},
		{"shorter than a header", edit(pdu.HeaderLen-1, nil), false},
		{"another version", edit(hl+32, func(e []byte) { e[0]++ }), false},
		{"a header length below the minimum", edit(hl+32, func(e []byte) { e[1] = byte(pdu.HeaderLen/4 - 1) }), false},
		{"15 bytes of the request", edit(hl+15, nil), false},
		{"another source", edit(hl+32, func(e []byte) { copy(e[44:76], other[:]) }), false},
		{"another destination", edit(hl+32, func(e []byte) { copy(e[12:44], other[:]) }), false},
	} {
		st := newSyncState(1)
		ch := st.expectNAK(1, peer, sent)
		if got := st.nak(self, client.Message{Type: pdu.TypeNAK, Code: pdu.CodeNoRoute, Payload: tc.echo}); got != tc.ok {
			t.Errorf("%s: taken %v, want %v", tc.name, got, tc.ok)
		}
		select {
		case <-ch:
			if !tc.ok {
				t.Errorf("%s: the request was cut short", tc.name)
			}
		default:
			if tc.ok {
				t.Errorf("%s: the request was not cut short", tc.name)
			}
		}
	}
}

// TestRangeSyncFromZeroRefused: a range SYNC must start at 1 at least: one
// from 0 (whatever its To) is answered 400, not as a plain SYNC's empty
// answer. Mutant: sync.go handleSync :88 drop-or-left (From 0 let
// through).
func TestRangeSyncFromZeroRefused(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, PublishWait: 200 * time.Millisecond})
	src := syncSource(t, sw, []int{3, 2}, 10)
	for _, to := range []uint64{1, 5, 9} {
		resp := src.handleSync(request{from: sw.s.name, msg: &wire.Message{Op: wire.OpSync, ID: 1, Capsule: sw.c[:], From: 0, To: to}})
		if resp.Status != wire.StatusBadRequest || len(resp.Segments) != 0 {
			t.Fatalf("range [0, %d]: status %v, %d segments; want 400, none", to, resp.Status, len(resp.Segments))
		}
	}
}

// TestAskRangeFollowsOnlyProgress: askRange asks a peer again for the
// rest of a range only while the peer has more and its answer moved on
// within the range: one entry per answer is followed to the end; an answer
// that makes no progress, one that says it reaches or passes the range's
// end, or one with nothing more ends the range after that one answer (a
// peer answering "more" without progress kept this server asking for
// ever). Mutants: sync.go askRange :576 skip-if, :579 skip-if, both
// operands and both boundaries.
func TestAskRangeFollowsOnlyProgress(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, PublishWait: 200 * time.Millisecond})
	waitFor(t, 20*time.Second, "the start-up sync to end", func() bool {
		sw.s.sync.mu.Lock()
		defer sw.s.sync.mu.Unlock()
		return !sw.s.sync.running[sw.c]
	})
	for _, tc := range []struct {
		name    string
		answer  func(m *wire.Message) (to uint64, more bool)
		answers int
	}{
		{"one entry per answer", func(m *wire.Message) (uint64, bool) { return m.From, m.From < 10 }, 10},
		{"no progress", func(m *wire.Message) (uint64, bool) { return m.From - 1, true }, 1},
		{"to the range's end, and more", func(m *wire.Message) (uint64, bool) { return 10, true }, 1},
		{"past the range's end", func(m *wire.Message) (uint64, bool) { return 12, true }, 1},
		{"nothing more", func(m *wire.Message) (uint64, bool) { return 5, false }, 1},
	} {
		var asked atomic.Int64
		sw.net.set(func(h pdu.Header, m *wire.Message) []peerAnswer {
			if m.Op != wire.OpSync || h.Dst != sw.p.Name {
				return nil
			}
			if m.To == 0 {
				return []peerAnswer{{from: h.Dst, msg: m.Reply(wire.StatusOK)}} // anti-entropy's own plain SYNC
			}
			asked.Add(1)
			resp := m.Reply(wire.StatusOK)
			resp.From = m.From
			resp.To, resp.More = tc.answer(m)
			return []peerAnswer{{from: h.Dst, msg: resp}}
		}, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		msgs, err := sw.s.askRange(ctx, sw.c, sw.p.Name, 1, 10)
		cancel()
		if err != nil || len(msgs) != tc.answers || asked.Load() != int64(tc.answers) {
			t.Fatalf("%s: %d answers (%d asked), %v; want %d", tc.name, len(msgs), asked.Load(), err, tc.answers)
		}
	}
}

// TestSyncHeartbeatScanBounded: a SYNC's answer reads no more of the
// capsule's heartbeats than it can use (store Stats.HeartbeatsRead): past
// the first, at most MaxSegments, and none MaxRecords seqnos or more after
// From, so a ~100-byte SYNC from 1 of a long capsule does not have this
// server scan, copy and hold every heartbeat it stores. The first
// heartbeat is read wherever it is: a batch whose holes span MaxRecords
// seqnos is still answered. Mutants: sync.go handleSync :115 skip-if (the
// scan unbounded), its boundaries (:115:6 len(hbs) >= 0: such a batch
// never answered; :115:23 and :115:55, one heartbeat more).
func TestSyncHeartbeatScanBounded(t *testing.T) {
	ctx := context.Background()
	owner, err := certs.NewIdentity(certs.KindClient, "owner")
	if err != nil {
		t.Fatal(err)
	}
	writer, err := certs.NewIdentity(certs.KindClient, "writer")
	if err != nil {
		t.Fatal(err)
	}
	meta, err := certs.NewCapsule(owner.Key, writer.Public(), "scanned")
	if err != nil {
		t.Fatal(err)
	}
	c := meta.Name()
	// source is a replica holding the batches build writes, stored at once.
	source := func(build func(w *capsule.Writer) []store.Segment) *Server {
		st, err := store.Open(filepath.Join(t.TempDir(), "store"), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		if err := st.Create(ctx, c, meta.Marshal()); err != nil {
			t.Fatal(err)
		}
		if _, err := st.AppendSegments(ctx, c, build(capsule.NewWriter(c, writer.Key))); err != nil {
			t.Fatal(err)
		}
		return &Server{name: pdu.Name{0xbb}, st: st, met: newMetrics(prometheus.NewRegistry()), cfg: Config{SyncAnswersPerPeer: 64}}
	}
	batches := func(w *capsule.Writer, sizes ...int) []store.Segment {
		var segs []store.Segment
		for _, n := range sizes {
			for range n {
				w.Append([]byte{byte(w.Seqno()), byte(w.Seqno() >> 8)})
			}
			recs, hb := w.Flush()
			segs = append(segs, store.Segment{Records: recs, Heartbeat: hb})
		}
		return segs
	}
	// sync asks src for c from from: its answer, and the heartbeats read.
	sync := func(src *Server, from uint64) (*wire.Message, uint64) {
		t.Helper()
		was := src.st.Stats().HeartbeatsRead
		resp := src.handleSync(request{from: pdu.Name{0xcc}, dst: src.name, msg: &wire.Message{Op: wire.OpSync, Capsule: c[:], From: from}})
		if resp.Status != wire.StatusOK || len(resp.Segments) == 0 {
			t.Fatalf("SYNC from %d: status %d, %d segments (%s), answered [%d, %d]", from, resp.Status, len(resp.Segments), resp.Error, resp.From, resp.To)
		}
		return resp, src.st.Stats().HeartbeatsRead - was
	}

	// More one-record batches than an answer has segments.
	ones := make([]int, wire.MaxSegments+100)
	for i := range ones {
		ones[i] = 1
	}
	src := source(func(w *capsule.Writer) []store.Segment { return batches(w, ones...) })
	if resp, n := sync(src, 1); n > wire.MaxSegments+1 || !resp.More {
		t.Fatalf("SYNC from 1 of %d one-record batches: %d heartbeats read (max %d), more %v", len(ones), n, wire.MaxSegments+1, resp.More)
	}

	// Batches of 256 to seqno 4096 = MaxRecords, then one at From+MaxRecords
	// and one after: the first 16 heartbeats and the one refused are read.
	sizes := []int{}
	for range wire.MaxRecords / 256 {
		sizes = append(sizes, 256)
	}
	src = source(func(w *capsule.Writer) []store.Segment { return batches(w, append(sizes, 1, 1)...) })
	if resp, n := sync(src, 1); n != uint64(len(sizes))+1 || resp.To < 256 {
		t.Fatalf("SYNC from 1 of batches ending at 256, 512, ..., 4096, 4097, 4098: %d heartbeats read, want %d (answered to %d)", n, len(sizes)+1, resp.To)
	}

	// A batch of MaxHoles holes and one record, from 2 to 4098 = 2+MaxRecords.
	src = source(func(w *capsule.Writer) []store.Segment {
		segs := batches(w, 1)
		for range capsule.MaxHoles {
			w.Hole()
		}
		return append(segs, batches(w, 1)...)
	})
	if resp, n := sync(src, 2); resp.From != 2 || resp.To != 2+wire.MaxRecords || len(resp.Segments[0].Records) != 1 || n != 1 {
		t.Fatalf("SYNC from 2 of a batch of holes to %d: answered [%d, %d], %d heartbeats read", 2+wire.MaxRecords, resp.From, resp.To, n)
	}
}

// TestReconcileWithAFailedRead: s holds writer a's line 1..8, p and m
// writer b's (two writers with one key, agreeing on 1..4), p also 9..10;
// s pulls from p, finds the lines diverged and reconciles. When one of p's
// READs fails during the comparison (p answers the first ones, then that
// READ with an error, or nothing more at all), no decision is taken on
// what came: s keeps its line, stores no fork evidence and moves nothing
// aside, and shows p's error; the next round, with p answering, adopts the
// majority's line (b's) and pulls on to p's head 10. The READ that fails:
// the first (of the shorter head, 8), one in the bisection (6, where the
// lines differ; 4, where they agree, p silent from there on), or the last
// (5, the first entry that differs, asked again to count the votes).
// Mutants: reconcile.go equal's READ error ignored (:55 skip-if: a failed
// READ taken as "differs", adopted on the rest), the first READ's and the
// bisection's errors ignored (:61, :70 skip-if: the same), and the last
// READ's error ignored (:81 skip-if: with p's entry unknown the fork is
// judged genuine, b's batch appended over s's line). (:70 with the READ of
// 4 failing lives: the bisection then ends at an entry the lines share,
// and the store's Adopt refuses to adopt what it holds already.)
func TestReconcileWithAFailedRead(t *testing.T) {
	for _, tc := range []struct {
		k, nth int // p's nth READ of entry k fails
		silent bool
	}{
		{8, 1, false}, {6, 1, false}, {5, 2, false}, {4, 1, true},
	} {
		name := fmt.Sprintf("READ %d (%d) answered 503", tc.k, tc.nth)
		if tc.silent {
			name = fmt.Sprintf("p silent from READ %d (%d)", tc.k, tc.nth)
		}
		t.Run(name, func(t *testing.T) {
			sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: 300 * time.Millisecond, PublishWait: 200 * time.Millisecond})
			batch := func(w *capsule.Writer, tag byte, n int) store.Segment {
				for i := range n {
					w.Append([]byte{tag, byte(i)})
				}
				recs, hb := w.Flush()
				return store.Segment{Records: recs, Heartbeat: hb}
			}
			wa := capsule.NewWriter(sw.c, sw.writer.Key)
			common := batch(wa, 'c', 4)
			wb := capsule.RestartWriter(sw.c, sw.writer.Key, wa.Head())
			a := batch(wa, 'a', 4)
			b1, b2 := batch(wb, 'b', 4), batch(wb, 'b', 2)
			bRecs := slices.Concat(common.Records, b1.Records, b2.Records)
			src := peerSource(t, sw, sw.p.Name, []store.Segment{common, b1, b2})
			waitFor(t, 20*time.Second, "the start-up sync to end", func() bool {
				sw.s.sync.mu.Lock()
				defer sw.s.sync.mu.Unlock()
				return !sw.s.sync.running[sw.c]
			})
			if _, err := sw.s.st.AppendSegments(context.Background(), sw.c, []store.Segment{common, a}); err != nil {
				t.Fatal(err)
			}
			var failing atomic.Bool // p fails this round
			var readsOfK atomic.Int64
			var silent atomic.Bool
			sw.net.set(func(h pdu.Header, m *wire.Message) []peerAnswer {
				if h.Dst == sw.p.Name && silent.Load() {
					return nil
				}
				resp := m.Reply(wire.StatusOK)
				switch {
				case m.Op == wire.OpSync && h.Dst == sw.p.Name:
					resp = src.handleSync(request{from: h.Src, dst: h.Dst, msg: m})
				case m.Op == wire.OpSync:
					// m: nothing beyond what s holds (head 0: no claim).
				case m.Op == wire.OpRead && m.From >= 1 && m.From <= 8:
					if h.Dst == sw.p.Name && m.From == uint64(tc.k) && failing.Load() && readsOfK.Add(1) == int64(tc.nth) {
						if tc.silent {
							silent.Store(true)
							return nil
						}
						resp = m.Reply(wire.StatusUnavailable)
						resp.Error = "busy"
						break
					}
					resp.Records = [][]byte{bRecs[m.From-1].Marshal()}
				default:
					return nil
				}
				return []peerAnswer{{from: h.Dst, msg: resp}}
			}, nil)

			failing.Store(true)
			syncRound(t, sw)
			if readsOfK.Load() < int64(tc.nth) {
				t.Fatalf("p was asked for entry %d %d times; the test wants its READ number %d to fail", tc.k, readsOfK.Load(), tc.nth)
			}
			if h, err := sw.s.st.Head(sw.c); err != nil || h.Seqno != 8 || !h.Heartbeat.Equal(a.Heartbeat) {
				t.Fatalf("after a round with a failed READ s's head is %d (%v): its own line not kept", h.Seqno, err)
			}
			if evs, err := sw.s.st.Evidence(sw.c); err != nil || len(evs) != 0 {
				t.Fatalf("%d pieces of fork evidence stored on partial answers (%v)", len(evs), err)
			}
			if n := counterValue(sw.s.met.equivocations); n != 0 {
				t.Fatalf("equivocations_total %v on partial answers", n)
			}
			if ab, err := sw.s.st.Abandoned(sw.c); err != nil || len(ab) != 0 {
				t.Fatalf("%d entries moved aside on partial answers (%v)", len(ab), err)
			}
			if p := peerStatus(t, sw, sw.p.Name); p.Error == "" {
				t.Fatalf("p's failed READ not shown: %+v", p)
			}

			failing.Store(false)
			silent.Store(false)
			syncRound(t, sw)
			if h, err := sw.s.st.Head(sw.c); err != nil || h.Seqno != 10 || !h.Heartbeat.Equal(b2.Heartbeat) {
				t.Fatalf("the next round, p answering: s's head %d (%v), want b's 10 (the majority's line)", h.Seqno, err)
			}
			if evs, err := sw.s.st.Evidence(sw.c); err != nil || len(evs) != 0 {
				t.Fatalf("%d pieces of fork evidence stored (%v)", len(evs), err)
			}
		})
	}
}

// peerSource is a peer replica's SYNC answering side: handleSync over a
// store of its own holding segs of sw.c, with sw.c's placement.
func peerSource(t *testing.T, sw *syncWorld, name pdu.Name, segs []store.Segment) *Server {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "store"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ctx := context.Background()
	if err := st.Create(ctx, sw.c, sw.meta.Marshal()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AppendSegments(ctx, sw.c, segs); err != nil {
		t.Fatal(err)
	}
	places, err := openPlacements(filepath.Join(dir, "placements"))
	if err != nil {
		t.Fatal(err)
	}
	if err := places.put(sw.s.places.get(sw.c)); err != nil {
		t.Fatal(err)
	}
	return &Server{name: name, st: st, places: places, met: newMetrics(prometheus.NewRegistry()), cfg: Config{SyncAnswersPerPeer: 64}}
}

// TestPullEndsOnItsAnswers: a pull of plain SYNCs (sync_window 1: one
// answer at a time, the next asked while the last is stored) acts on what
// storing each answer came to. s holds the first 6 entries of a line
// (common 1..3 then writer a's 4..6, or nothing), p a long line of batches
// of three 15 KB records (one batch an answer): common 1..3, then writer
// b's 4..6, 7..9, 10..12; m votes with READs. An answer whose segment
// does not verify ends the pull (the SYNC under way is the last asked, the
// error shown); an answer that shows s's line the majority's ends it
// without an error, p asked nothing more; an answer that made s adopt
// p's line (the majority's) has the pull go on from s's new head to p's
// 12 in the same round. A peer answering More with no segments, or with a
// first segment that does not decode, ends the pull after one SYNC (no
// loop, no crash). With sync_window 4 the answer that does not verify, and
// the one that shows s's line the majority's, end the window and the pull
// the same way. Mutants: sync.go pullFrom :342 skip-if (the stored
// answer's result never looked at), :345 skip-if and both operands (an
// error, and the majority's line, ignored: the pull goes on asking), :348
// skip-if (after an adoption, the answer asked before it stored: a gap),
// :356 skip-if (an empty answer with More: SYNCs without end), :364
// boundary (no segment decoded: index -1, a crash), :397 skip-case and
// both operands (an error or the majority's line after a window ignored:
// the pull asks again from the head, the same answers, without end),
// :404 and :406 skip-if (the last answer's result never looked at: asked
// again, without end), :406 drop-or-right (a SYNC more after the last
// answer). (:406 drop-or-left is the same test: a result that is done or
// an error is never reconciled.)
func TestPullEndsOnItsAnswers(t *testing.T) {
	type pullCase struct {
		how    string
		window int
	}
	var cases []pullCase
	for _, how := range []string{"a segment that does not verify", "s's line the majority's", "p's line the majority's", "more, no segments", "undecodable first segment"} {
		cases = append(cases, pullCase{how, 1})
	}
	cases = append(cases, pullCase{"a segment that does not verify", 4}, pullCase{"s's line the majority's", 4})
	for _, tc := range cases {
		how := tc.how
		t.Run(fmt.Sprintf("%s, window %d", how, tc.window), func(t *testing.T) {
			sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: 300 * time.Millisecond, PublishWait: 200 * time.Millisecond, SyncWindow: tc.window})
			batch := func(w *capsule.Writer, tag byte) store.Segment {
				for i := range 3 {
					data := make([]byte, 15000)
					data[0], data[1] = tag, byte(i)
					w.Append(data)
				}
				recs, hb := w.Flush()
				return store.Segment{Records: recs, Heartbeat: hb}
			}
			wa := capsule.NewWriter(sw.c, sw.writer.Key)
			common := batch(wa, 'c')
			wb := capsule.RestartWriter(sw.c, sw.writer.Key, wa.Head())
			a := batch(wa, 'a')
			pLine := []store.Segment{common, batch(wb, 'b'), batch(wb, 'b'), batch(wb, 'b')}
			src := peerSource(t, sw, sw.p.Name, pLine)
			var pRecs, mRecs []capsule.Record
			for _, seg := range pLine {
				pRecs = append(pRecs, seg.Records...)
			}
			mRecs = pRecs
			sLine := []store.Segment{common, a}
			switch how {
			case "a segment that does not verify", "more, no segments", "undecodable first segment":
				sLine = nil
			case "s's line the majority's":
				mRecs = slices.Concat(common.Records, a.Records)
			}
			waitFor(t, 20*time.Second, "the start-up sync to end", func() bool {
				sw.s.sync.mu.Lock()
				defer sw.s.sync.mu.Unlock()
				return !sw.s.sync.running[sw.c]
			})
			if len(sLine) > 0 {
				if _, err := sw.s.st.AppendSegments(context.Background(), sw.c, sLine); err != nil {
					t.Fatal(err)
				}
			}
			var syncs atomic.Int64
			sw.net.set(func(h pdu.Header, m *wire.Message) []peerAnswer {
				resp := m.Reply(wire.StatusOK)
				switch {
				case m.Op == wire.OpSync && h.Dst == sw.p.Name:
					if syncs.Add(1) > 20 {
						return nil // enough: a pull that does not stop ends on silence
					}
					resp = src.handleSync(request{from: h.Src, dst: h.Dst, msg: m})
					switch {
					case how == "a segment that does not verify" && m.From == 1:
						hb := bytes.Clone(resp.Segments[0].Heartbeat)
						hb[len(hb)-1] ^= 1 // its signature
						resp.Segments[0].Heartbeat = hb
					case how == "more, no segments":
						resp.Segments, resp.More = nil, true
					case how == "undecodable first segment":
						resp.Segments[0].Heartbeat = []byte{0xa1, 1, 2}
					}
				case m.Op == wire.OpSync:
					// m: nothing beyond what s holds (head 0: no claim).
				case m.Op == wire.OpRead:
					recs := pRecs
					if h.Dst == sw.m.Name {
						recs = mRecs
					}
					if m.From >= 1 && m.From <= uint64(len(recs)) {
						resp.Records = [][]byte{recs[m.From-1].Marshal()}
					}
				default:
					return nil
				}
				return []peerAnswer{{from: h.Dst, msg: resp}}
			}, nil)
			syncRound(t, sw)
			h, err := sw.s.st.Head(sw.c)
			if err != nil {
				t.Fatal(err)
			}
			p := peerStatus(t, sw, sw.p.Name)
			switch how {
			case "a segment that does not verify":
				// Window 1: the bad answer's SYNC and the one under way;
				// window 4: the bad answer's and the window's 3 ranges.
				if want := int64(1 + min(tc.window, 3)); h.Seqno != 0 || syncs.Load() != want || p.Error == "" {
					t.Fatalf("s's head %d after %d SYNCs to p, p's error %q; want nothing stored, %d SYNCs, the error shown", h.Seqno, syncs.Load(), p.Error, want)
				}
			case "s's line the majority's":
				if h.Seqno != 6 || !h.Heartbeat.Equal(a.Heartbeat) || syncs.Load() != 2 || p.Error != "" {
					t.Fatalf("s's head %d after %d SYNCs to p, p's error %q; want a's 6 kept, 2 SYNCs, no error (p adopts s's line)", h.Seqno, syncs.Load(), p.Error)
				}
			case "p's line the majority's":
				// SYNCs from 7 (diverged) and 10 (under way, dropped),
				// reconcile's from 4, then from 7 and 10 again: the last
				// answer has nothing more, and the pull ends on it.
				if h.Seqno != 12 || !h.Heartbeat.Equal(pLine[3].Heartbeat) || p.Error != "" || syncs.Load() != 5 {
					t.Fatalf("s's head %d after one round and %d SYNCs to p, p's error %q; want p's 12 after 5 SYNCs, no error", h.Seqno, syncs.Load(), p.Error)
				}
			default:
				if h.Seqno != 0 || syncs.Load() != 1 {
					t.Fatalf("s's head %d after %d SYNCs to p; want nothing stored, one SYNC", h.Seqno, syncs.Load())
				}
			}
			if evs, err := sw.s.st.Evidence(sw.c); err != nil || len(evs) != 0 {
				t.Fatalf("%d pieces of fork evidence stored (%v)", len(evs), err)
			}
		})
	}
}

// TestPullOnePeerStreams: s, empty, catches up from p and m, which both
// hold 12 entries (four batches of three 15 KB records, one an answer),
// with plain SYNCs (sync_window 1). p's first answer comes first and p
// streams the rest; m's first answer (the same batch) comes once p has
// asked for its second, and p's later answers once m's is in: m waits for
// p's stream, then asks from s's new head, and sends nothing more. Every
// record crosses the network once, but for the one answer each peer gives
// before it knows another is streaming (15 records in all, not 24). When
// m's answer does not verify, its pull ends with that error after the
// wait (shown for m) while p's stream goes on. Mutants: sync.go pullFrom
// :377 skip-if (every peer streams the whole catch-up), :382 skip-if and
// drop-or-right (the waiting peer's bad answer forgotten during the wait).
// (:382 drop-or-left, a waiting peer's answer that showed s's line the
// majority's, lives: after the wait the pull asks from s's head, the
// same line again, and ends there.)
func TestPullOnePeerStreams(t *testing.T) {
	for _, how := range []string{"honest", "m's answer does not verify"} {
		t.Run(how, func(t *testing.T) {
			sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, PublishWait: 200 * time.Millisecond, SyncWindow: 1})
			w := capsule.NewWriter(sw.c, sw.writer.Key)
			var line []store.Segment
			for range 4 {
				for i := range 3 {
					data := make([]byte, 15000)
					data[0] = byte(i)
					w.Append(data)
				}
				recs, hb := w.Flush()
				line = append(line, store.Segment{Records: recs, Heartbeat: hb})
			}
			srcs := map[pdu.Name]*Server{sw.p.Name: peerSource(t, sw, sw.p.Name, line), sw.m.Name: peerSource(t, sw, sw.m.Name, line)}
			waitFor(t, 20*time.Second, "the start-up sync to end", func() bool {
				sw.s.sync.mu.Lock()
				defer sw.s.sync.mu.Unlock()
				return !sw.s.sync.running[sw.c]
			})
			pAsked, mIn := make(chan struct{}), make(chan struct{}) // p asked for its second answer; m's first answer delivered
			var pSyncs, mSyncs, sent atomic.Int64
			sw.net.set(func(h pdu.Header, m *wire.Message) []peerAnswer {
				src := srcs[h.Dst]
				if m.Op != wire.OpSync || src == nil {
					return nil
				}
				resp := src.handleSync(request{from: h.Src, dst: h.Dst, msg: m})
				for _, seg := range resp.Segments {
					sent.Add(int64(len(seg.Records)))
				}
				a := peerAnswer{from: h.Dst, msg: resp}
				switch {
				case h.Dst == sw.p.Name && pSyncs.Add(1) == 2:
					close(pAsked)
					a.after, a.delay = mIn, 150*time.Millisecond
				case h.Dst == sw.p.Name:
				case mSyncs.Add(1) == 1:
					if how == "m's answer does not verify" {
						hb := bytes.Clone(resp.Segments[0].Heartbeat)
						hb[len(hb)-1] ^= 1 // its signature
						resp.Segments[0].Heartbeat = hb
					}
					go func() {
						<-pAsked
						b, _ := resp.Marshal()
						out := pdu.Header{Type: pdu.TypeData, TTL: 32, Src: h.Dst, Dst: sw.net.self, Payload: b}
						if pb, err := out.Marshal(); err == nil {
							sw.net.c.HandlePDU(pb)
						}
						close(mIn)
					}()
					return nil
				}
				return []peerAnswer{a}
			}, nil)
			syncRound(t, sw)
			if h, err := sw.s.st.Head(sw.c); err != nil || h.Seqno != 12 {
				t.Fatalf("s's head %d (%v), want 12", h.Seqno, err)
			}
			if n := sent.Load(); n != 15 {
				t.Fatalf("p and m sent %d records (p %d SYNCs, m %d) for a catch-up of 12, want 15: 12 from the peer streaming, 3 from the other's first answer", n, pSyncs.Load(), mSyncs.Load())
			}
			pe, me := peerStatus(t, sw, sw.p.Name).Error, peerStatus(t, sw, sw.m.Name).Error
			if pe != "" || (me == "") != (how == "honest") {
				t.Fatalf("errors shown: p %q, m %q", pe, me)
			}
		})
	}
}
