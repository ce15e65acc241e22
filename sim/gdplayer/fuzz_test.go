package gdplayer

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/internal/fuzzseed"
	"github.com/gdpnet/gdpnet/pdu"
)

// FuzzScan: a pcap file as the simulator's tools read it (pcap reader,
// gopacket's Ethernet/IP/UDP layers, the GDP layer). Any bytes give packets
// or an error, never a panic.
func FuzzScan(f *testing.F) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		f.Fatal(err)
	}
	h := pdu.Header{Type: pdu.TypeData, TTL: 9, Sequence: 77, Dst: pdu.Name{1, 2}, Src: pdu.Name{3, 4}, Payload: []byte("hello")}
	b, err := h.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	a, z := netip.MustParseAddrPort("10.0.0.1:8079"), netip.MustParseAddrPort("10.0.0.2:8079")
	if err := w.Write(time.Unix(1_700_000_000, 0), a, z, b); err != nil {
		f.Fatal(err)
	}
	if err := w.Write(time.Unix(1_700_000_001, 0), z, a, []byte("not a pdu")); err != nil {
		f.Fatal(err)
	}
	w.Close()
	fuzzseed.Add(f, buf.Bytes())
	f.Fuzz(func(t *testing.T, in []byte) {
		n := 0
		_ = Scan(bytes.NewReader(in), func(p Packet) error {
			n++
			return nil
		})
	})
}
