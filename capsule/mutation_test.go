package capsule

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/gdpnet/gdpnet/pdu"
)

// The tests in this file each kill mutants that survived the rest of the
// package's tests (docs/SECURITY.md, "Mutation sweep").

// TestVerifyInclusionIndexInTree: a leaf index at or beyond the tree's size
// is refused, even where the path would check out: a one-leaf tree's root
// is its leaf's hash, so index 1 with an empty path gives that root too
// (mutants: the index check skipped, >= → >).
func TestVerifyInclusionIndexInTree(t *testing.T) {
	e := Hash{7}
	if err := VerifyInclusion(e, 0, 1, nil, LeafHash(e)); err != nil {
		t.Fatalf("leaf 0 of 1: %v", err)
	}
	if err := VerifyInclusion(e, 1, 1, nil, LeafHash(e)); !errors.Is(err, ErrBadProof) {
		t.Fatalf("leaf 1 of 1: got %v, want ErrBadProof", err)
	}
	if err := VerifyInclusion(e, 0, 1, make([]Hash, MaxProofLen+1), LeafHash(e)); !errors.Is(err, ErrBadProof) {
		t.Fatalf("path of MaxProofLen+1: %v", err)
	}
}

// TestVerifyConsistencyEdges: the cases RFC 9162's loop does not handle,
// each with its own refusal (mutants: each case skipped, either operand of
// its || dropped).
func TestVerifyConsistencyEdges(t *testing.T) {
	d := entries(4)
	var mt MemTree
	for _, h := range d {
		mt.Append(h)
	}
	r2, _ := RootAt(&mt, 2)
	r4, _ := RootAt(&mt, 4)
	p24, err := ConsistencyPath(&mt, 2, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyConsistency(2, 4, r2, r4, p24); err != nil {
		t.Fatalf("2 -> 4: %v", err)
	}
	tests := []struct {
		name       string
		m, n       uint64
		oldR, newR Hash
		path       []Hash
	}{
		{"old size above new", 4, 2, r4, r2, p24},
		{"empty tree with a path", 0, 4, EmptyRoot, r4, p24[:1]},
		{"empty tree with another root", 0, 4, r2, r4, nil},
		{"equal sizes, different roots", 4, 4, r2, r4, nil},
		{"equal sizes with a path", 4, 4, r4, r4, p24[:1]},
		{"growth with no path", 2, 4, r2, r4, nil},
		{"growth from 3 with no path", 3, 4, r2, r4, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						err = errors.New("panic")
					}
				}()
				err = VerifyConsistency(tt.m, tt.n, tt.oldR, tt.newR, tt.path)
			}()
			if !errors.Is(err, ErrBadProof) {
				t.Fatalf("got %v, want ErrBadProof", err)
			}
		})
	}
	if err := VerifyConsistency(0, 4, EmptyRoot, r4, nil); err != nil {
		t.Fatalf("the empty tree: %v", err)
	}
	if err := VerifyConsistency(4, 4, r4, r4, nil); err != nil {
		t.Fatalf("equal trees: %v", err)
	}
}

// TestVerifyRangeChecksSignatureAndInputs: VerifyRange checks the
// heartbeat's signature; no entries need nothing; entries without a
// heartbeat or proof are refused (mutants: the signature check's error
// ignored, each guard skipped, either nil check dropped).
func TestVerifyRangeChecksSignatureAndInputs(t *testing.T) {
	w := newTestWriter()
	writeN(w, 3)
	recs, hb := w.Flush()
	var mt MemTree
	for _, r := range recs {
		mt.Append(r.Hash())
	}
	path, err := InclusionPath(&mt, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	proof := &InclusionProof{Index: 2, Size: 3, Path: path}
	if err := VerifyRange(testInfo, hb, recs, proof, 0); err != nil {
		t.Fatal(err)
	}
	forged := *hb
	forged.Sig = append([]byte(nil), hb.Sig...)
	forged.Sig[0] ^= 1
	if err := VerifyRange(testInfo, &forged, recs, proof, 0); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("altered signature: %v", err)
	}
	for _, fn := range []func(Info, *Heartbeat, []Record, *InclusionProof, int) error{VerifyRange, VerifyRangeUnder} {
		if err := fn(testInfo, nil, nil, nil, 0); err != nil {
			t.Fatalf("no entries: %v", err)
		}
		if err := fn(testInfo, nil, recs, proof, 0); !errors.Is(err, ErrBadProof) {
			t.Fatalf("no heartbeat: %v", err)
		}
		if err := fn(testInfo, hb, recs, nil, 0); !errors.Is(err, ErrBadProof) {
			t.Fatalf("no proof: %v", err)
		}
	}
}

