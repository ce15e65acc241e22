package router

import (
	"encoding/binary"
	"testing"
)

// TestDedupFlowSharesCacheLines: the PDUs of one flow whose sequences
// differ only in their low 3 bits take the 8 slots of one 64-byte line (a
// sequential flow misses the cache once per 8 PDUs), while every PDU is
// still remembered on its own: a repeat within the window is caught, a
// neighbour is not mistaken for it, and the window still expires.
func TestDedupFlowSharesCacheLines(t *testing.T) {
	d := newDedup(1<<16, 5)
	pdu := func(src byte, seq uint32) []byte {
		b := make([]byte, 64)
		b[2] = 1
		binary.BigEndian.PutUint32(b[8:12], seq)
		b[12], b[44] = 9, src
		return b
	}
	lines := map[uint64]bool{}
	for seq := uint32(0); seq < 64; seq++ {
		i, _ := d.locate(pdu(1, seq))
		if want, _ := d.locate(pdu(1, seq&^7)); i/dedupLine != want/dedupLine || i%dedupLine != uint64(seq%dedupLine) {
			t.Fatalf("seq %d in slot %d, want slot %d of line %d", seq, i, seq%dedupLine, want/dedupLine)
		}
		lines[i/dedupLine] = true
	}
	if len(lines) != 8 {
		t.Fatalf("64 sequential PDUs of a flow spread over %d lines, want 8", len(lines))
	}
	for seq := uint32(0); seq < 64; seq++ {
		if d.seen(pdu(1, seq), 100) {
			t.Fatalf("seq %d reported as a repeat the first time", seq)
		}
	}
	for seq := uint32(0); seq < 64; seq++ {
		if !d.seen(pdu(1, seq), 101) {
			t.Fatalf("repeat of seq %d not caught", seq)
		}
		if d.seen(pdu(2, seq), 101) {
			t.Fatalf("seq %d of another source taken for a repeat", seq)
		}
	}
	if d.seen(pdu(1, 3), 110) {
		t.Fatal("a repeat after the window was dropped")
	}
}
