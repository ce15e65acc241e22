package capsule

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"
)

// fixedClock returns a clock that advances one millisecond a call.
func fixedClock() func() time.Time {
	t := time.Unix(1_700_000_000, 0)
	return func() time.Time { t = t.Add(time.Millisecond); return t }
}

func newTestWriter() *Writer {
	w := NewWriter(testName, testKey)
	w.Now = fixedClock()
	return w
}

func writeN(w *Writer, n int) {
	for i := 0; i < n; i++ {
		w.Append([]byte(fmt.Sprintf("record %d", w.Seqno()+1)))
	}
}

func applyOK(t *testing.T, h *Head, recs []Record, hb *Heartbeat) *Head {
	t.Helper()
	b, err := CheckBatch(testInfo, recs, hb, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, err := h.Apply(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &a.Head
}

func TestApply(t *testing.T) {
	w := newTestWriter()
	writeN(w, 3)
	w.Hole()
	writeN(w, 2)
	recs, hb := w.Flush()
	h := applyOK(t, &Head{}, recs, hb)
	if h.Seqno != 6 || h.Tree.Root() != hb.Root || h.Hash != w.Head().Hash {
		t.Fatalf("head %d", h.Seqno)
	}
	// A heartbeat-only extension that declares two holes.
	w.Hole()
	w.Hole()
	recs, hb = w.Flush()
	if len(recs) != 0 {
		t.Fatal("holes produce no records")
	}
	h = applyOK(t, h, recs, hb)
	if h.Seqno != 8 {
		t.Fatalf("head %d after holes", h.Seqno)
	}
	// A fresher heartbeat at the same seqno.
	_, hb = w.Flush()
	h = applyOK(t, h, nil, hb)
	if h.Heartbeat != hb {
		t.Fatal("fresher heartbeat not taken")
	}
}

func TestApplyRejects(t *testing.T) {
	base := newTestWriter()
	writeN(base, 4)
	recs0, hb0 := base.Flush()
	head := applyOK(t, &Head{}, recs0, hb0)
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))

	// Each case gets a fresh writer positioned at the head and builds its batch.
	tests := []struct {
		name  string
		build func(w *Writer) ([]Record, *Heartbeat)
		check bool // error expected from CheckBatch (else from Apply)
		want  error
	}{
		{"tampered data", func(w *Writer) ([]Record, *Heartbeat) {
			writeN(w, 2)
			r, hb := w.Flush()
			r[1].Data = []byte("evil")
			return r, hb
		}, true, ErrBadDataHash},
		{"tampered header", func(w *Writer) ([]Record, *Heartbeat) {
			writeN(w, 2)
			r, hb := w.Flush()
			r[1].Time++
			return r, hb
		}, false, ErrRootMismatch},
		{"wrong writer key", func(w *Writer) ([]Record, *Heartbeat) {
			writeN(w, 1)
			r, hb := w.Flush()
			hb.Sign(other)
			return r, hb
		}, true, ErrBadSignature},
		{"oversized record", func(w *Writer) ([]Record, *Heartbeat) {
			w.Append(make([]byte, DefaultMaxData+1))
			return w.Flush()
		}, true, ErrTooLarge},
		{"gap without hole", func(w *Writer) ([]Record, *Heartbeat) {
			writeN(w, 3)
			r, hb := w.Flush()
			return []Record{r[0], r[2]}, hb
		}, false, ErrGap},
		{"broken chain", func(w *Writer) ([]Record, *Heartbeat) {
			writeN(w, 2)
			r, hb := w.Flush()
			r[0].Prev[0] ^= 1
			return r, hb
		}, false, ErrBrokenChain},
		{"record in a declared hole", func(w *Writer) ([]Record, *Heartbeat) {
			writeN(w, 1)
			r, hb := w.Flush()
			hb.Holes = []uint64{r[0].Seqno}
			hb.Sign(testKey)
			return r, hb
		}, true, ErrMalformed},
		{"other capsule", func(w *Writer) ([]Record, *Heartbeat) {
			writeN(w, 1)
			r, hb := w.Flush()
			r[0].Capsule[0] ^= 1
			return r, hb
		}, true, ErrWrongCapsule},
		{"replayed older heartbeat", func(w *Writer) ([]Record, *Heartbeat) {
			return nil, hb0Older(t)
		}, false, ErrStale},
		{"no heartbeat", func(w *Writer) ([]Record, *Heartbeat) {
			writeN(w, 1)
			r, _ := w.Flush()
			return r, nil
		}, true, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := RestartWriter(testName, testKey, *head)
			w.epoch, w.base = 0, 0
			w.Now = fixedClock()
			w.prevT = hb0.Time
			w.last = head.Time
			recs, hb := tt.build(w)
			b, err := CheckBatch(testInfo, recs, hb, 0)
			if tt.check {
				if !errors.Is(err, tt.want) {
					t.Fatalf("CheckBatch: got %v, want %v", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("CheckBatch: %v", err)
			}
			if _, err := head.Apply(b, nil); !errors.Is(err, tt.want) {
				t.Fatalf("Apply: got %v, want %v", err, tt.want)
			}
		})
	}
}

// hb0Older is a validly signed heartbeat for an older state (seqno 2).
func hb0Older(t *testing.T) *Heartbeat {
	w := newTestWriter()
	writeN(w, 2)
	_, hb := w.Flush()
	return hb
}

func TestVerifyRange(t *testing.T) {
	w := newTestWriter()
	var mt MemTree
	var all []Record
	for i := 0; i < 40; i++ {
		if i%7 == 3 {
			s := w.Hole()
			all = append(all, NewHole(testName, s, all[len(all)-1].Hash()))
		} else {
			all = append(all, w.Append([]byte{byte(i)}))
		}
		mt.Append(all[len(all)-1].Hash())
	}
	_, hb := w.Flush()
	proofFor := func(last uint64) *InclusionProof {
		p, err := InclusionPath(&mt, last-1, hb.Seqno)
		if err != nil {
			t.Fatal(err)
		}
		return &InclusionProof{Index: last - 1, Size: hb.Seqno, Path: p}
	}
	// VerifyRangeUnder (the heartbeat's signature checked by the caller)
	// makes every other check VerifyRange makes.
	for _, verify := range []func(Info, *Heartbeat, []Record, *InclusionProof, int) error{VerifyRange, VerifyRangeUnder} {
		for _, r := range [][2]int{{1, 40}, {5, 9}, {4, 4}, {39, 40}} {
			got := all[r[0]-1 : r[1]]
			if err := verify(testInfo, hb, got, proofFor(uint64(r[1])), 0); err != nil {
				t.Fatalf("range %v: %v", r, err)
			}
		}
		tamper := func(f func(e []Record)) error {
			e := append([]Record(nil), all[9:20]...)
			f(e)
			return verify(testInfo, hb, e, proofFor(20), 0)
		}
		if err := tamper(func(e []Record) { e[3].Data = []byte("x") }); !errors.Is(err, ErrBadDataHash) {
			t.Fatalf("tampered data: %v", err)
		}
		if err := tamper(func(e []Record) { e[3] = NewRecord(testName, e[3].Seqno, e[3].Time, e[3].Prev, []byte("x")) }); !errors.Is(err, ErrBrokenChain) {
			t.Fatalf("substituted record: %v", err)
		}
		if err := tamper(func(e []Record) { e[10] = NewRecord(testName, 20, e[10].Time, e[10].Prev, []byte("x")) }); !errors.Is(err, ErrBadProof) {
			t.Fatalf("substituted last record: %v", err)
		}
		if err := verify(testInfo, hb, all[9:20], proofFor(21), 0); !errors.Is(err, ErrBadProof) {
			t.Fatalf("proof for another leaf: %v", err)
		}
		if err := verify(testInfo, hb, append(append([]Record(nil), all[9:12]...), all[13:20]...), proofFor(20), 0); !errors.Is(err, ErrGap) {
			t.Fatalf("missing entry: %v", err)
		}
	}
	other := *hb
	other.Capsule[0] ^= 1
	if err := VerifyRangeUnder(testInfo, &other, all[9:20], proofFor(20), 0); !errors.Is(err, ErrWrongCapsule) {
		t.Fatalf("another capsule's heartbeat: %v", err)
	}
}

func TestEvidence(t *testing.T) {
	// The writer signs two different continuations of one log (same epoch).
	w := newTestWriter()
	writeN(w, 5)
	var a, b MemTree
	for _, r := range w.pending {
		a.Append(r.Hash())
		b.Append(r.Hash())
	}
	fork := *w
	fork.tree = *w.tree.Clone()
	fork.pending = append([]Record(nil), w.pending...)
	for _, r := range []*Writer{w, &fork} {
		mt := &a
		if r == &fork {
			mt = &b
		}
		for i := 0; i < 4; i++ {
			rec := r.Append([]byte(fmt.Sprintf("%p %d", r, i)))
			mt.Append(rec.Hash())
		}
	}
	_, hbA := w.Flush()
	fork.Append([]byte("longer"))
	b.Append(fork.pending[len(fork.pending)-1].Hash())
	_, hbB := fork.Flush()
	ev, err := NewEvidence(hbA, hbB, 6, &a, &b)
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.Verify(testInfo); err != nil {
		t.Fatalf("evidence does not verify: %v", err)
	}
	back, err := UnmarshalEvidence(ev.Marshal())
	if err != nil || back.Verify(testInfo) != nil || !bytes.Equal(back.Marshal(), ev.Marshal()) {
		t.Fatalf("evidence round trip: %v", err)
	}
	// At size 5 the logs agree: no evidence there.
	if e5, _ := NewEvidence(hbA, hbB, 5, &a, &b); e5.Verify(testInfo) == nil {
		t.Fatal("agreeing prefix accepted as evidence")
	}
	// A declared restart at base 5 explains the difference.
	hbR := *hbB
	hbR.Epoch, hbR.Base = 1, 5
	hbR.Sign(testKey)
	if eR, _ := NewEvidence(hbA, &hbR, 6, &a, &b); eR.Verify(testInfo) == nil {
		t.Fatal("abandoned branch accepted as equivocation")
	}
	// But not below the base.
	hbR.Base = 7
	hbR.Sign(testKey)
	if eR, _ := NewEvidence(hbA, &hbR, 6, &a, &b); eR.Verify(testInfo) != nil {
		t.Fatal("rewrite below the base not caught")
	}
	ev.RootA[0] ^= 1
	if ev.Verify(testInfo) == nil {
		t.Fatal("tampered evidence verified")
	}
}
