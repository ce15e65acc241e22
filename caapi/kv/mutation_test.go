package kv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/capsule"
)

// The tests in this file each kill mutants of the KV index's checks that
// survived its other tests (docs/SECURITY.md §2.13).

// TestTimeTravelBounds: a reader that started from a checkpoint answers
// only for points it holds. A seqno beyond its head is ErrNotIndexed, not
// the head's state; the checkpoint's base itself is answered from the
// checkpoint (no older log read); a time before the base's is not
// "nothing existed yet": the store reads the older log and answers what
// the key was then, and the same for a list at a point before the base and
// for a key's whole history. Mutants: index.go Index.resolve :415 skip-if (a seqno
// beyond the head answered as the head), :418 boundary (the base refused),
// :426 skip-if (a time before the checkpoint answered "no such key"),
// Index.ListAt :462 skip-if (a seqno beyond the head listed as empty);
// store.go Store.ListAt :414 skip-if (a point before the checkpoint
// refused, not read), Store.History :429 skip-if (only the versions since
// the checkpoint).
func TestTimeTravelBounds(t *testing.T) {
	ctx := context.Background()
	m := newMemLog(t)
	w := newWriter(m, NewIndex(m.info), WriterOptions{CheckpointEvery: -1})
	times := map[uint64]time.Time{}
	put := func(k, v string) {
		m.clock += int64(time.Second)
		seq, err := w.Put(ctx, k, []byte(v))
		if err != nil {
			t.Fatal(err)
		}
		times[seq] = time.Unix(0, m.entries[seq-1].Time)
	}
	for i := range 20 {
		put(fmt.Sprintf("k%d", i%5), fmt.Sprint(i))
	}
	m.clock += int64(time.Second)
	if err := w.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	put("k0", "after")
	m.flush()
	src := &memSource{t: t, m: m, max: 1 << 20}
	st, err := openSource(ctx, src, Options{NoFollow: true})
	if err != nil {
		t.Fatal(err)
	}
	base, head := st.ix.Base(), st.ix.Head()
	if base != 20 {
		t.Fatalf("started at base %d, want the checkpoint's 20", base)
	}
	if v, err := st.ix.GetAt("k0", AtSeqno(head+1)); !errors.Is(err, ErrNotIndexed) {
		t.Fatalf("k0 at seqno %d, past the head %d: %q, %v; want ErrNotIndexed", head+1, head, v.Value, err)
	}
	if vs, err := st.ix.ListAt("k", AtSeqno(head+1)); !errors.Is(err, ErrNotIndexed) {
		t.Fatalf("the keys at seqno %d, past the head %d: %d, %v; want ErrNotIndexed", head+1, head, len(vs), err)
	}
	if v, err := st.ix.GetAt("k4", AtSeqno(base)); err != nil || string(v.Value) != "19" || v.Seqno != 20 {
		t.Fatalf("k4 at the checkpoint's base %d: %q (set at %d), %v; want 19 from the checkpoint", base, v.Value, v.Seqno, err)
	}
	if st.ix.Base() != base {
		t.Fatal("the base's state read the older log")
	}
	if v, err := st.GetAt(ctx, "k1", AtTime(times[7])); err != nil || string(v.Value) != "6" || v.At != 7 {
		t.Fatalf("k1 at the time of record 7, before the checkpoint: %q at %d, %v; want 6 at 7", v.Value, v.At, err)
	}
	if st.ix.Base() != 0 {
		t.Fatal("a time before the checkpoint answered without reading the older log")
	}
	// A list at a point before the checkpoint, and a key's history, read
	// the older log too: the answer is whole, not what the checkpoint holds.
	st, err = openSource(ctx, src, Options{NoFollow: true})
	if err != nil {
		t.Fatal(err)
	}
	if vs, err := st.ListAt(ctx, "k", AtSeqno(7)); err != nil || len(vs) != 5 || string(vs[1].Value) != "6" {
		t.Fatalf("the keys at seqno 7, before the checkpoint: %d, %v; want k0..k4, k1 = 6", len(vs), err)
	}
	st, err = openSource(ctx, src, Options{NoFollow: true})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := st.History(ctx, "k1"); err != nil || len(h) != 4 || string(h[0].Value) != "1" {
		t.Fatalf("k1's history: %d versions, %v; want its 4 puts from the first (1)", len(h), err)
	}
}

