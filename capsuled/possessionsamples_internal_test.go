package capsuled

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/store"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
)

// fixedNonce is the i-th nonce of a deterministic test: SHA-256 of i.
func fixedNonce(i int) []byte {
	n := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("possession test nonce"), uint64(i)))
	return n[:]
}

// entryOf is entry k of l's log in wire form.
func (l *possessionLog) entryOf(k uint64) capsule.Record {
	for _, b := range l.recs {
		if b[0].Seqno <= k && k <= b[len(b)-1].Seqno {
			return b[k-b[0].Seqno]
		}
	}
	panic("no such entry")
}

// TestPossessionSamplesCatchPartialReplica: peer p holds 90 % of the 1,000
// entries (it lost every entry whose seqno ends in 7) and claims head
// 1,000; for each of 200 fixed nonces it answers the tag when it holds
// every entry the challenge covers, and otherwise the best it can: the tag
// over the entries it holds, a lost one left empty. With 16 samples (the
// default) it passes this server's check (sawHead, the real asker path)
// at most 0.9^16 ≈ 19 % of the time: the test allows 30 %. With one sample
// (min and asked 1, what a replica before Session 11 got) it passes about
// 90 % of the time — over the bound, so the bound tells the two apart.
func TestPossessionSamplesCatchPartialReplica(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, PublishWait: 200 * time.Millisecond})
	l := newPossessionLog(sw)
	l.fill(t, sw.s.st, sw.c, 1000)
	lost := func(k uint64) bool { return k%10 == 7 }
	hb := l.hbs[len(l.hbs)-1].Marshal()
	// p's answer to a SYNC with a nonce and the samples it states: what a
	// replica holding only the entries not lost can compute.
	answer := func(m *wire.Message) *wire.Message {
		resp := m.Reply(wire.StatusOK)
		resp.Head, resp.Heartbeat, resp.Limit = 1000, hb, m.Limit
		held := func(k uint64) []byte {
			if lost(k) {
				return nil
			}
			e := l.entryOf(k)
			return e.Marshal()
		}
		if m.Limit == 0 {
			resp.Possession = wire.PossessionTag(sw.c, sw.p.Name, m.Hash, 1000, held(1000), held(wire.PossessionSeqno(sw.c, m.Hash, 1000)))
			return resp
		}
		var entries [][]byte
		for _, k := range wire.PossessionSamples(sw.c, m.Hash, 1000, m.Limit) {
			entries = append(entries, held(k))
		}
		resp.Possession = wire.PossessionSampledTag(sw.c, sw.p.Name, m.Hash, 1000, m.Limit, held(1000), entries)
		return resp
	}
	const n, bound = 200, 0.30
	passRate := func(samples uint64) float64 {
		pass := 0
		for i := range n {
			nonce := fixedNonce(i)
			resp := answer(&wire.Message{Op: wire.OpSync, ID: uint64(i + 1), Capsule: sw.c[:], From: 1001, Hash: nonce, Limit: samples})
			err := sw.s.sawHead(sw.c, sw.p.Name, challenge{nonce, samples}, resp)
			switch {
			case err == nil:
				pass++
			case !errors.Is(err, errHeadNotHeld) || errors.Is(err, errTooFewSamples):
				t.Fatalf("challenge %d: %v", i, err)
			}
		}
		return float64(pass) / n
	}
	r16 := passRate(16)
	if err := sw.s.Reload(Config{PossessionMinSamples: 1}); err != nil {
		t.Fatal(err)
	}
	r1 := passRate(1)
	t.Logf("a replica holding 90%% of the entries passed %.0f%% of %d checks of 16 samples, %.0f%% of one sample", 100*r16, n, 100*r1)
	if r16 > bound {
		t.Fatalf("16 samples: passed %.0f%% of %d checks, want at most %.0f%% (0.9^16 ≈ 19%%)", 100*r16, n, 100*bound)
	}
	if r1 <= bound {
		t.Fatalf("one sample: passed %.0f%% — the bound does not tell 16 samples from one", 100*r1)
	}
}

