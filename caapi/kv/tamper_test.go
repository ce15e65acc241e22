package kv

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestEveryTamperedPageRejected flips every bit position's byte of a page
// (each record, the heartbeat, the proof) in turn: ApplyPage refuses every
// one and leaves the index as it was; the untouched page then applies.
func TestEveryTamperedPageRejected(t *testing.T) {
	ctx := context.Background()
	m := newMemLog(t)
	w := newWriter(m, NewIndex(m.info), WriterOptions{CheckpointEvery: 3})
	for i := 0; i < 7; i++ {
		if _, err := w.Put(ctx, fmt.Sprintf("k%d", i%3), []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	m.flush()
	head := m.Seqno()
	ix := NewIndex(m.info)
	if err := ix.ApplyPage(m.page(t, 1, 3)); err != nil {
		t.Fatal(err)
	}
	good := m.page(t, 4, head)
	fields := map[string]*[]byte{"heartbeat": &good.Heartbeat, "proof": &good.Proof}
	for i := range good.Records {
		fields[fmt.Sprintf("record %d", i+4)] = &good.Records[i]
	}
	tried := 0
	for name, f := range fields {
		for i := range *f {
			for _, bit := range []byte{0x01, 0x80} {
				(*f)[i] ^= bit
				err := ix.ApplyPage(good)
				(*f)[i] ^= bit
				tried++
				if err == nil {
					t.Fatalf("%s byte %d ^ %#x: page accepted", name, i, bit)
				}
				if ix.Head() != 3 {
					t.Fatalf("%s byte %d: index moved to %d on a refused page", name, i, ix.Head())
				}
			}
		}
	}
	if err := ix.ApplyPage(good); err != nil {
		t.Fatalf("the untouched page: %v", err)
	}
	t.Logf("%d tampered pages refused", tried)
}

// TestPageMustContinueTheIndex: a verified page of the same log that does
// not follow the index's head (a replay, a skip) is refused.
func TestPageMustContinueTheIndex(t *testing.T) {
	ctx := context.Background()
	m := newMemLog(t)
	w := newWriter(m, NewIndex(m.info), WriterOptions{CheckpointEvery: -1})
	for i := 0; i < 6; i++ {
		if _, err := w.Put(ctx, "k", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	m.flush()
	ix := NewIndex(m.info)
	if err := ix.ApplyPage(m.page(t, 1, 2)); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]uint64{{1, 2}, {2, 3}, {4, 5}} {
		if err := ix.ApplyPage(m.page(t, r[0], r[1])); err == nil {
			t.Fatalf("page [%d, %d] after head 2 accepted", r[0], r[1])
		}
	}
	// Another capsule's valid page is refused too.
	other := newMemLog(t)
	ow := newWriter(other, NewIndex(other.info), WriterOptions{CheckpointEvery: -1})
	for i := 0; i < 3; i++ {
		if _, err := ow.Put(ctx, "k", []byte{9}); err != nil {
			t.Fatal(err)
		}
	}
	other.flush()
	if err := ix.ApplyPage(other.page(t, 3, 3)); err == nil {
		t.Fatal("another capsule's page accepted")
	}
	// A fork: the same writer key signed another log. Its page verifies
	// on its own (signature, chain, proof) but does not link to the entry
	// the index holds.
	fork := m.fork()
	fork.clock++
	fw := newWriter(fork, NewIndex(fork.info), WriterOptions{CheckpointEvery: -1})
	for i := 0; i < 6; i++ {
		if _, err := fw.Put(ctx, "k", []byte{byte(100 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	fork.flush()
	if err := ix.ApplyPage(fork.page(t, 3, 6)); !errors.Is(err, ErrChain) {
		t.Fatalf("a forked page: %v, want ErrChain", err)
	}
	if err := ix.ApplyPage(m.page(t, 3, 6)); err != nil {
		t.Fatal(err)
	}
}

// TestBadCheckpointRefused: a checkpoint the writer signed that does not
// match the log (a value changed, its digest recomputed to match) is
// refused by a reader that holds the log before it, and by a reader that
// started from it as soon as it reads the older log.
func TestBadCheckpointRefused(t *testing.T) {
	ctx := context.Background()
	m := newMemLog(t)
	w := newWriter(m, NewIndex(m.info), WriterOptions{CheckpointEvery: -1})
	for i := 0; i < 5; i++ {
		if _, err := w.Put(ctx, fmt.Sprintf("k%d", i), []byte("true")); err != nil {
			t.Fatal(err)
		}
	}
	// A lying checkpoint: k2 = "false".
	base := m.Seqno()
	d := newDigester()
	var ents []Entry
	for i := 0; i < 5; i++ {
		e := m.entries[i]
		v := []byte("true")
		if i == 2 {
			v = []byte("false")
		}
		ents = append(ents, Entry{Key: []byte(fmt.Sprintf("k%d", i)), Value: v, Seqno: e.Seqno, Time: uint64(e.Time)})
		d.add(ents[i].Key, v, e.Seqno, e.Time)
	}
	ck := &Op{Kind: OpCheckpoint, Base: base, BaseTime: uint64(m.entries[base-1].Time), Parts: 1, Digest: d.sum(), Entries: ents}
	b, err := ck.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.AppendRecord(ctx, b); err != nil {
		t.Fatal(err)
	}
	w.ckpt = base + 1
	if _, err := w.Put(ctx, "after", []byte("x")); err != nil {
		t.Fatal(err)
	}
	m.flush()

	full := NewIndex(m.info)
	if err := full.ApplyPage(m.page(t, 1, m.Seqno())); !errors.Is(err, ErrBadCheckpoint) {
		t.Fatalf("full replay: %v, want ErrBadCheckpoint", err)
	}
	st, err := openSource(ctx, &memSource{t: t, m: m}, Options{NoFollow: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.ix.Base() != base {
		t.Fatalf("started at base %d, want %d", st.ix.Base(), base)
	}
	if _, err := st.GetAt(ctx, "k2", AtSeqno(3)); !errors.Is(err, ErrBadCheckpoint) {
		t.Fatalf("read before the checkpoint: %v, want ErrBadCheckpoint", err)
	}
}