// TestCheckpointEntriesChecked: a checkpoint's entries are taken only
// when they hash to the digest it states and their keys ascend, each key
// once, across its parts too. Here the writer signs a checkpoint whose
// digest is that of the true state at its base while its entries say
// otherwise (k2 = "false"), and one in two parts, k0 k1 then k1 again and
// the rest (its digest computed over the entries as listed; each part in
// key order by itself, as the record codec checks): a reader that starts
// from it refuses it (ErrBadCheckpoint) and answers nothing from it, and
// so does one that replays the log. Mutants: index.go nextPart :356
// skip-if and call-true (entries that do not hash to the digest taken: a
// reader starting from the checkpoint answers k2 = "false"), :349 skip-if
// and boundary (a key in two parts taken: the later one answered).
func TestCheckpointEntriesChecked(t *testing.T) {
	for _, how := range []string{"entries not the digest's", "a key twice"} {
		t.Run(how, func(t *testing.T) {
			ctx := context.Background()
			m := newMemLog(t)
			w := newWriter(m, NewIndex(m.info), WriterOptions{CheckpointEvery: -1})
			for i := range 5 {
				if _, err := w.Put(ctx, fmt.Sprintf("k%d", i), []byte("true")); err != nil {
					t.Fatal(err)
				}
			}
			base := m.Seqno()
			truth, lie := newDigester(), newDigester()
			var ents []Entry
			for i := range 5 {
				e := m.entries[i]
				k, v := []byte(fmt.Sprintf("k%d", i)), []byte("true")
				truth.add(k, v, e.Seqno, e.Time)
				if i == 2 && how == "entries not the digest's" {
					v = []byte("false")
				}
				ents = append(ents, Entry{Key: k, Value: v, Seqno: e.Seqno, Time: uint64(e.Time)})
				if i == 1 && how == "a key twice" {
					ents = append(ents, Entry{Key: k, Value: []byte("twice"), Seqno: e.Seqno, Time: uint64(e.Time)})
				}
			}
			for _, en := range ents {
				lie.add(en.Key, en.Value, en.Seqno, int64(en.Time))
			}
			digest := truth.sum()
			if how == "a key twice" {
				digest = lie.sum()
			}
			// One part, or (a key twice) two: k0 k1, then k1 again and the
			// rest (each part in key order by itself).
			parts := [][]Entry{ents}
			if how == "a key twice" {
				parts = [][]Entry{ents[:2], ents[2:]}
			}
			for i, pe := range parts {
				ck := &Op{Kind: OpCheckpoint, Base: base, BaseTime: uint64(m.entries[base-1].Time), Part: uint64(i), Parts: uint64(len(parts)), Digest: digest, Entries: pe}
				b, err := ck.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := m.AppendRecord(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
			w.ckpt = base + 1
			if _, err := w.Put(ctx, "after", []byte("x")); err != nil {
				t.Fatal(err)
			}
			m.flush()
			st, err := openSource(ctx, &memSource{t: t, m: m, max: 1 << 20}, Options{NoFollow: true})
			if !errors.Is(err, ErrBadCheckpoint) {
				var got []byte
				if st != nil {
					for _, k := range []string{"k1", "k2"} {
						if v, err := st.Get(ctx, k); err == nil {
							got = append(got, fmt.Sprintf(" %s=%s", k, v.Value)...)
						}
					}
				}
				t.Fatalf("a reader starting from the checkpoint: %v (answers%s); want ErrBadCheckpoint", err, got)
			}
			full := NewIndex(m.info)
			if err := full.ApplyPage(m.page(t, 1, m.Seqno())); !errors.Is(err, ErrBadCheckpoint) {
				t.Fatalf("a reader replaying the log: %v, want ErrBadCheckpoint", err)
			}
		})
	}
}

// TestOpCheckRefuses: a record is a KV record only in its canonical form
// with the fields its kind needs and no others, within its bounds
// (PROTOCOL.md §10): each op here differs from a valid one in one field
// and is refused by UnmarshalOp (a reader drops it as not a KV record);
// keys and values of exactly MaxKey and MaxValue bytes are taken. Mutants:
// record.go Op.check :114 and :117 boundaries, :120 skip-if, :123 skip-if
// and both operands, :127 skip-if and both operands, :130 skip-if, both
// operands and boundary, :133 skip-if and boundary, :137 skip-if,
// drop-or-left, drop-or-right and its three boundaries.
func TestOpCheckRefuses(t *testing.T) {
	put := func() *Op { return &Op{Kind: OpPut, Key: []byte("k"), Value: []byte("v")} }
	ckpt := func() *Op {
		return &Op{Kind: OpCheckpoint, Base: 10, BaseTime: 1000, Parts: 2, Digest: make([]byte, 32),
			Entries: []Entry{{Key: []byte("a"), Value: []byte("1"), Seqno: 3, Time: 500}}}
	}
	big := func(n int) []byte { return bytes.Repeat([]byte{'x'}, n) }
	for _, tc := range []struct {
		name string
		op   func() *Op
		ok   bool
	}{
		{"a put", put, true},
		{"a checkpoint part", ckpt, true},
		{"a key of MaxKey bytes", func() *Op { o := put(); o.Key = big(MaxKey); return o }, true},
		{"a key of MaxKey+1 bytes", func() *Op { o := put(); o.Key = big(MaxKey + 1); return o }, false},
		{"a value of MaxValue bytes", func() *Op { o := put(); o.Value = big(MaxValue); return o }, true},
		{"a value of MaxValue+1 bytes", func() *Op { o := put(); o.Value = big(MaxValue + 1); return o }, false},
		{"a delete with a value", func() *Op { o := put(); o.Kind = OpDelete; return o }, false},
		{"a put with a base", func() *Op { o := put(); o.Base = 1; return o }, false},
		{"a put with entries", func() *Op { o := put(); o.Entries = ckpt().Entries; return o }, false},
		{"a checkpoint with a key", func() *Op { o := ckpt(); o.Key = []byte("k"); return o }, false},
		{"a checkpoint with a value", func() *Op { o := ckpt(); o.Value = []byte("v"); return o }, false},
		{"a checkpoint of no parts", func() *Op { o := ckpt(); o.Parts = 0; return o }, false},
		{"part 2 of 2", func() *Op { o := ckpt(); o.Part = 2; return o }, false},
		{"a 31-byte digest", func() *Op { o := ckpt(); o.Digest = o.Digest[:31]; return o }, false},
		{"a checkpoint naming one after its base", func() *Op { o := ckpt(); o.Ckpt = o.Base + 1; return o }, false},
		{"an entry key of MaxKey bytes", func() *Op { o := ckpt(); o.Entries[0].Key = big(MaxKey); return o }, true},
		{"an entry key of MaxKey+1 bytes", func() *Op { o := ckpt(); o.Entries[0].Key = big(MaxKey + 1); return o }, false},
		{"an entry value of MaxValue bytes", func() *Op { o := ckpt(); o.Entries[0].Value = big(MaxValue); return o }, true},
		{"an entry value of MaxValue+1 bytes", func() *Op { o := ckpt(); o.Entries[0].Value = big(MaxValue + 1); return o }, false},
		{"an entry of seqno 0", func() *Op { o := ckpt(); o.Entries[0].Seqno = 0; return o }, false},
		{"a base time of 1<<63-1", func() *Op { o := ckpt(); o.BaseTime = 1<<63 - 1; return o }, true},
		{"a base time of 1<<63 (no int64)", func() *Op { o := ckpt(); o.BaseTime = 1 << 63; return o }, false},
	} {
		b, err := codec.Marshal(tc.op()) // as a writer that skipped the checks would encode it
		if err != nil {
			t.Fatal(err)
		}
		if _, err := UnmarshalOp(b); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge)) {
			t.Errorf("%s: %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

// shortReads is a replica that answers the READ of entries [at, at+1]
// with the first one only (a short page, verified like any other).
type shortReads struct {
	*memSource
	at uint64
}

func (s shortReads) Read(ctx context.Context, from, to uint64) ([]capsule.Record, error) {
	recs, err := s.memSource.Read(ctx, from, to)
	if from == s.at && to == s.at+1 && len(recs) == 2 {
		recs = recs[:1]
	}
	return recs, err
}

// TestLoadCheckpointRefusesBadParts: a reader starts from a checkpoint of
// two parts only when it holds both, each a part of that checkpoint: the
// second missing (a replica answering the READ of both with a short
// page), of another checkpoint (another base time), or not a KV record,
// and opening fails with ErrBadCheckpoint, without a crash and without an
// index built from part of the state. Mutants: index.go
// Index.loadCheckpoint :525 skip-if (one part of two taken as the state),
// :520 skip-if (nil dereferenced), :511 skip-if (nil dereferenced).
func TestLoadCheckpointRefusesBadParts(t *testing.T) {
	for _, how := range []string{"a short READ", "a part of another checkpoint", "not a KV record"} {
		t.Run(how, func(t *testing.T) {
			ctx := context.Background()
			m := newMemLog(t)
			w := newWriter(m, NewIndex(m.info), WriterOptions{CheckpointEvery: -1})
			for i := range 4 {
				if _, err := w.Put(ctx, fmt.Sprintf("k%d", i), []byte("v")); err != nil {
					t.Fatal(err)
				}
			}
			base := m.Seqno()
			d := newDigester()
			var ents []Entry
			for i := range 4 {
				e := m.entries[i]
				ents = append(ents, Entry{Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte("v"), Seqno: e.Seqno, Time: uint64(e.Time)})
				d.add(ents[i].Key, ents[i].Value, e.Seqno, e.Time)
			}
			for i, pe := range [][]Entry{ents[:2], ents[2:]} {
				ck := &Op{Kind: OpCheckpoint, Base: base, BaseTime: uint64(m.entries[base-1].Time), Part: uint64(i), Parts: 2, Digest: d.sum(), Entries: pe}
				if i == 1 && how == "a part of another checkpoint" {
					ck.BaseTime++
				}
				b, err := ck.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				if i == 1 && how == "not a KV record" {
					b = []byte("not a KV record")
				}
				if _, err := m.AppendRecord(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
			w.ckpt = base + 1
			if _, err := w.Put(ctx, "after", []byte("x")); err != nil {
				t.Fatal(err)
			}
			m.flush()
			var src source = &memSource{t: t, m: m, max: 1 << 20}
			if how == "a short READ" {
				src = shortReads{&memSource{t: t, m: m, max: 1 << 20}, base + 1}
			}
			var st *Store
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("open: panic %v", r)
					}
				}()
				st, err = openSource(ctx, src, Options{NoFollow: true})
			}()
			if !errors.Is(err, ErrBadCheckpoint) {
				var base uint64
				if st != nil {
					base = st.ix.Base()
				}
				t.Fatalf("open: %v (started at base %d); want ErrBadCheckpoint", err, base)
			}
		})
	}
}

// emptyReads is a replica that answers the READ of entry at with no entry.
type emptyReads struct {
	*memSource
	at uint64
}

func (s emptyReads) Read(ctx context.Context, from, to uint64) ([]capsule.Record, error) {
	if from == s.at && to == s.at {
		return nil, nil
	}
	return s.memSource.Read(ctx, from, to)
}

// TestOpenWithoutACheckpointToStartFrom: opening reads what the newest
// record names, and never crashes on what it finds there. A capsule whose
// newest record is not a KV record (written by its writer, so verified)
// is read from the checkpoint the newest KV record below it names
// (Session 20: it was read whole); a replica that answers the READ of the named checkpoint
// with nothing, and a named checkpoint that is not a KV record, fail the
// open with ErrBadCheckpoint. Mutants: store.go Store.loadCheckpoint :182
// skip-if (the newest record's decode error ignored: nil dereferenced),
// :202 skip-if and drop-or-left (an empty answer indexed: a crash), :210
// skip-if and drop-or-left (the named record's decode error ignored: nil
// dereferenced).
func TestOpenWithoutACheckpointToStartFrom(t *testing.T) {
	for _, how := range []string{"the newest record not a KV record", "no answer for the checkpoint", "the checkpoint not a KV record"} {
		t.Run(how, func(t *testing.T) {
			ctx := context.Background()
			m := newMemLog(t)
			w := newWriter(m, NewIndex(m.info), WriterOptions{CheckpointEvery: -1})
			for i := range 4 {
				if _, err := w.Put(ctx, fmt.Sprintf("k%d", i), []byte("v")); err != nil {
					t.Fatal(err)
				}
			}
			if how == "the checkpoint not a KV record" {
				r, err := m.AppendRecord(ctx, []byte("not a KV record"))
				if err != nil {
					t.Fatal(err)
				}
				w.ckpt = r.Seqno
			} else if err := w.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
			first := m.Seqno()
			if _, err := w.Put(ctx, "after", []byte("x")); err != nil {
				t.Fatal(err)
			}
			if how == "the newest record not a KV record" {
				if _, err := m.AppendRecord(ctx, []byte("not a KV record")); err != nil {
					t.Fatal(err)
				}
			}
			m.flush()
			var src source = &memSource{t: t, m: m, max: 1 << 20}
			if how == "no answer for the checkpoint" {
				src = emptyReads{&memSource{t: t, m: m, max: 1 << 20}, first}
			}
			var st *Store
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("open: panic %v", r)
					}
				}()
				st, err = openSource(ctx, src, Options{NoFollow: true})
			}()
			if how == "the newest record not a KV record" {
				// Session 20: skipped; the open starts from the
				// checkpoint below it (it read the whole log before).
				if err != nil || st.ix.Base() != first-1 {
					t.Fatalf("open: %v, base %d; want the checkpoint's %d", err, st.ix.Base(), first-1)
				}
				if v, err := st.Get(ctx, "after"); err != nil || string(v.Value) != "x" {
					t.Fatalf("after: %q, %v", v.Value, err)
				}
				return
			}
			if !errors.Is(err, ErrBadCheckpoint) {
				t.Fatalf("open: %v; want ErrBadCheckpoint", err)
			}
		})
	}
}

