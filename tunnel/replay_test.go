package tunnel

import (
	"testing"

	"github.com/gdpnet/gdpnet/internal/fuzzseed"
)

func TestReplayWindow(t *testing.T) {
	type step struct {
		ctr  uint64
		want bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"in order", []step{{0, true}, {1, true}, {2, true}}},
		{"duplicate", []step{{0, true}, {0, false}, {5, true}, {5, false}}},
		{"reordered within window", []step{{10, true}, {3, true}, {9, true}, {3, false}}},
		{"2048 behind is accepted", []step{{5000, true}, {5000 - 2048, true}, {5000 - 2048, false}}},
		{"edge of window", []step{{10000, true}, {10000 - replayWindowSize + 1, true}, {10000 - replayWindowSize, false}}},
		{"far jump clears old bits", []step{{1, true}, {1 + 64*replayWords*3, true}, {1 + 64*replayWords*3 - 64, true}, {1, false}}},
		{"slide reuses words", []step{{63, true}, {64 + replayBits, true}, {63 + replayBits, true}, {63 + replayBits, false}}},
		{"zero then far", []step{{0, true}, {4095, true}, {0, false}}},
		// in order past the ring's first lap: the next counter in top's
		// word must not clear the ring (it did: every replay accepted)
		{"in order after one lap", []step{{5000, true}, {5001, true}, {5000, false}}},
		{"next word keeps older words", []step{{5000, true}, {5100, true}, {5000, false}, {5099, true}, {5099, false}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var w replayWindow
			for i, s := range tc.steps {
				if got := w.commit(s.ctr); got != s.want {
					t.Fatalf("step %d: commit(%d) = %v, want %v", i, s.ctr, got, s.want)
				}
			}
		})
	}
}

func TestReplayWindowExhaustive(t *testing.T) {
	// every counter in a shuffled stream is accepted exactly once
	var w replayWindow
	const n = 20000
	seen := 0
	for base := uint64(0); base < n; base += 1000 {
		for i := uint64(999); ; i-- { // backwards inside each block of 1000
			if w.commit(base + i) {
				seen++
			}
			if w.commit(base + i) {
				t.Fatalf("counter %d accepted twice", base+i)
			}
			if i == 0 {
				break
			}
		}
	}
	if seen != n {
		t.Fatalf("accepted %d of %d", seen, n)
	}
}

// TestReplayWindowInOrderStream: a long in-order stream (the common case),
// every frame replayed right after the next one and once more a window
// later: each counter is accepted once, every replay inside the window is
// refused.
func TestReplayWindowInOrderStream(t *testing.T) {
	var w replayWindow
	const n = 3 * replayBits
	for c := uint64(0); c < n; c++ {
		if !w.commit(c) {
			t.Fatalf("fresh counter %d refused", c)
		}
		if c > 0 && w.commit(c-1) {
			t.Fatalf("counter %d accepted again after %d", c-1, c)
		}
		if c >= 1000 && w.commit(c-1000) {
			t.Fatalf("counter %d accepted again at %d", c-1000, c)
		}
	}
}

// replayModel is the slow reference: every counter accepted so far.
type replayModel struct {
	seen map[uint64]bool
	top  uint64
}

func (m *replayModel) commit(c uint64) bool {
	if m.seen[c] || (len(m.seen) > 0 && c < m.top && m.top-c >= replayWindowSize) {
		return false
	}
	m.seen[c] = true
	m.top = max(m.top, c)
	return true
}

// FuzzReplayWindow: the bitmap ring accepts exactly what the reference
// model does (a counter not seen before and not more than
// replayWindowSize behind the newest), for any stream of counters.
func FuzzReplayWindow(f *testing.F) {
	fuzzseed.Add(f, []byte{0, 1, 2, 3})
	fuzzseed.Add(f, []byte{200, 1, 1, 0x81, 0x40, 1})
	fuzzseed.Add(f, []byte{0xff, 0xff, 1, 0x80, 0x80})
	f.Fuzz(func(t *testing.T, script []byte) {
		// script: pairs (op, delta); op's top bit steps back, else forward
		var w replayWindow
		m := replayModel{seen: map[uint64]bool{}}
		c := uint64(1 << 20)
		for i := 0; i+2 <= len(script); i += 2 {
			d := uint64(script[i]&0x7f)<<8 | uint64(script[i+1])
			if script[i]&0x80 != 0 {
				c -= min(c, d)
			} else {
				c += d
			}
			want := m.commit(c)
			if got := w.commit(c); got != want {
				t.Fatalf("step %d: commit(%d) = %v, model %v (top %d)", i/2, c, got, want, m.top)
			}
		}
	})
}
