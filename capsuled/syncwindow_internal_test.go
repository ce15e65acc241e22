package capsuled

import (
	"bytes"
	"context"
	"path/filepath"
	"sync"
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

// syncSource is a replica's SYNC answering side over a store of its own
// holding capsule c in batches of the given sizes (records of dataLen
// bytes): handleSync as a peer runs it.
func syncSource(t *testing.T, sw *syncWorld, sizes []int, dataLen int) *Server {
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
	w := capsule.NewWriter(sw.c, sw.writer.Key)
	n := 0
	for _, size := range sizes {
		for range size {
			n++
			data := make([]byte, dataLen)
			data[0], data[1] = byte(n), byte(n>>8)
			w.Append(data)
		}
		recs, hb := w.Flush()
		if err := st.Append(ctx, sw.c, recs, hb); err != nil {
			t.Fatal(err)
		}
	}
	places, err := openPlacements(filepath.Join(dir, "placements"))
	if err != nil {
		t.Fatal(err)
	}
	// The capsule's placement (s, p, m), as a CREATE would leave it: only
	// its other replicas are answered a possession tag.
	if err := places.put(sw.s.places.get(sw.c)); err != nil {
		t.Fatal(err)
	}
	return &Server{name: sw.p.Name, st: st, places: places, met: newMetrics(prometheus.NewRegistry()), cfg: Config{SyncAnswersPerPeer: 64}}
}

// irregular is batch sizes 1..23 in a scrambled order.
func irregular(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = (i*7)%23 + 1
	}
	return out
}

