package capsuled

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestSegmentOverlapsNewerHead: two writers with one key; server s asks
// peer p for what it holds beyond s's head (SYNC from 1), and before p's
// answer arrives writer a's batch 1..3 lands on s. p's answer is writer
// b's batch 1..3: the same seqnos, another line, both signed by the writer
// key in one epoch. That alone is no fork: the third replica m decides
// which line has the majority. When m holds a's line, s keeps its own;
// when m holds b's, s adopts it. Either way no evidence is stored and s's
// readers see no fork (under -race and load this interleaving made
// TestTwoWritersOneKey's replicas store evidence before asking anyone).
func TestSegmentOverlapsNewerHead(t *testing.T) {
	for _, mHolds := range []string{"a", "b"} {
		t.Run("m holds "+mHolds, func(t *testing.T) {
			sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: 2 * time.Second})
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
			bRecs, bHB, bSeg := line('b')
			mRecs := aRecs
			if mHolds == "b" {
				mRecs = bRecs
			}
			running := func() bool {
				sw.s.sync.mu.Lock()
				defer sw.s.sync.mu.Unlock()
				return sw.s.sync.running[sw.c]
			}
			// The start-up comparison (nobody answers yet) ends first.
			waitFor(t, 20*time.Second, "the start-up sync to end", func() bool { return !running() })

			var raced, mAsked atomic.Bool
			serve := func(h pdu.Header, m *wire.Message) []peerAnswer {
				resp := m.Reply(wire.StatusOK)
				switch {
				case m.Op == wire.OpSync && h.Dst == sw.p.Name:
					if !raced.Swap(true) {
						// Writer a's APPEND lands on s while the SYNC is on its way.
						if err := sw.s.st.AppendExtending(context.Background(), sw.c, aRecs, aHB); err != nil {
							t.Errorf("writer a's batch on s: %v", err)
						}
					}
					resp.Head = 3
					if m.From == 1 {
						resp.From, resp.To, resp.Segments = 1, 3, []wire.Segment{bSeg}
					}
				case m.Op == wire.OpSync:
					return nil // m is slow to answer SYNC
				case m.Op == wire.OpRead && m.From >= 1 && m.From <= 3:
					recs := bRecs
					if h.Dst == sw.m.Name {
						mAsked.Store(true)
						recs = mRecs
					}
					resp.Records = [][]byte{recs[m.From-1].Marshal()}
				default:
					return nil
				}
				return []peerAnswer{{from: h.Dst, msg: resp}}
			}
			sw.net.set(serve, nil)
			sw.s.kickSync(sw.c)
			waitFor(t, 20*time.Second, "s to ask m which line it holds", mAsked.Load)
			waitFor(t, 20*time.Second, "the comparison to end", func() bool { return !running() })

			if evs, err := sw.s.st.Evidence(sw.c); err != nil || len(evs) != 0 {
				t.Fatalf("s stored %d pieces of fork evidence (%v) for a line the majority decides", len(evs), err)
			}
			h, err := sw.s.st.Head(sw.c)
			if err != nil {
				t.Fatal(err)
			}
			want := aHB
			if mHolds == "b" {
				want = bHB
			}
			if h.Seqno != 3 || !h.Heartbeat.Equal(want) {
				t.Fatalf("s's head %d, want the majority's line (writer %s's)", h.Seqno, mHolds)
			}
		})
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