// TestBadCheckpointFirstOfABatch: a lying checkpoint (k2 = "false", its
// digest over what it lists) that comes first in a batch a reader applies
// (entry 257: Refresh applies 256 at a time) fails the read with
// ErrBadCheckpoint, and does not crash the reader. Mutant:
// index.go Index.apply :191 boundary (the chain head set from entry -1).
func TestBadCheckpointFirstOfABatch(t *testing.T) {
	ctx := context.Background()
	m := newMemLog(t)
	w := newWriter(m, NewIndex(m.info), WriterOptions{CheckpointEvery: -1})
	for i := range 256 {
		if _, err := w.Put(ctx, fmt.Sprintf("k%d", i%5), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	base := m.Seqno()
	d := newDigester()
	var ents []Entry
	for i := range 5 {
		e := m.entries[int(base)-5+i]
		var o Op
		if err := codec.Unmarshal(e.Data, &o); err != nil {
			t.Fatal(err)
		}
		v := o.Value
		if string(o.Key) == "k2" {
			v = []byte("false")
		}
		ents = append(ents, Entry{Key: o.Key, Value: v, Seqno: e.Seqno, Time: uint64(e.Time)})
	}
	slices.SortFunc(ents, func(a, b Entry) int { return bytes.Compare(a.Key, b.Key) })
	for _, en := range ents {
		d.add(en.Key, en.Value, en.Seqno, int64(en.Time))
	}
	ck := &Op{Kind: OpCheckpoint, Base: base, BaseTime: uint64(m.entries[base-1].Time), Parts: 1, Digest: d.sum(), Entries: ents}
	b, err := ck.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.AppendRecord(ctx, b); err != nil {
		t.Fatal(err)
	}
	m.flush()
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("open: panic %v", r)
			}
		}()
		_, err = openSource(ctx, &memSource{t: t, m: m, max: 1 << 20}, Options{NoFollow: true, FullHistory: true})
	}()
	if !errors.Is(err, ErrBadCheckpoint) {
		t.Fatalf("open: %v; want ErrBadCheckpoint", err)
	}
}