// sameLog fails unless a and b hold the same entries of capsule c.
func sameLog(t *testing.T, a, b *store.Store, c pdu.Name) {
	t.Helper()
	ha, err := a.Head(c)
	if err != nil {
		t.Fatal(err)
	}
	hb, err := b.Head(c)
	if err != nil {
		t.Fatal(err)
	}
	if ha.Seqno != hb.Seqno || ha.Seqno == 0 {
		t.Fatalf("heads %d and %d", ha.Seqno, hb.Seqno)
	}
	var ea [][]byte
	if err := a.ReadRaw(c, 1, ha.Seqno, func(_ uint64, raw []byte) error { ea = append(ea, bytes.Clone(raw)); return nil }); err != nil {
		t.Fatal(err)
	}
	i := 0
	if err := b.ReadRaw(c, 1, hb.Seqno, func(seq uint64, raw []byte) error {
		if !bytes.Equal(raw, ea[i]) {
			t.Fatalf("entry %d differs", seq)
		}
		i++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestRangeSyncAnswersBackToBack: range SYNCs cut at any seqnos are
// answered without gaps or overlaps, each answer starting right after the
// one before ended, whatever the batches, with more answers when a range
// does not fit one message; a range SYNC ending before it starts is 400.
func TestRangeSyncAnswersBackToBack(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second})
	src := syncSource(t, sw, irregular(60), 1500)
	head, err := src.st.Head(sw.c)
	if err != nil {
		t.Fatal(err)
	}
	peer := pdu.Name{9}
	ask := func(from, to uint64) *wire.Message {
		resp := src.handleSync(request{from: peer, msg: &wire.Message{Op: wire.OpSync, ID: 1, Capsule: sw.c[:], From: from, To: to}})
		if resp.Status != wire.StatusOK {
			t.Fatalf("range [%d, %d]: %v %s", from, to, resp.Status, resp.Error)
		}
		return resp
	}
	for _, width := range []uint64{1, 5, 17, 40, 300} {
		next, covered, answers := uint64(1), uint64(0), 0
		for lo := uint64(1); lo <= head.Seqno; lo += width {
			hi := min(lo+width-1, head.Seqno)
			for from := lo; ; {
				resp := ask(from, hi)
				answers++
				if resp.From != next {
					t.Fatalf("width %d: the answer to [%d, %d] starts at %d, want %d", width, from, hi, resp.From, next)
				}
				segs, err := decodeSegments(resp.Segments)
				if err != nil {
					t.Fatal(err)
				}
				if err := checkRangeAnswer(resp, segs, next); err != nil {
					t.Fatalf("width %d, range [%d, %d]: %v", width, from, hi, err)
				}
				for _, s := range segs {
					covered += uint64(len(s.Records))
				}
				next = resp.To + 1
				if !resp.More {
					break
				}
				from = resp.To + 1
			}
		}
		if next != head.Seqno+1 || covered != head.Seqno {
			t.Fatalf("width %d: answers ended at %d holding %d records, head %d", width, next-1, covered, head.Seqno)
		}
		t.Logf("width %d: %d answers", width, answers)
	}
	bad := src.handleSync(request{from: peer, msg: &wire.Message{Op: wire.OpSync, ID: 1, Capsule: sw.c[:], From: 9, To: 8}})
	if bad.Status != wire.StatusBadRequest {
		t.Fatalf("range SYNC [9, 8]: %v, want 400", bad.Status)
	}
}

// TestSyncAnswersPerPeer: one peer has at most sync_answers_per_peer SYNCs
// answered at once; one more is refused 503 and counted, another peer's is
// answered. The possession tag (its entry reads) is computed only for an
// admitted SYNC with a nonce: a refused one reads no entry from the store
// at all (store Stats.EntriesRead), and one without a nonce (an older
// asker) carries no tag and reads only the entries its segments carry.
func TestSyncAnswersPerPeer(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, PublishWait: 200 * time.Millisecond})
	src := syncSource(t, sw, []int{3}, 10)
	src.cfg.SyncAnswersPerPeer = 2
	busy, other := pdu.Name{1}, sw.m.Name // other: a replica of the placement
	req := &wire.Message{Op: wire.OpSync, ID: 1, Capsule: sw.c[:], From: 1, Hash: bytes.Repeat([]byte{9}, wire.NonceLen)}
	for range 2 {
		if !src.syncAnswers.admit(busy, 2) {
			t.Fatal("the first two SYNCs of a peer are refused")
		}
	}
	reads := func() uint64 { return src.st.Stats().EntriesRead }
	was := reads()
	if resp := src.handleSync(request{from: busy, msg: req}); resp.Status != wire.StatusUnavailable || resp.Possession != nil {
		t.Fatalf("a third SYNC of a peer with two being answered: %v (tag %x), want 503 without a tag", resp.Status, resp.Possession)
	}
	if n := reads() - was; n != 0 {
		t.Fatalf("a SYNC refused by the peer's share read %d entries, want none", n)
	}
	if n := counterValue(src.met.syncRefused.WithLabelValues("identity")); n != 1 {
		t.Fatalf("sync_refused_total %v, want 1", n)
	}
	was = reads()
	if resp := src.handleSync(request{from: other, msg: req}); resp.Status != wire.StatusOK || len(resp.Segments) != 1 || len(resp.Possession) != wire.PossessionLen {
		t.Fatalf("another peer's SYNC: %v with %d segments, tag %x", resp.Status, len(resp.Segments), resp.Possession)
	}
	nonced := reads() - was
	src.syncAnswers.release(busy)
	if resp := src.handleSync(request{from: busy, msg: req}); resp.Status != wire.StatusOK {
		t.Fatalf("the peer's SYNC once one of its answers is done: %v", resp.Status)
	}
	// An older asker sends no nonce: its answer has no key 30 (which its
	// decoder would refuse), and costs no entry reads.
	old := *req
	old.Hash = nil
	was = reads()
	if resp := src.handleSync(request{from: other, msg: &old}); resp.Status != wire.StatusOK || resp.Possession != nil {
		t.Fatalf("a SYNC without a nonce: %v, tag %x", resp.Status, resp.Possession)
	}
	// Its 3 entries; the one with a nonce read those and the tag's 2
	// (the head's, and the one the nonce picks).
	if plain := reads() - was; plain != 3 || nonced != plain+2 {
		t.Fatalf("entries read: %d answering a SYNC without a nonce (want 3), %d with one (want 5)", plain, nonced)
	}
}

