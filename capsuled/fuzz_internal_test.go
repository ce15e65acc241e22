package capsuled

import (
	"encoding/hex"
	"github.com/gdpnet/gdpnet/internal/fuzzseed"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/pdu"
)

// seedMessages adds the wire vectors to a fuzz corpus.
func seedMessages(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("wire", "testdata", "vectors.txt"))
	if err != nil {
		f.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if _, hx, ok := strings.Cut(line, " "); ok && !strings.HasPrefix(line, "#") {
			if v, err := hex.DecodeString(hx); err == nil {
				fuzzseed.Add(f, v)
			}
		}
	}
}

// FuzzRequestDecoding runs what the server does with a PDU payload before
// touching its store: decode the message, then the batch of an APPEND or
// of each SYNC segment, and the placement of a CREATE. Nothing may panic,
// and an accepted message re-encodes to the same bytes.
func FuzzRequestDecoding(f *testing.F) {
	seedMessages(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := wire.Unmarshal(b)
		if err != nil {
			return
		}
		if again, err := m.Marshal(); err != nil || string(again) != string(b) {
			t.Fatalf("round trip: %v", err)
		}
		_, _, _ = decodeBatch(m.Records, m.Heartbeat)
		for _, s := range m.Segments {
			_, _, _ = decodeBatch(s.Records, s.Heartbeat)
		}
		_, _ = parsePlacement(m, pdu.Name{0xaa}, true)
		_, _ = parsePlacement(m, pdu.Name{0xaa}, false)
	})
}
