package tunnel

import "testing"

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