// TestSyncAnswersPerIdentity (Session 16): sync_answers_per_peer is one
// share per proven identity, whatever names it asks from (its own, its
// session name), and one for every asker that proved nothing: a member's
// SYNC from its session name is refused 503 while its own name holds the
// identity's answers, an unproven name's while other unproven names hold
// the pool's, each counted by share; another member's is answered. (Per
// source name, a member holding many names took a worker per name.)
func TestSyncAnswersPerIdentity(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, PublishWait: 200 * time.Millisecond})
	src := syncSource(t, sw, []int{3}, 10)
	src.cfg.SyncAnswersPerPeer = 2
	dom, err := certs.NewIdentity(certs.KindDomain, "sync share domain")
	if err != nil {
		t.Fatal(err)
	}
	member := func(desc string) asker {
		id, err := certs.NewIdentity(certs.KindServer, desc)
		if err != nil {
			t.Fatal(err)
		}
		return askerOfMember(client.Member{Meta: id.Meta, Domain: dom.Name, Own: true})
	}
	mallory, other := member("mallory's replica"), member("another replica")
	own, session, otherName := pdu.Name{0x01}, pdu.Name{0x02}, pdu.Name{0x03}
	unproven1, unproven2 := pdu.Name{0x11}, pdu.Name{0x12}
	req := &wire.Message{Op: wire.OpSync, ID: 1, Capsule: sw.c[:], From: 1}
	answer := func(from pdu.Name, a asker) wire.Status {
		return src.handleSync(request{from: from, msg: req, asker: a}).Status
	}
	// Mallory's own name has both its answers in progress, as have two
	// unproven names the pool's.
	for range 2 {
		if !src.syncAnswers.admit(mallory.shareOf(own), 2) {
			t.Fatal("mallory's first two SYNCs refused")
		}
	}
	if !src.syncAnswers.admit(unprovenAsker.shareOf(unproven1), 2) || !src.syncAnswers.admit(unprovenAsker.shareOf(unproven2), 2) {
		t.Fatal("the unproven pool's first two SYNCs refused")
	}
	for _, tt := range []struct {
		what string
		from pdu.Name
		a    asker
		want wire.Status
	}{
		{"mallory's session name", session, mallory, wire.StatusUnavailable},
		{"a third unproven name", pdu.Name{0x13}, unprovenAsker, wire.StatusUnavailable},
		{"another member", otherName, other, wire.StatusOK},
	} {
		if got := answer(tt.from, tt.a); got != tt.want {
			t.Fatalf("%s: %v, want %v", tt.what, got, tt.want)
		}
	}
	for share, want := range map[string]float64{"identity": 1, "unproven": 1} {
		if n := counterValue(src.met.syncRefused.WithLabelValues(share)); n != want {
			t.Fatalf("sync_refused_total{share=%q} %v, want %v", share, n, want)
		}
	}
	src.syncAnswers.release(mallory.shareOf(own))
	if got := answer(session, mallory); got != wire.StatusOK {
		t.Fatalf("mallory's session name once one of its identity's answers is done: %v", got)
	}
}

// TestReadAheadPerIdentity (Session 16): the read-ahead bounds kept per
// requester (read_ahead_streams, read_ahead_bytes) are one share per
// proven identity over every name it reads from, and one for every
// requester that proved nothing: a member reading one capsule from five
// names has four streams (the default), its least recently used dropped
// and counted; five unproven names the same; another member's stream
// drops none. (Per source name, each name had four streams and 4 MiB.)
func TestReadAheadPerIdentity(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, PublishWait: 200 * time.Millisecond})
	src := syncSource(t, sw, []int{20}, 10)
	src.cfg.ReadLimit = 16
	dom, err := certs.NewIdentity(certs.KindDomain, "read-ahead domain")
	if err != nil {
		t.Fatal(err)
	}
	member := func(desc string) asker {
		id, err := certs.NewIdentity(certs.KindClient, desc)
		if err != nil {
			t.Fatal(err)
		}
		return askerOfMember(client.Member{Meta: id.Meta, Domain: dom.Name, Own: false})
	}
	mallory, other := member("mallory"), member("another member")
	read := func(from pdu.Name, a asker) {
		t.Helper()
		m := &wire.Message{Op: wire.OpRead, ID: 1, Capsule: sw.c[:], From: 1, To: 1}
		if resp := src.handleRead(request{from: from, msg: m, asker: a}); resp.Status != wire.StatusOK || len(resp.Records) != 1 {
			t.Fatalf("READ from %x: %v, %d records", from[:2], resp.Status, len(resp.Records))
		}
	}
	evicted := func() uint64 { return src.st.Stats().ReadAheadEvicted }
	for i := range 5 {
		read(pdu.Name{0x0a, byte(i)}, mallory)
	}
	if n := evicted(); n != 1 {
		t.Fatalf("one member reading from 5 names: %d streams dropped, want 1 (4 per identity)", n)
	}
	read(pdu.Name{0x0b}, other)
	for i := range 5 {
		read(pdu.Name{0x0c, byte(i)}, unprovenAsker)
	}
	if n := evicted(); n != 2 {
		t.Fatalf("another member's name, then 5 unproven names: %d streams dropped in all, want 2", n)
	}
}