// TestPossessionSamplesNoDowngrade: this server asks 16 samples. A peer's
// answer covering fewer — the one-entry tag a replica before Session 11
// sends (no key 24), or an honest tag over 8 — is refused before any entry
// is read, counted (dropped_total{reason="too_few_samples"},
// possession_checks_total{result="failed"}), and the peer's head is not
// shown; one covering more than asked (32) likewise
// (reason="too_many_samples"); a one-entry tag that states 16 samples
// fails the check (head_not_held). With possession_min_samples reloaded to
// 1 (an upgrade under way) the older replica's tag is accepted; reloaded
// back, refused again. An honest 16-sample answer is accepted throughout.
func TestPossessionSamplesNoDowngrade(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, PublishWait: 200 * time.Millisecond})
	l := newPossessionLog(sw)
	l.fill(t, sw.s.st, sw.c, 1000)
	full := replicaOf(t, sw, l, sw.p.Name, 1000)
	if got := sw.s.samples(); got != 16 {
		t.Fatalf("the default asks %d samples, want 16", got)
	}
	nonce := fixedNonce(1)
	honest := func(samples uint64) *wire.Message {
		return full.handleSync(request{from: sw.s.name, msg: &wire.Message{Op: wire.OpSync, ID: 1, Capsule: sw.c[:], From: 1001, Hash: nonce, Limit: samples}})
	}
	counter := func(reason string) float64 { return counterValue(sw.s.met.dropped.WithLabelValues(reason)) }
	failed := sw.s.met.possessionChecks.WithLabelValues("failed")
	check := func(name string, resp *wire.Message, reason string) {
		t.Helper()
		was, fw, reads := counter(reason), counterValue(failed), sw.s.st.Stats().EntriesRead
		err := sw.s.sawHead(sw.c, sw.p.Name, challenge{nonce, 16}, resp)
		if reason == "" {
			if err != nil {
				t.Fatalf("%s: refused: %v", name, err)
			}
			if p := peerStatus(t, sw, sw.p.Name); p.Head != 1000 || p.Seen.IsZero() || p.Unproven {
				t.Fatalf("%s: accepted but shown as %+v", name, p)
			}
			return
		}
		if !errors.Is(err, errHeadNotHeld) {
			t.Fatalf("%s: %v, want a failed check", name, err)
		}
		if counter(reason) != was+1 || counterValue(failed) != fw+1 {
			t.Fatalf("%s: dropped_total{%s} %v → %v, possession_checks_total{failed} %v → %v: want +1 each (%v)",
				name, reason, was, counter(reason), fw, counterValue(failed), err)
		}
		if p := peerStatus(t, sw, sw.p.Name); !p.Seen.IsZero() || !p.Unproven {
			t.Fatalf("%s: the peer's head shows: %+v", name, p)
		}
		if reason != "head_not_held" && sw.s.st.Stats().EntriesRead != reads {
			t.Fatalf("%s: refused after reading %d entries, want none", name, sw.s.st.Stats().EntriesRead-reads)
		}
	}
	old := honest(0) // a replica before sampled tags: key 24 ignored
	if old.Limit != 0 || len(old.Possession) != wire.PossessionLen {
		t.Fatalf("the one-entry answer: limit %d, tag %x", old.Limit, old.Possession)
	}
	check("honest, 16 samples", honest(16), "")
	check("an older replica's one-entry tag", old, "too_few_samples")
	check("honest, 16 samples, again", honest(16), "")
	check("an honest tag over 8 samples", honest(8), "too_few_samples")
	check("an honest tag over 32 samples, 16 asked", honest(32), "too_many_samples")
	lie := *old
	lie.Limit = 16
	check("a one-entry tag stating 16 samples", &lie, "head_not_held")
	if err := sw.s.Reload(Config{PossessionMinSamples: 1}); err != nil {
		t.Fatal(err)
	}
	check("mid-upgrade (minimum 1): the one-entry tag", old, "")
	check("mid-upgrade (minimum 1): 8 samples", honest(8), "")
	if err := sw.s.Reload(Config{}); err != nil { // back to the default: possession_samples
		t.Fatal(err)
	}
	check("after the upgrade: the one-entry tag", old, "too_few_samples")
	check("after the upgrade: 16 samples", honest(16), "")
	// A minimum above the samples asked would fail every check: refused.
	if err := sw.s.Reload(Config{PossessionMinSamples: 17}); err == nil {
		t.Fatal("a reload to possession_min_samples 17 above possession_samples 16 is accepted")
	}
	if got := sw.s.minSamples(); got != 16 {
		t.Fatalf("after a refused reload the minimum is %d, want 16", got)
	}
}

