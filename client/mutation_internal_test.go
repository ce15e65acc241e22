package client

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestVerifyPageRefusals: a read answer is refused when it names another
// capsule, carries entries without a heartbeat, or carries a heartbeat,
// record or proof that does not decode; each refusal leaves the reader's
// held heartbeat as it was. Mutants (docs/SECURITY.md §2.13):
// capsule_reader.go verifyPage skip-if of each check.
func TestVerifyPageRefusals(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	var c, other pdu.Name
	_, _ = rand.Read(c[:])
	_, _ = rand.Read(other[:])
	w := capsule.NewWriter(c, key)
	var tree capsule.MemTree
	for i := range 2 {
		w.Append([]byte{byte(i), 1, 2, 3})
	}
	recs, hb := w.Flush()
	for _, e := range recs {
		tree.Append(e.Hash())
	}
	page := func() *wire.Message {
		path, err := capsule.InclusionPath(&tree, 1, hb.Seqno)
		if err != nil {
			t.Fatal(err)
		}
		p := &capsule.InclusionProof{Index: 1, Size: hb.Seqno, Path: path}
		return &wire.Message{Op: wire.OpRead, Capsule: c[:], Heartbeat: hb.Marshal(), Records: [][]byte{recs[1].Marshal()}, Proof: p.Marshal()}
	}
	r := &Reader{info: capsule.Info{Name: c, Writer: pub}}
	r.f = capsule.NewFollower(r.info)

	for _, tc := range []struct {
		name  string
		edit  func(m *wire.Message)
		isErr error
	}{
		{"another capsule", func(m *wire.Message) { m.Capsule = other[:] }, capsule.ErrWrongCapsule},
		{"entries without a heartbeat", func(m *wire.Message) { m.Heartbeat = nil }, capsule.ErrBadProof},
		{"undecodable heartbeat", func(m *wire.Message) { m.Heartbeat = []byte{0xa1, 1, 2} }, nil},
		{"undecodable record", func(m *wire.Message) { m.Records[0] = []byte{0xa1, 1, 2} }, nil},
		{"undecodable proof", func(m *wire.Message) { m.Proof = []byte{0xa1, 1, 2} }, nil},
	} {
		m := page()
		tc.edit(m)
		got, err := r.verifyPage(m)
		if err == nil || got != nil {
			t.Fatalf("%s: taken (%d entries)", tc.name, len(got))
		}
		if tc.isErr != nil && !errors.Is(err, tc.isErr) {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.isErr)
		}
		if tc.name != "undecodable record" && tc.name != "undecodable proof" && r.f.Heartbeat() != nil {
			t.Fatalf("%s: a heartbeat was taken", tc.name)
		}
	}
	// A heartbeat alone (no entries) is taken and returns no entries; a
	// page without either is empty.
	m := page()
	m.Records, m.Proof = nil, nil
	if got, err := r.verifyPage(m); err != nil || got != nil {
		t.Fatalf("heartbeat alone: %d entries, %v", len(got), err)
	}
	if r.f.Heartbeat() == nil || r.f.Heartbeat().Seqno != hb.Seqno {
		t.Fatal("the heartbeat alone was not taken")
	}
	if got, err := r.verifyPage(&wire.Message{Op: wire.OpRead, Capsule: c[:]}); err != nil || got != nil {
		t.Fatalf("empty page: %d entries, %v", len(got), err)
	}
	if got, err := r.verifyPage(page()); err != nil || len(got) != 1 {
		t.Fatalf("the sound page: %d entries, %v", len(got), err)
	}
}