// TestSyncPossessionOnlyForReplicas: a possession challenge (a SYNC with a
// nonce, 64 samples asked) is answered with a tag only to one of the
// capsule's other replicas in the placement the answering server holds.
// From any other requester the SYNC is answered as before (its segments)
// but without a tag, reads no more entries than the same SYNC without a
// nonce, and is counted in possession_refused_total.
func TestSyncPossessionOnlyForReplicas(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, PublishWait: 200 * time.Millisecond})
	src := syncSource(t, sw, []int{40, 40}, 10) // p, head 80: 64 samples are 64 distinct entries
	nonced := &wire.Message{Op: wire.OpSync, ID: 1, Capsule: sw.c[:], From: 1, Hash: bytes.Repeat([]byte{9}, wire.NonceLen), Limit: wire.MaxPossessionSamples}
	plain := *nonced
	plain.Hash, plain.Limit = nil, 0
	reads := func(from pdu.Name, m *wire.Message) (*wire.Message, uint64) {
		t.Helper()
		was := src.st.Stats().EntriesRead
		resp := src.handleSync(request{from: from, msg: m})
		if resp.Status != wire.StatusOK || len(resp.Segments) == 0 || resp.Head != 80 {
			t.Fatalf("SYNC from %x: %v, %d segments, head %d", from[:4], resp.Status, len(resp.Segments), resp.Head)
		}
		return resp, src.st.Stats().EntriesRead - was
	}
	outsider := pdu.Name{0xee} // a member, not a server of the placement
	_, base := reads(outsider, &plain)
	for _, from := range []pdu.Name{outsider, src.name} { // src.name: itself, not another replica
		resp, n := reads(from, nonced)
		if resp.Possession != nil || resp.Limit != 0 {
			t.Fatalf("a challenge from %x outside the placement: tag %x over %d samples, want none", from[:4], resp.Possession, resp.Limit)
		}
		if n != base {
			t.Fatalf("a challenge from %x outside the placement read %d entries, the same SYNC without a nonce %d", from[:4], n, base)
		}
	}
	if n := counterValue(src.met.possessionRefused); n != 2 {
		t.Fatalf("possession_refused_total %v, want 2", n)
	}
	for _, peer := range []pdu.Name{sw.s.name, sw.m.Name} {
		resp, n := reads(peer, nonced)
		if len(resp.Possession) != wire.PossessionLen || resp.Limit != wire.MaxPossessionSamples {
			t.Fatalf("a challenge from replica %x: tag %x over %d samples, want one over %d", peer[:4], resp.Possession, resp.Limit, wire.MaxPossessionSamples)
		}
		if n <= base {
			t.Fatalf("a challenge from replica %x read %d entries, no more than without a nonce (%d)", peer[:4], n, base)
		}
		want, err := src.possessionTag(sw.c, src.name, nonced.Hash, 80, wire.MaxPossessionSamples)
		if err != nil || !bytes.Equal(resp.Possession, want) {
			t.Fatalf("the replica's tag %x, want %x (%v)", resp.Possession, want, err)
		}
	}
	if n := counterValue(src.met.possessionRefused); n != 2 {
		t.Fatalf("possession_refused_total %v after the replicas' challenges, want still 2", n)
	}
}

// windowPeer plays peer p answering s's SYNCs from src (real handleSync),
// range answers out of order (every third held back 30 ms), every fifth
// range refused 503 once; it records how many of its answers were still
// on their way when each range SYNC came in. forge, when set, may replace
// an answer.
type windowPeer struct {
	sw    *syncWorld
	src   *Server
	forge func(n int, m *wire.Message, honest *wire.Message) *wire.Message

	mu       sync.Mutex
	n        int
	pending  []time.Time // when each answer sent is delivered
	most     int         // answers on their way when a range SYNC came, at most
	refused  map[uint64]bool
	ranges   atomic.Int64
	answered atomic.Int64
	nonced   atomic.Int64 // range SYNCs that asked for a possession tag
}

