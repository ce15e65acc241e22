package kv

import (
	"bytes"
	"errors"
	"github.com/gdpnet/gdpnet/internal/fuzzseed"
	"testing"
)

// FuzzUnmarshalOp: no input panics the decoder, and what it accepts
// re-encodes to the same bytes (one byte form per record).
func FuzzUnmarshalOp(f *testing.F) {
	fuzzseed.Add(f, []byte{0xa2, 0x01, 0x02, 0x02, 0x41, 'k'})
	fuzzseed.Add(f, []byte{0xa1, 0x01, 0x03})
	// The PROTOCOL §10 vectors.
	for _, b := range readVectors(f) {
		fuzzseed.Add(f, b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := UnmarshalOp(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		again, err := o.Marshal()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted %x re-encodes to %x (%v)", b, again, err)
		}
	})
}

// TestBadWritesRefused: an empty or oversized key, an oversized value: a
// clear error, nothing appended; a record that is not a KV record is
// skipped and counted by readers, never indexed.
func TestBadWritesRefused(t *testing.T) {
	ctx := t.Context()
	m := newMemLog(t)
	w := newWriter(m, NewIndex(m.info), WriterOptions{CheckpointEvery: -1})
	if _, err := w.Put(ctx, "", []byte("v")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty key: %v", err)
	}
	if _, err := w.Put(ctx, string(make([]byte, MaxKey+1)), nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("long key: %v", err)
	}
	if _, err := w.Put(ctx, "k", make([]byte, MaxValue+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("large value: %v", err)
	}
	if m.Seqno() != 0 {
		t.Fatalf("refused writes appended %d records", m.Seqno())
	}
	if _, err := m.AppendRecord(ctx, []byte("not a kv record")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	m.flush()
	ix := NewIndex(m.info)
	if err := ix.ApplyPage(m.page(t, 1, 2)); err != nil {
		t.Fatal(err)
	}
	if ix.Dropped() != 1 {
		t.Fatalf("dropped %d, want 1", ix.Dropped())
	}
	if v, err := ix.GetAt("k", Latest); err != nil || string(v.Value) != "v" {
		t.Fatalf("get: %q, %v", v.Value, err)
	}
}
