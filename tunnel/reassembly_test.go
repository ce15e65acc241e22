package tunnel

import (
	"bytes"
	"testing"
	"time"
)

// fragment splits p as a sender with chunk-sized fragments does.
func fragment(p []byte, chunk int) (frags [][]byte, flags []byte) {
	n := (len(p) + chunk - 1) / chunk
	for i := 0; i < n; i++ {
		frags = append(frags, p[i*chunk:min((i+1)*chunk, len(p))])
		f := byte(i)
		if i < n-1 {
			f |= fragMore
		}
		flags = append(flags, f)
	}
	return frags, flags
}

func TestReassembler(t *testing.T) {
	const chunk = 100
	now := time.Now()
	tests := []struct {
		name     string
		feed     func(r *reassembler) []byte // returns the PDU completed last
		want     []byte
		wantDrop DropReason
	}{
		{"in order", func(r *reassembler) []byte {
			return feedAll(r, 1, pattern(250, 1), []int{0, 1, 2}, now)
		}, pattern(250, 1), numDropReasons},
		{"reversed", func(r *reassembler) []byte {
			return feedAll(r, 1, pattern(300, 2), []int{2, 1, 0}, now)
		}, pattern(300, 2), numDropReasons},
		{"short middle fragment", func(r *reassembler) []byte {
			p, _ := r.add(1, fragMore|1, make([]byte, 99), now)
			return p
		}, nil, DropBadFragment},
		{"oversized last", func(r *reassembler) []byte {
			p, _ := r.add(1, 1, make([]byte, 101), now)
			return p
		}, nil, DropBadFragment},
		{"two last fragments", func(r *reassembler) []byte {
			r.add(1, 2, make([]byte, 10), now)
			p, _ := r.add(1, 3, make([]byte, 10), now)
			return p
		}, nil, DropBadFragment},
		{"fragment past the last", func(r *reassembler) []byte {
			r.add(1, 1, make([]byte, 10), now)
			p, _ := r.add(1, fragMore|5, make([]byte, chunk), now)
			return p
		}, nil, DropBadFragment},
		{"duplicate", func(r *reassembler) []byte {
			r.add(1, fragMore, make([]byte, chunk), now)
			p, _ := r.add(1, fragMore, make([]byte, chunk), now)
			return p
		}, nil, DropBadFragment},
		{"beyond MaxPDU", func(r *reassembler) []byte {
			r.chunk = 600 // 127 × 600 > MaxPDU
			p, _ := r.add(1, 127, make([]byte, 600), now)
			return p
		}, nil, DropBadFragment},
		{"timed out", func(r *reassembler) []byte {
			r.add(1, fragMore, make([]byte, chunk), now)
			p, _ := r.add(2, fragMore, make([]byte, chunk), now.Add(3*time.Second))
			return p
		}, nil, DropReassemblyTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c counters
			r := newReassembler(chunk, 4, 2*time.Second, &c)
			got := tc.feed(r)
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(tc.want))
			}
			if tc.wantDrop < numDropReasons && c.drops[tc.wantDrop].Load() == 0 {
				t.Fatalf("no %v drop counted", tc.wantDrop)
			}
		})
	}
}

func feedAll(r *reassembler, id uint16, p []byte, order []int, now time.Time) []byte {
	frags, flags := fragment(p, r.chunk)
	var out []byte
	for _, i := range order {
		if got, slot := r.add(id, flags[i], frags[i], now); got != nil {
			out = append([]byte(nil), got...)
			slot.release()
		}
	}
	return out
}

func TestReassemblerBounded(t *testing.T) {
	var c counters
	r := newReassembler(1000, 8, time.Second, &c)
	now := time.Now()
	for i := 0; i < 10000; i++ {
		r.add(uint16(i), fragMore, make([]byte, 1000), now)
		if r.pending() > 8 {
			t.Fatalf("%d pending", r.pending())
		}
	}
	if ev := c.drops[DropReassemblyEvicted].Load(); ev != 10000-8 {
		t.Fatalf("%d evictions", ev)
	}
	// a complete packet still passes
	if got := feedAll(r, 9, pattern(2500, 9), []int{0, 1, 2}, now); !bytes.Equal(got, pattern(2500, 9)) {
		t.Fatal("reassembly failed after the flood")
	}
	r.reset()
	if r.pending() != 0 {
		t.Fatal("reset kept packets")
	}
}

// pending is how many incomplete PDUs are held (tests).
func (r *reassembler) pending() int {
	n := 0
	for i := range r.slots {
		if r.slots[i].used {
			n++
		}
	}
	return n
}

// reset drops everything held.
func (r *reassembler) reset() {
	for i := range r.slots {
		r.slots[i].release()
	}
}