func (wp *windowPeer) serve(h pdu.Header, m *wire.Message) []peerAnswer {
	if m.Op != wire.OpSync {
		return nil
	}
	if h.Dst != wp.sw.p.Name {
		return []peerAnswer{{from: h.Dst, msg: m.Reply(wire.StatusOK)}} // m holds nothing
	}
	wp.mu.Lock()
	defer wp.mu.Unlock()
	now := time.Now()
	var delay time.Duration
	if m.To > 0 {
		wp.ranges.Add(1)
		if len(m.Hash) > 0 {
			wp.nonced.Add(1)
		}
		open := 0
		for _, at := range wp.pending {
			if at.After(now) {
				open++
			}
		}
		wp.most = max(wp.most, open)
		wp.n++
		if wp.n%5 == 0 && !wp.refused[m.From] {
			wp.refused[m.From] = true
			return []peerAnswer{{from: h.Dst, msg: m.Reply(wire.StatusUnavailable)}}
		}
		if wp.n%3 == 0 {
			delay = 30 * time.Millisecond
		}
	}
	resp := wp.src.handleSync(request{from: h.Src, dst: h.Dst, msg: m})
	if wp.forge != nil && m.To > 0 {
		resp = wp.forge(wp.n, m, resp)
	}
	wp.pending = append(wp.pending, now.Add(delay))
	wp.answered.Add(1)
	return []peerAnswer{{from: h.Dst, msg: resp, delay: delay}}
}

// catchUp runs one comparison of s with its peers (once the start-up one
// has ended) and checks that s then holds what src holds: one round, so a
// range that failed and ended the pull shows.
func catchUp(t *testing.T, sw *syncWorld, src *Server) {
	t.Helper()
	waitFor(t, 20*time.Second, "the start-up sync to end", func() bool {
		sw.s.sync.mu.Lock()
		defer sw.s.sync.mu.Unlock()
		return !sw.s.sync.running[sw.c]
	})
	want, err := src.st.Head(sw.c)
	if err != nil {
		t.Fatal(err)
	}
	sw.s.syncCapsule(context.Background(), sw.c, true)
	if h, err := sw.s.st.Head(sw.c); err != nil || h.Seqno != want.Seqno {
		t.Fatalf("after one round s holds %d entries (%v), the peer %d", h.Seqno, err, want.Seqno)
	}
	sameLog(t, src.st, sw.s.st, sw.c)
}

// TestCatchUpWindow: a replica far behind asks for ranges, several at
// once (sync_window), stores the answers in order although they arrive
// out of order, asks a busy peer's refused range again, and ends holding
// exactly the peer's log, every entry verified by its store. Its range
// SYNCs ask for no possession tag.
func TestCatchUpWindow(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, SyncWindow: 4})
	src := syncSource(t, sw, irregular(80), 1500)
	wp := &windowPeer{sw: sw, src: src, refused: map[uint64]bool{}}
	sw.net.set(wp.serve, nil)
	catchUp(t, sw, src)
	wp.mu.Lock()
	most := wp.most
	wp.mu.Unlock()
	t.Logf("%d range SYNCs, %d answers, at most %d answers on their way when a range SYNC came", wp.ranges.Load(), wp.answered.Load(), most)
	if most < 2 {
		t.Fatalf("at most %d answers on their way when a range SYNC came: no window", most)
	}
	// The pages of a catch-up ask for no possession tag (this server is
	// behind: it could not check one); the plain SYNC that ends the pull
	// does, and the peer's head is proven.
	if n := wp.nonced.Load(); n != 0 {
		t.Fatalf("%d of %d range SYNCs asked for a possession tag", n, wp.ranges.Load())
	}
	if p := peerStatus(t, sw, sw.p.Name); p.Unproven || p.Seen.IsZero() || counterValue(sw.s.met.possessionChecks.WithLabelValues("ok")) < 1 {
		t.Fatalf("the peer after the catch-up: %+v, %v checks", p, counterValue(sw.s.met.possessionChecks.WithLabelValues("ok")))
	}
	if n := counterValue(sw.s.met.syncErrors.WithLabelValues("busy")); n < 1 {
		t.Fatalf("busy refusals seen %v", n)
	}
	if n := counterValue(sw.s.met.syncErrors.WithLabelValues("misaligned")); n != 0 {
		t.Fatalf("%v honest answers refused as misaligned", n)
	}
	if n := counterValue(sw.s.met.syncErrors.WithLabelValues("verify")); n != 0 {
		t.Fatalf("%v answers failed verification", n)
	}
}

