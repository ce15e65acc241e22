package detcbor

import (
	"bytes"
	"math"
	"testing"
)

// TestAppendHead checks the hand-written heads against the library's
// deterministic encoder at every length boundary, for an unsigned integer
// (major 0) and a byte-string length (major 2).
func TestAppendHead(t *testing.T) {
	for _, n := range []uint64{0, 23, 24, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64} {
		want, err := Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendHead(nil, 0, n); !bytes.Equal(got, want) {
			t.Errorf("AppendHead(0, %d) = %x, want %x", n, got, want)
		}
	}
	for _, n := range []int{0, 23, 24, 255, 256, 65535, 65536} {
		want, err := Marshal(make([]byte, n))
		if err != nil {
			t.Fatal(err)
		}
		got := AppendHead(nil, 2, uint64(n))
		if !bytes.Equal(got, want[:len(got)]) || len(want)-len(got) != n {
			t.Errorf("AppendHead(2, %d) = %x, want prefix %x", n, got, want[:min(len(want), 9)])
		}
	}
}