// TestVerifyChainOnItsOwn: VerifyChain checks names, the first entry's
// zero prev and non-decreasing times by itself (mutants: each check
// skipped, < → <=, IsZero forced true).
func TestVerifyChainOnItsOwn(t *testing.T) {
	w := newTestWriter()
	writeN(w, 3)
	recs, _ := w.Flush()
	if _, err := VerifyChain(testName, recs, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyChain(pdu.Name{9}, recs, 0); !errors.Is(err, ErrWrongCapsule) {
		t.Fatalf("another capsule's name: %v", err)
	}
	first := recs[0]
	first.Prev = Hash{1}
	if _, err := VerifyChain(testName, []Record{first}, 0); !errors.Is(err, ErrBrokenChain) {
		t.Fatalf("entry 1 with a prev: %v", err)
	}
	// Times: equal is fine, earlier is refused; a record rebuilt with its
	// own hash chain so only the time differs.
	mk := func(times ...int64) []Record {
		var out []Record
		var prev Hash
		for i, tm := range times {
			data := []byte{byte(i)}
			r := Record{Capsule: testName, Seqno: uint64(i + 1), Time: tm, Prev: prev, Data: data, DataHash: Hash(sha256.Sum256(data))}
			prev = r.Hash()
			out = append(out, r)
		}
		return out
	}
	if _, err := VerifyChain(testName, mk(5, 5, 6), 0); err != nil {
		t.Fatalf("equal times: %v", err)
	}
	if _, err := VerifyChain(testName, mk(5, 4), 0); !errors.Is(err, ErrBadTime) {
		t.Fatalf("time going back: %v", err)
	}
}

// TestRecordVerifyFields: seqno 0, a hole with a time, data hash or data, a
// negative time, data at and beyond the bound (mutants: each guard
// skipped, an || operand dropped, < → <=, > → >=).
func TestRecordVerifyFields(t *testing.T) {
	data := make([]byte, 100)
	good := Record{Capsule: testName, Seqno: 1, Time: 0, Data: data, DataHash: Hash(sha256.Sum256(data))}
	if _, err := good.Verify(100); err != nil {
		t.Fatalf("time 0, data at the bound: %v", err)
	}
	tests := []struct {
		name string
		r    func() Record
		max  int
		want error
	}{
		{"seqno 0", func() Record { r := good; r.Seqno = 0; return r }, 0, ErrMalformed},
		{"negative time", func() Record { r := good; r.Time = -1; return r }, 0, ErrMalformed},
		{"data over the bound", func() Record { return good }, 99, ErrTooLarge},
		{"hole with a time", func() Record { return Record{Capsule: testName, Seqno: 1, Hole: true, Time: 1} }, 0, ErrMalformed},
		{"hole with a data hash", func() Record { return Record{Capsule: testName, Seqno: 1, Hole: true, DataHash: Hash{1}} }, 0, ErrMalformed},
		{"hole with data", func() Record { return Record{Capsule: testName, Seqno: 1, Hole: true, Data: []byte{1}} }, 0, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.r().Verify(tt.max); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// TestHeartbeatFieldRules: each rule of Heartbeat.check, signed so only
// the rule can refuse it (mutants: each guard skipped, > → >= at MaxHoles,
// <= → < for ascending holes, an || operand dropped).
func TestHeartbeatFieldRules(t *testing.T) {
	w := newTestWriter()
	writeN(w, 3)
	_, base := w.Flush()
	holes := func(n int) []uint64 {
		out := make([]uint64, n)
		for i := range out {
			out[i] = uint64(i + 1)
		}
		return out
	}
	tests := []struct {
		name string
		mut  func(h *Heartbeat)
		want error
	}{
		{"valid", func(h *Heartbeat) {}, nil},
		{"MaxHoles holes", func(h *Heartbeat) { h.Seqno = MaxHoles; h.Holes = holes(MaxHoles) }, nil},
		{"MaxHoles+1 holes", func(h *Heartbeat) { h.Seqno = MaxHoles + 1; h.Holes = holes(MaxHoles + 1) }, ErrTooLarge},
		{"negative time", func(h *Heartbeat) { h.Time = -1 }, ErrMalformed},
		{"a hole twice", func(h *Heartbeat) { h.Holes = []uint64{2, 2} }, ErrMalformed},
		{"base above seqno", func(h *Heartbeat) { h.Epoch, h.Base = 1, 4 }, ErrMalformed},
		{"a base without an epoch", func(h *Heartbeat) { h.Base = 1 }, ErrMalformed},
		{"empty log with a root", func(h *Heartbeat) { h.Seqno, h.Holes = 0, nil }, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := *base
			tt.mut(&h)
			h.Sign(testKey)
			if err := h.Verify(testName, testInfo.Writer); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	short := *base
	if err := short.Verify(testName, testInfo.Writer[:31]); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("a 31-byte writer key: %v", err)
	}
}

// TestFollowerChecksSignatures: Advance, Adopt and Reset take no heartbeat
// the writer did not sign (mutants: each one's Verify error ignored).
func TestFollowerChecksSignatures(t *testing.T) {
	w := newTestWriter()
	writeN(w, 3)
	_, hb := w.Flush()
	forged := *hb
	forged.Sig = ed25519.Sign(ed25519.NewKeyFromSeed(make([]byte, 32)), sigInput(hb.Body()))
	f := NewFollower(testInfo)
	if err := f.Advance(&forged, nil); !errors.Is(err, ErrBadSignature) || f.Heartbeat() != nil {
		t.Fatalf("Advance: %v", err)
	}
	if err := f.Adopt(&forged); !errors.Is(err, ErrBadSignature) || f.Heartbeat() != nil {
		t.Fatalf("Adopt: %v", err)
	}
	if err := f.Reset(&forged); !errors.Is(err, ErrBadSignature) || f.Heartbeat() != nil {
		t.Fatalf("Reset: %v", err)
	}
}

// TestReceiptForAnotherHeartbeat: a server's receipt for one heartbeat does
// not vouch for another of the same seqno (a fork), nor for another
// capsule's (mutants: the digest comparison dropped, the capsule check
// skipped, the key length check dropped).
func TestReceiptForAnotherHeartbeat(t *testing.T) {
	w := newTestWriter()
	writeN(w, 3)
	_, hb := w.Flush()
	server := pdu.Name{5}
	skey := ed25519.NewKeyFromSeed(make([]byte, 32))
	spub := skey.Public().(ed25519.PublicKey)
	r := NewReceipt(hb, server, skey)
	if err := r.Verify(hb, server, spub); err != nil {
		t.Fatal(err)
	}
	fork := *hb
	fork.Root = Hash{1}
	fork.Sign(testKey)
	if err := r.Verify(&fork, server, spub); !errors.Is(err, ErrBadReceipt) {
		t.Fatalf("a fork of the same seqno: %v", err)
	}
	other := *hb
	other.Capsule = pdu.Name{8}
	other.Sign(testKey)
	r2 := NewReceipt(&other, server, skey)
	r2.Capsule = hb.Capsule // names this capsule, covers the other's heartbeat
	if err := r2.Verify(hb, server, spub); !errors.Is(err, ErrBadReceipt) {
		t.Fatalf("another capsule's heartbeat: %v", err)
	}
	if err := r.Verify(hb, server, spub[:31]); !errors.Is(err, ErrBadReceipt) {
		t.Fatalf("a 31-byte key: %v", err)
	}
}

// TestEvidenceChecksSignatures: evidence of equivocation whose heartbeats
// the writer did not both sign accuses no one (mutants: the signature
// check skipped, either nil check dropped).
func TestEvidenceChecksSignatures(t *testing.T) {
	e := testEvidence(t)
	if err := e.Verify(testInfo); err != nil {
		t.Fatal(err)
	}
	forged := *e
	b := *e.B
	b.Sig = ed25519.Sign(ed25519.NewKeyFromSeed(make([]byte, 32)), sigInput(b.Body()))
	forged.B = &b
	if err := forged.Verify(testInfo); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("B not signed by the writer: %v", err)
	}
	for _, mut := range []func(x *Evidence){func(x *Evidence) { x.A = nil }, func(x *Evidence) { x.B = nil }} {
		x := *e
		mut(&x)
		if err := x.Verify(testInfo); !errors.Is(err, ErrMalformed) {
			t.Fatalf("a missing heartbeat: %v", err)
		}
	}
}

// strictDecoder checks a decoder against its encoder on every truncation
// and every single-bit change of a good encoding: each is refused, or
// decodes to a value that encodes to exactly those bytes; none panics
// (mutants: each of the hand-written decoders' error checks skipped).
func strictDecoder(t *testing.T, name string, good []byte, decode func([]byte) ([]byte, error)) {
	t.Helper()
	try := func(b []byte) (out []byte, err error) {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("%s: panic on %x: %v", name, b, r)
			}
		}()
		return decode(b)
	}
	if out, err := try(good); err != nil || string(out) != string(good) {
		t.Fatalf("%s: the good encoding: %v", name, err)
	}
	for i := range good {
		if _, err := try(good[:i]); err == nil {
			t.Fatalf("%s: the first %d of %d bytes accepted", name, i, len(good))
		}
		for bit := range 8 {
			b := append([]byte(nil), good...)
			b[i] ^= 1 << bit
			if out, err := try(b); err == nil && string(out) != string(b) {
				t.Fatalf("%s: bit %d of byte %d changed: decodes to another encoding", name, bit, i)
			}
		}
	}
	if _, err := try(append(append([]byte(nil), good...), 0)); err == nil {
		t.Fatalf("%s: a trailing byte accepted", name)
	}
}

func TestDecodersStrict(t *testing.T) {
	w := newTestWriter()
	writeN(w, 3)
	w.Hole()
	writeN(w, 1)
	recs, hb := w.Flush()
	for _, r := range recs {
		strictDecoder(t, "record", r.Marshal(), func(b []byte) ([]byte, error) {
			r, err := UnmarshalRecord(b)
			return r.Marshal(), err
		})
	}
	strictDecoder(t, "heartbeat", hb.Marshal(), func(b []byte) ([]byte, error) {
		h, err := UnmarshalHeartbeat(b)
		if err != nil {
			return nil, err
		}
		return h.Marshal(), nil
	})
	rc := NewReceipt(hb, pdu.Name{5}, ed25519.NewKeyFromSeed(make([]byte, 32)))
	strictDecoder(t, "receipt", rc.Marshal(), func(b []byte) ([]byte, error) {
		r, err := UnmarshalReceipt(b)
		if err != nil {
			return nil, err
		}
		return r.Marshal(), nil
	})
	ev := testEvidence(t)
	strictDecoder(t, "evidence", ev.Marshal(), func(b []byte) ([]byte, error) {
		e, err := UnmarshalEvidence(b)
		if err != nil {
			return nil, err
		}
		return e.Marshal(), nil
	})
	var mt MemTree
	for _, r := range recs {
		mt.Append(r.Hash())
	}
	ip, _ := InclusionPath(&mt, 1, 5)
	strictDecoder(t, "inclusion proof", (&InclusionProof{Index: 1, Size: 5, Path: ip}).Marshal(), func(b []byte) ([]byte, error) {
		p, err := UnmarshalInclusionProof(b)
		if err != nil {
			return nil, err
		}
		return p.Marshal(), nil
	})
	cp, _ := ConsistencyPath(&mt, 3, 5)
	strictDecoder(t, "consistency proof", (&ConsistencyProof{Old: 3, New: 5, Path: cp}).Marshal(), func(b []byte) ([]byte, error) {
		p, err := UnmarshalConsistencyProof(b)
		if err != nil {
			return nil, err
		}
		return p.Marshal(), nil
	})
}

// TestFollowerSameSizeAndAdopt: a fresher heartbeat of the same log is
// taken, an older one is stale, the same one twice changes nothing, a proof
// for another size is no proof, Adopt reports equivocation and keeps the
// newest, a declared restart is a branch (mutants in Advance, sameSize and
// Adopt: guards skipped, operands dropped, comparisons moved by one).
func TestFollowerSameSizeAndAdopt(t *testing.T) {
	w := newTestWriter()
	var mt MemTree
	step := func(n int) *Heartbeat {
		writeN(w, n)
		recs, hb := w.Flush()
		for _, r := range recs {
			mt.Append(r.Hash())
		}
		return hb
	}
	resign := func(h *Heartbeat, mut func(*Heartbeat)) *Heartbeat {
		c := *h
		mut(&c)
		c.Sign(testKey)
		return &c
	}
	h3 := step(3)
	later := resign(h3, func(h *Heartbeat) { h.Time += 10 })
	f := NewFollower(testInfo)
	if err := f.Adopt(h3); err != nil || f.Heartbeat() != h3 {
		t.Fatalf("Adopt into an empty follower: %v", err)
	}
	if err := f.Adopt(h3); err != nil || f.Heartbeat() != h3 {
		t.Fatalf("Adopt of the same heartbeat: %v", err)
	}
	if err := f.Advance(h3, nil); err != nil {
		t.Fatalf("Advance with the held heartbeat: %v", err)
	}
	if err := f.Advance(later, nil); err != nil || f.Heartbeat() != later {
		t.Fatalf("a fresher heartbeat of the same log: %v", err)
	}
	if err := f.Advance(h3, nil); !errors.Is(err, ErrStale) || f.Heartbeat() != later {
		t.Fatalf("an older heartbeat of the same log: %v", err)
	}
	if err := f.Adopt(h3); err != nil || f.Heartbeat() != later {
		t.Fatalf("Adopt of an older heartbeat: %v, holding %d", err, f.Heartbeat().Time)
	}
	equal := resign(later, func(*Heartbeat) {})
	if err := f.Adopt(equal); err != nil || f.Heartbeat() != later {
		t.Fatalf("Adopt of an equal heartbeat replaced the held one: %v", err)
	}
	fork := resign(later, func(h *Heartbeat) { h.Root = Hash{1} })
	var eq *EquivocationError
	if err := f.Adopt(fork); !errors.As(err, &eq) || f.Heartbeat() != later {
		t.Fatalf("Adopt of a fork: %v", err)
	}
	h5 := step(2)
	p, err := ConsistencyPath(&mt, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Advance(h5, &ConsistencyProof{Old: 3, New: 4, Path: p}); !errors.Is(err, ErrNoConsistency) {
		t.Fatalf("a proof to another size: %v", err)
	}
	if err := f.Advance(h5, &ConsistencyProof{Old: 3, New: 5, Path: p}); err != nil {
		t.Fatal(err)
	}
	// A heartbeat of a new epoch based below the held size whose proof
	// fails is a declared branch; based at the held size it is a bad proof.
	for _, tc := range []struct {
		base uint64
		want error
	}{{3, ErrBranch}, {5, ErrBadProof}} {
		hb := resign(h5, func(h *Heartbeat) { h.Seqno, h.Epoch, h.Base, h.Root = 7, 1, tc.base, Hash{2} })
		if err := f.Advance(hb, &ConsistencyProof{Old: 5, New: 7, Path: []Hash{{3}}}); !errors.Is(err, tc.want) ||
			(tc.want == ErrBadProof && errors.Is(err, ErrBranch)) {
			t.Fatalf("epoch 1 based at %d: %v, want %v", tc.base, err, tc.want)
		}
	}
}

// TestEvidenceChecksBothProofs: each side's consistency proof is checked
// (mutant: side b's error ignored); a consistency proof whose old size is
// above its new one does not decode (mutant: that check skipped).
func TestEvidenceChecksBothProofs(t *testing.T) {
	for _, side := range []string{"a", "b"} {
		e := *testEvidence(t)
		bad := Hash{0xee}
		if side == "a" {
			e.RootA = bad
		} else {
			e.RootB = bad
		}
		if err := e.Verify(testInfo); !errors.Is(err, ErrBadProof) {
			t.Fatalf("side %s's prefix root altered: %v", side, err)
		}
	}
	if _, err := UnmarshalConsistencyProof((&ConsistencyProof{Old: 5, New: 3, Path: []Hash{}}).Marshal()); !errors.Is(err, ErrBadProof) && !errors.Is(err, ErrMalformed) {
		t.Fatalf("old size above new: %v", err)
	}
}