// TestCatchUpPagesAskNoTag: the pages of a catch-up (range SYNCs) never
// ask for a possession tag, even while a check is pending: here the
// peer's plain answers carry no heartbeat of its head (an unproven claim,
// which leaves a check pending) and this server, behind, could not check
// a tag anyway. The catch-up still ends with the peer's log.
func TestCatchUpPagesAskNoTag(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, SyncWindow: 4, PublishWait: 200 * time.Millisecond})
	src := syncSource(t, sw, irregular(40), 1500)
	wp := &windowPeer{sw: sw, src: src, refused: map[uint64]bool{}}
	sw.net.set(func(h pdu.Header, m *wire.Message) []peerAnswer {
		out := wp.serve(h, m)
		if m.Op == wire.OpSync && m.To == 0 && h.Dst == sw.p.Name {
			for _, a := range out {
				a.msg.Heartbeat = nil
			}
		}
		return out
	}, nil)
	catchUp(t, sw, src)
	if wp.ranges.Load() == 0 {
		t.Fatal("no range SYNCs")
	}
	if n := wp.nonced.Load(); n != 0 {
		t.Fatalf("%d of %d range SYNCs asked for a possession tag", n, wp.ranges.Load())
	}
}

// TestCatchUpWindowRefusesAnswerOutOfLine: a peer answers one range SYNC
// out of line: with the answer to another range (genuine records, signed
// by the writer, in the wrong place), with segments beyond the To it
// states, or with a To beyond its segments on an answer with more to come
// (the follow-up would skip the entries between). Each is refused before
// anything of it is stored and counted
// (sync_errors_total{reason="misaligned"}), none reaches the store's
// verification; the replica goes on with plain SYNCs and ends holding the
// peer's log.
func TestCatchUpWindowRefusesAnswerOutOfLine(t *testing.T) {
	for _, how := range []string{"another range", "beyond its to", "to beyond its segments"} {
		t.Run(how, func(t *testing.T) {
			sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, SyncWindow: 4})
			src := syncSource(t, sw, irregular(60), 1500)
			var forged atomic.Int64
			wp := &windowPeer{sw: sw, src: src, refused: map[uint64]bool{}}
			wp.forge = func(n int, m, honest *wire.Message) *wire.Message {
				if n < 4 || honest.To < honest.From || (how == "to beyond its segments") != honest.More || forged.Load() != 0 {
					return honest
				}
				forged.Store(1)
				f := *honest
				switch how {
				case "another range":
					next := &wire.Message{Op: wire.OpSync, ID: m.ID, Capsule: m.Capsule, From: honest.To + 1, To: honest.To + 1 + (m.To - m.From)}
					other := src.handleSync(request{from: pdu.Name{7}, msg: next})
					other.From = honest.From
					return other
				case "beyond its to":
					f.To--
				default:
					f.To++
				}
				return &f
			}
			sw.net.set(wp.serve, nil)
			catchUp(t, sw, src)
			if forged.Load() != 1 {
				t.Fatal("no answer forged")
			}
			if n := counterValue(sw.s.met.syncErrors.WithLabelValues("misaligned")); n != 1 {
				t.Fatalf("misaligned answers counted %v, want 1", n)
			}
			if n := counterValue(sw.s.met.syncErrors.WithLabelValues("verify")); n != 0 {
				t.Fatalf("%v answers reached the store and failed verification: the misaligned one was not refused first", n)
			}
		})
	}
}

// TestCatchUpWindowOldPeer: a peer that does not know range SYNCs answers
// each from its From, ignoring To. The first answer out of line is refused
// and counted, and the replica asks that peer one SYNC at a time for the
// rest of the round, ending with the peer's log.
func TestCatchUpWindowOldPeer(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, SyncWindow: 4})
	src := syncSource(t, sw, irregular(60), 1500)
	sw.net.set(func(h pdu.Header, m *wire.Message) []peerAnswer {
		if m.Op != wire.OpSync {
			return nil
		}
		if h.Dst != sw.p.Name {
			return []peerAnswer{{from: h.Dst, msg: m.Reply(wire.StatusOK)}}
		}
		old := *m
		old.To = 0
		resp := src.handleSync(request{from: h.Src, dst: h.Dst, msg: &old})
		return []peerAnswer{{from: h.Dst, msg: resp}}
	}, nil)
	catchUp(t, sw, src)
	if n := counterValue(sw.s.met.syncErrors.WithLabelValues("misaligned")); n != 1 {
		t.Fatalf("misaligned answers counted %v, want 1 (then one SYNC at a time)", n)
	}
}