// TestSyncAnswerSamplesBounded: the answering side reads 1 + min(s, head)
// entries for a SYNC stating s samples, 2 for one stating none (the
// one-entry tag, no key 24 in the answer); a SYNC asking for 1,000 is
// answered with 64 (wire.MaxPossessionSamples), stated, counted
// (possession_samples_clamped_total), and 65 reads; a log shorter than s
// is covered whole.
func TestSyncAnswerSamplesBounded(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, PublishWait: 200 * time.Millisecond})
	l := newPossessionLog(sw)
	full := replicaOf(t, sw, l, sw.p.Name, 1000)
	short := replicaOf(t, sw, l, sw.p.Name, 5)
	for _, tc := range []struct {
		src              *Server
		asked, stated    uint64
		reads, clamped   uint64
		samplesFromStore uint64
	}{
		{full, 0, 0, 2, 0, 0},
		{full, 1, 1, 2, 0, 1},
		{full, 16, 16, 17, 0, 16},
		{full, 64, 64, 65, 0, 64},
		{full, 1000, 64, 65, 1, 64},
		{full, 1 << 62, 64, 65, 1, 64},
		{short, 16, 16, 6, 0, 5},
	} {
		head, err := tc.src.st.Head(sw.c)
		if err != nil {
			t.Fatal(err)
		}
		nonce := fixedNonce(int(tc.asked))
		// From head+1: the answer carries no segments, so every entry
		// read is the tag's.
		m := &wire.Message{Op: wire.OpSync, ID: 1, Capsule: sw.c[:], From: head.Seqno + 1, Hash: nonce, Limit: tc.asked}
		reads, clamped := tc.src.st.Stats().EntriesRead, counterValue(tc.src.met.samplesClamped)
		resp := tc.src.handleSync(request{from: sw.s.name, msg: m})
		if resp.Status != wire.StatusOK || resp.Limit != tc.stated || len(resp.Segments) != 0 {
			t.Fatalf("asked %d: %v, stated %d, %d segments; want 200 stating %d", tc.asked, resp.Status, resp.Limit, len(resp.Segments), tc.stated)
		}
		if n := tc.src.st.Stats().EntriesRead - reads; n != tc.reads {
			t.Fatalf("asked %d of a log of %d: %d entries read, want %d", tc.asked, head.Seqno, n, tc.reads)
		}
		if n := counterValue(tc.src.met.samplesClamped) - clamped; n != float64(tc.clamped) {
			t.Fatalf("asked %d: possession_samples_clamped_total +%v, want +%d", tc.asked, n, tc.clamped)
		}
		// The tag is the one the documented derivation gives.
		he := l.entryOf(head.Seqno)
		var want []byte
		if tc.stated == 0 {
			ke := l.entryOf(wire.PossessionSeqno(sw.c, nonce, head.Seqno))
			want = wire.PossessionTag(sw.c, sw.p.Name, nonce, head.Seqno, he.Marshal(), ke.Marshal())
		} else {
			var entries [][]byte
			seqs := wire.PossessionSamples(sw.c, nonce, head.Seqno, tc.stated)
			if uint64(len(seqs)) != tc.samplesFromStore {
				t.Fatalf("asked %d: %d samples", tc.asked, len(seqs))
			}
			for _, k := range seqs {
				e := l.entryOf(k)
				entries = append(entries, e.Marshal())
			}
			want = wire.PossessionSampledTag(sw.c, sw.p.Name, nonce, head.Seqno, tc.stated, he.Marshal(), entries)
		}
		if !bytes.Equal(resp.Possession, want) {
			t.Fatalf("asked %d: the tag is not the documented one", tc.asked)
		}
	}
}