// TestCapsuleNAKMatched: a NAK reaches a capsule request only when its
// sequence is one of ours and its echo is the header of the DATA PDU we
// sent to that destination; a short echo, an echo of another type or of
// another destination is dropped. Mutants: capsule_client.go:282 skip-if,
// drop-or-left, boundary (len < HeaderLen → <=) and drop-or-right (the
// echoed destination).
func TestCapsuleNAKMatched(t *testing.T) {
	tw := newTrustWorld(t)
	cc := tw.cc
	dst := tw.servers[0].Name
	id, ch, err := cc.pend.Add(wire.OpRead, 1, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.pend.Done(id)
	const seq = 4242
	cc.sentMu.Lock()
	cc.sent[seq] = sentPDU{id: id, dst: dst}
	cc.sentMu.Unlock()
	echo := func(typ pdu.Type, to pdu.Name) []byte {
		b, err := (&pdu.Header{Type: typ, TTL: 32, Sequence: seq, Dst: to, Src: tw.net.self}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	nak := func(seq uint32, payload []byte) Message {
		return Message{Type: pdu.TypeNAK, Code: pdu.CodeNoRoute, Sequence: seq, Src: tw.net.Peer(), Payload: payload}
	}
	for name, m := range map[string]Message{
		"unknown sequence":         nak(seq+1, echo(pdu.TypeData, dst)),
		"echo one byte short":      nak(seq, echo(pdu.TypeData, dst)[:pdu.HeaderLen-1]),
		"echo of another type":     nak(seq, echo(pdu.TypeEchoRequest, dst)),
		"echo of another receiver": nak(seq, echo(pdu.TypeData, tw.servers[1].Name)),
	} {
		if cc.nak(m) {
			t.Fatalf("%s: NAK delivered", name)
		}
		select {
		case r := <-ch:
			t.Fatalf("%s: reply %+v", name, r)
		default:
		}
	}
	// The header alone, exactly HeaderLen bytes, is a valid echo.
	if !cc.nak(nak(seq, echo(pdu.TypeData, dst)[:pdu.HeaderLen])) {
		t.Fatal("the NAK echoing our request was dropped")
	}
	if r := <-ch; r.NAK != pdu.CodeNoRoute || r.From != dst {
		t.Fatalf("reply %+v", r)
	}
}

// TestNAKEchoMatched: a NAK's echo is believed only when it is this
// request's header: the type, sequence, destination and source must all
// be the request's, the header must carry no options and be whole.
// Mutants: client.go:424 skip-if, boundary (len < HeaderLen → <=),
// drop-or-right (options), :427 skip-if, drop-or-left and :428
// drop-or-right (each field), :432 skip-if (a probe's payload).
func TestNAKEchoMatched(t *testing.T) {
	self, dst, other := pdu.Name{1}, pdu.Name{2}, pdu.Name{3}
	w := &waiter{id: 77, typ: pdu.TypeAdvertise, dst: dst, router: pdu.Name{0xee}}
	hdr := func(edit func(h *pdu.Header)) []byte {
		h := pdu.Header{Type: pdu.TypeAdvertise, TTL: 5, Sequence: 77, Dst: dst, Src: self}
		edit(&h)
		b, err := h.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !w.echoedBy(hdr(func(*pdu.Header) {}), self) {
		t.Fatal("the request's own header is not believed")
	}
	withOptions := hdr(func(*pdu.Header) {})
	withOptions[1]++ // header length in words: one word of options claimed
	for name, echo := range map[string][]byte{
		"one byte short":      hdr(func(*pdu.Header) {})[:pdu.HeaderLen-1],
		"options claimed":     withOptions,
		"another type":        hdr(func(h *pdu.Header) { h.Type = pdu.TypeWithdraw }),
		"another sequence":    hdr(func(h *pdu.Header) { h.Sequence = 78 }),
		"another destination": hdr(func(h *pdu.Header) { h.Dst = other }),
		"another source":      hdr(func(h *pdu.Header) { h.Src = other }),
	} {
		if w.echoedBy(echo, self) {
			t.Errorf("%s: echo believed", name)
		}
	}
	// A probe's random payload is what a guesser cannot know: a NAK about
	// a probe echoing the header alone is not believed (:432 skip-if).
	probe := &waiter{id: 77, typ: pdu.TypeEchoRequest, dst: dst, payload: []byte("0123456789abcdef"), router: pdu.Name{0xee}}
	h := hdr(func(h *pdu.Header) { h.Type = pdu.TypeEchoRequest })
	if probe.echoedBy(h, self) {
		t.Error("a probe's NAK without its payload believed")
	}
	if !probe.echoedBy(append(h, probe.payload...), self) {
		t.Error("a probe's NAK echoing its payload not believed")
	}
}

// TestObserveStaleAndFork: an older heartbeat than the one held marks the
// reader stale and is no error; a page under another heartbeat of the
// same size (the writer signed two logs) is refused as equivocation.
// Mutants: capsule_reader.go:453 skip-case (stale), :395 skip-if (the
// page's observe error dropped).
func TestObserveStaleAndFork(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	var c pdu.Name
	_, _ = rand.Read(c[:])
	w := capsule.NewWriter(c, key)
	fork := capsule.NewWriter(c, key)
	w.Append([]byte("a"))
	w.Append([]byte("b"))
	_, hb2 := w.Flush()
	w.Append([]byte("c"))
	_, hb3 := w.Flush()
	for _, d := range []string{"x", "y", "z"} {
		fork.Append([]byte(d))
	}
	_, forked := fork.Flush()

	r := &Reader{info: capsule.Info{Name: c, Writer: pub}}
	r.f = capsule.NewFollower(r.info)
	if err := r.observe(hb3, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.observe(hb2, nil); err != nil || !r.Stale() {
		t.Fatalf("an older heartbeat: %v, stale %v; want no error and stale", err, r.Stale())
	}
	if r.f.Heartbeat() != hb3 {
		t.Fatal("the older heartbeat replaced the newer")
	}
	m := &wire.Message{Op: wire.OpRead, Capsule: c[:], Heartbeat: forked.Marshal()}
	if _, err := r.verifyPage(m); !errors.Is(err, capsule.ErrEquivocation) {
		t.Fatalf("a page under a forked heartbeat of the same size: %v, want equivocation", err)
	}
}

// TestObserveCases: each case of observe, on heartbeats a writer signed.
// A newer heartbeat with its consistency proof is taken; the same size
// again (no proof needed) is no error and, with an older time, does not
// mark the reader stale; a proof that does not decode is a bad proof, not
// errProofBase (which makes a subscription re-synchronise); a newer
// heartbeat without a proof, or with one from another size, is
// errProofBase; a proof of the right sizes that fails is equivocation; a
// declared restart is followed. Mutants (docs/SECURITY.md §2.13):
// capsule_reader.go:442 skip-if and boundary (the proof present but
// ignored, an absent one decoded), :444 skip-if (an undecodable proof
// ignored), :454 boundary (an equal seqno marked stale), :458 skip-case
// (a restart refused), :462 skip-case (no errProofBase), :464 skip-case
// (a failed proof not called equivocation).
func TestObserveCases(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	var c pdu.Name
	_, _ = rand.Read(c[:])
	var now int64 = 1e18
	tick := func() time.Time { now += 1000; return time.Unix(0, now) }
	w := capsule.NewWriter(c, key)
	w.Now = tick
	fork := capsule.NewWriter(c, key)
	fork.Now = tick
	var tree, forkTree capsule.MemTree
	write := func(w *capsule.Writer, tree *capsule.MemTree, data ...string) *capsule.Heartbeat {
		for _, d := range data {
			tree.Append(w.Append([]byte(d)).Hash())
		}
		_, hb := w.Flush()
		return hb
	}
	proof := func(tree *capsule.MemTree, m, n uint64) []byte {
		path, err := capsule.ConsistencyPath(tree, m, n)
		if err != nil {
			t.Fatal(err)
		}
		return (&capsule.ConsistencyProof{Old: m, New: n, Path: path}).Marshal()
	}
	hb2 := write(w, &tree, "a", "b")
	head2 := w.Head()
	head2.Heartbeat = hb2
	hb3 := write(w, &tree, "c")
	hb3Later := write(w, &tree) // the same three entries, signed later
	hb5 := write(w, &tree, "d", "e")
	write(fork, &forkTree, "a", "b", "c")
	forked5 := write(fork, &forkTree, "x", "y") // a second log of five entries
	restart := capsule.RestartWriter(c, key, head2)
	restart.Now = tick
	_, branch3 := func() ([]capsule.Record, *capsule.Heartbeat) { restart.Append([]byte("z")); return restart.Flush() }()

	r := &Reader{info: capsule.Info{Name: c, Writer: pub}}
	r.f = capsule.NewFollower(r.info)
	held := func(want *capsule.Heartbeat, what string) {
		t.Helper()
		if r.f.Heartbeat() != want {
			t.Fatalf("%s: holding heartbeat %d (time %d), want %d (time %d)", what, r.f.Heartbeat().Seqno,
				r.f.Heartbeat().Time, want.Seqno, want.Time)
		}
	}
	if err := r.observe(hb2, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.observe(hb3, proof(&tree, 2, 3)); err != nil {
		t.Fatalf("a newer heartbeat with its proof: %v", err)
	}
	held(hb3, "a newer heartbeat with its proof")
	if err := r.observe(hb3Later, nil); err != nil {
		t.Fatalf("the same size signed later, no proof: %v", err)
	}
	held(hb3Later, "the same size signed later")
	if err := r.observe(hb3, nil); err != nil || r.Stale() {
		t.Fatalf("the same size signed earlier: %v, stale %v; want no error, not stale (it holds every entry)", err, r.Stale())
	}
	held(hb3Later, "the same size signed earlier")
	if err := r.observe(hb5, []byte{0xa1, 1, 2}); !errors.Is(err, capsule.ErrBadProof) || errors.Is(err, errProofBase) {
		t.Fatalf("a proof that does not decode: %v; want a bad proof, not errProofBase", err)
	}
	for _, tc := range []struct {
		name  string
		proof []byte
	}{{"no proof", nil}, {"a proof from another size", proof(&tree, 2, 5)}} {
		if err := r.observe(hb5, tc.proof); !errors.Is(err, errProofBase) {
			t.Fatalf("a newer heartbeat, %s: %v; want errProofBase", tc.name, err)
		}
	}
	held(hb3Later, "refused heartbeats")
	if err := r.observe(forked5, proof(&forkTree, 3, 5)); !errors.Is(err, capsule.ErrEquivocation) {
		// Another log of five entries (the same key): its proof from 3
		// does not start at the three entries held.
		t.Fatalf("a heartbeat of another log with its own proof: %v; want equivocation", err)
	}
	if err := r.observe(hb5, proof(&forkTree, 3, 5)); !errors.Is(err, capsule.ErrEquivocation) {
		t.Fatalf("a proof of the right sizes that fails: %v; want equivocation", err)
	}
	held(hb3Later, "a failed proof")
	if err := r.observe(branch3, nil); err != nil {
		t.Fatalf("a declared restart (epoch %d based at %d): %v", branch3.Epoch, branch3.Base, err)
	}
	held(branch3, "a declared restart")
}
