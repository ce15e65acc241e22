package wire

import (
	"bytes"
	"github.com/gdpnet/gdpnet/internal/fuzzseed"
	"testing"
)

// FuzzUnmarshal: no input panics the decoder, and whatever it accepts
// re-encodes to exactly the same bytes.
func FuzzUnmarshal(f *testing.F) {
	for _, v := range readVectors(f) {
		fuzzseed.Add(f, v)
	}
	fuzzseed.Add(f, []byte{0xa0})
	fuzzseed.Add(f, []byte{0xa2, 0x01, 0x02, 0x02, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Unmarshal(b)
		if err != nil {
			return
		}
		again, err := m.Marshal()
		if err != nil {
			t.Fatalf("accepted message does not re-encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip changed the bytes:\n in %x\nout %x", b, again)
		}
	})
}
