package kv

import (
	"context"
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
	if err := ix.ApplyPage(m.page(t, 3, 6)); err != nil {
		t.Fatal(err)
	}
}
