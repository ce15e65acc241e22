package client

import (
	"context"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestOvertakenPushesAskedForAtOnce (Session 13): a push whose consistency
// proof starts at a heartbeat the subscriber does not hold yet (it
// overtook the page that brings it) is dropped, and the server will not
// push its records again. Once that page is delivered, Next asks for them
// at once — a SUBSCRIBE from the next seqno is on the wire when Next
// returns the page — instead of waiting for the resumption timer or the
// renewal (with the writer paused, nothing else would show the gap).
// Entries are delivered once each and in order throughout. Mutation: the
// lostTo branch in Next skipped (s.expect() only): no SUBSCRIBE from 5
// when the page is returned.
func TestOvertakenPushesAskedForAtOnce(t *testing.T) {
	tw := newTrustWorld(t)
	h1 := tw.servers[0].Name
	tw.net.serve = func(h pdu.Header, m *wire.Message) []answer {
		if m.Op != wire.OpSubscribe {
			return tw.honest(h, m)
		}
		ok := m.Reply(wire.StatusOK)
		ok.From, ok.Head = m.From, 6
		return []answer{{from: h1, msg: ok}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rd, err := tw.cc.NewReader(ctx, tw.name, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := rd.Subscribe(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	// The writer's log: 1-2 (heartbeat 2), 3-4 (4), 5-6 (6).
	w := capsule.NewWriter(tw.name, tw.writer.Key)
	var tree capsule.MemTree
	type page struct {
		recs [][]byte
		hb   *capsule.Heartbeat
	}
	var pages []page
	for range 3 {
		var p page
		for range 2 {
			r := w.Append([]byte("entry"))
			tree.Append(r.Hash())
			p.recs = append(p.recs, r.Marshal())
		}
		_, p.hb = w.Flush()
		pages = append(pages, p)
	}
	// push sends page i as h1's push, its consistency proof from the
	// previous page's heartbeat (what h1 last pushed).
	push := func(i int) {
		t.Helper()
		p := pages[i]
		n := p.hb.Seqno
		path, err := capsule.InclusionPath(&tree, n-1, n)
		if err != nil {
			t.Fatal(err)
		}
		ev := &wire.Message{Op: wire.OpEvent, ID: sub.id, Capsule: tw.name[:], From: n - 1, To: n, Head: n,
			Records: p.recs, Heartbeat: p.hb.Marshal(), Proof: (&capsule.InclusionProof{Index: n - 1, Size: n, Path: path}).Marshal()}
		if i > 0 {
			old := pages[i-1].hb.Seqno
			cp, err := capsule.ConsistencyPath(&tree, old, n)
			if err != nil {
				t.Fatal(err)
			}
			ev.Consistency = (&capsule.ConsistencyProof{Old: old, New: n, Path: cp}).Marshal()
		}
		b, err := ev.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		pb, err := (&pdu.Header{Type: pdu.TypeData, TTL: 32, Src: h1, Dst: tw.net.self, Payload: b}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		tw.net.c.HandlePDU(pb)
	}
	next := func(want ...uint64) {
		t.Helper()
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []uint64
		for _, e := range ev.Entries {
			got = append(got, e.Seqno)
		}
		if len(got) != len(want) || (len(got) > 0 && (got[0] != want[0] || got[len(got)-1] != want[len(want)-1])) {
			t.Fatalf("delivered %v, want %v", got, want)
		}
	}
	subscribes := func(from uint64) int {
		tw.net.mu.Lock()
		defer tw.net.mu.Unlock()
		n := 0
		for _, h := range tw.net.sent {
			if m, err := wire.Unmarshal(h.Payload); err == nil && m.Op == wire.OpSubscribe && !m.IsResponse() && m.From == from {
				n++
			}
		}
		return n
	}

	push(0)
	next(1, 2)
	// 5-6 overtakes 3-4: queued in that order before Next looks.
	push(2)
	push(1)
	deadline := time.Now().Add(5 * time.Second)
	for len(sub.ch) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if len(sub.ch) != 2 {
		t.Fatalf("%d pushes queued, want 2", len(sub.ch))
	}
	before := subscribes(5)
	next(3, 4)
	if got := subscribes(5) - before; got != 1 {
		t.Fatalf("%d SUBSCRIBEs from 5 sent when the page 3-4 was returned, want 1: the dropped push of 5-6 asked for at once", got)
	}
	// The server answers it with 5-6 again (proof from 4 now): delivered
	// once, and the first copy is not replayed.
	push(2)
	next(5, 6)
}