// BenchmarkPossessionTag: what one possession check costs each side (the
// answerer's tag, the asker's the same again): a capsule of 1,000 records
// of 100 bytes, 5 KB or 50 KB; the one-entry tag (samples 0) and 1, 16
// and 64 samples. Reads come from the store's caches after the first
// rounds, as for a capsule checked every possession_interval.
//
//	go test -run '^$' -bench PossessionTag ./capsuled
func BenchmarkPossessionTag(b *testing.B) {
	for _, size := range []int{100, 5000, 50000} {
		st, err := store.Open(filepath.Join(b.TempDir(), "store"), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		meta, err := certs.NewCapsule(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)), ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32)).Public().(ed25519.PublicKey), "bench")
		if err != nil {
			b.Fatal(err)
		}
		c := meta.Name()
		if err := st.Create(context.Background(), c, meta.Marshal()); err != nil {
			b.Fatal(err)
		}
		w := capsule.NewWriter(c, ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32)))
		for i := range 1000 {
			data := make([]byte, size) // the writer keeps it
			data[0], data[1] = byte(i), byte(i>>8)
			w.Append(data)
			if (i+1)%10 == 0 {
				recs, hb := w.Flush()
				if err := st.Append(context.Background(), c, recs, hb); err != nil {
					b.Fatal(err)
				}
			}
		}
		s := &Server{name: pdu.Name{7}, st: st}
		for _, samples := range []uint64{0, 1, 16, 64} {
			b.Run(fmt.Sprintf("record=%dB/samples=%d", size, samples), func(b *testing.B) {
				for i := range b.N {
					if _, err := s.possessionTag(c, s.name, fixedNonce(i), 1000, samples); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		_ = st.Close()
	}
}

// TestPossessionSamplesConfig: possession_samples defaults to 16 and is at
// most 64; possession_min_samples defaults to it and is at most it.
func TestPossessionSamplesConfig(t *testing.T) {
	for _, tc := range []struct {
		samples, min         int
		wantSamples, wantMin int
		bad                  bool
	}{
		{0, 0, 16, 16, false},
		{8, 0, 8, 8, false},
		{64, 1, 64, 1, false},
		{0, 1, 16, 1, false},
		{65, 0, 0, 0, true},
		{-1, 0, 0, 0, true},
		{8, 9, 0, 0, true},
		{0, -1, 0, 0, true},
	} {
		c, err := Config{Dir: "x", PossessionSamples: tc.samples, PossessionMinSamples: tc.min}.withDefaults()
		if (err != nil) != tc.bad {
			t.Fatalf("samples %d, min %d: %v", tc.samples, tc.min, err)
		}
		if !tc.bad && (c.PossessionSamples != tc.wantSamples || c.PossessionMinSamples != tc.wantMin) {
			t.Fatalf("samples %d, min %d: got %d and %d, want %d and %d", tc.samples, tc.min, c.PossessionSamples, c.PossessionMinSamples, tc.wantSamples, tc.wantMin)
		}
	}
}

// TestPossessionSamplesOlderPeer: anti-entropy rounds (askSync, the real
// asking path) with a peer that predates sampled tags — it ignores key 24
// and answers its one-entry tag without it. With the default minimum its
// head is not shown, the round counts too_few_samples and Status shows the
// peer's error naming possession_min_samples; reloaded to 1 (an upgrade
// under way) the next due check shows it; the SYNCs stated 16 samples.
func TestPossessionSamplesOlderPeer(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: time.Second, PublishWait: 200 * time.Millisecond})
	l := newPossessionLog(sw)
	l.fill(t, sw.s.st, sw.c, 1000)
	full := replicaOf(t, sw, l, sw.p.Name, 1000)
	var mu sync.Mutex
	var stated []uint64 // the samples each SYNC with a nonce stated
	sw.net.set(func(h pdu.Header, m *wire.Message) []peerAnswer {
		if m.Op != wire.OpSync {
			return nil
		}
		if h.Dst == sw.m.Name {
			return []peerAnswer{{from: h.Dst, msg: m.Reply(wire.StatusOK)}} // an empty peer
		}
		if len(m.Hash) > 0 {
			mu.Lock()
			stated = append(stated, m.Limit)
			mu.Unlock()
		}
		old := *m
		old.Limit = 0 // a replica before Session 11 never reads key 24
		return []peerAnswer{{from: h.Dst, msg: full.handleSync(request{from: h.Src, msg: &old})}}
	}, nil)
	few := sw.s.met.dropped.WithLabelValues("too_few_samples")
	was := counterValue(few)
	syncRound(t, sw)
	if p := peerStatus(t, sw, sw.p.Name); !p.Seen.IsZero() || !p.Unproven || !strings.Contains(p.Error, "possession_min_samples is 16") {
		t.Fatalf("the older peer with the default minimum: %+v", p)
	}
	if n := counterValue(few); n != was+1 {
		t.Fatalf("dropped_total{too_few_samples} %v → %v, want +1", was, n)
	}
	if err := sw.s.Reload(Config{PossessionMinSamples: 1}); err != nil {
		t.Fatal(err)
	}
	syncRound(t, sw) // the failed check stays due
	if p := peerStatus(t, sw, sw.p.Name); p.Head != 1000 || p.Seen.IsZero() || p.Unproven || p.Error != "" {
		t.Fatalf("the older peer with the minimum reloaded to 1: %+v", p)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(stated) < 2 {
		t.Fatalf("%d SYNCs asked for a tag, want 2 or more", len(stated))
	}
	for _, s := range stated {
		if s != 16 {
			t.Fatalf("a SYNC stated %d samples, want 16", s)
		}
	}
}
