package gdplayer

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"

	"github.com/gdpnet/gdpnet/pdu"
)

// TestWriteScan: a PDU written to a pcap decodes back through gopacket to
// the same header; a datagram on the GDP port that is no PDU is an error
// naming the packet; other UDP is skipped.
func TestWriteScan(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	h := pdu.Header{Type: pdu.TypeData, TTL: 9, Sequence: 77, Dst: pdu.Name{1, 2}, Src: pdu.Name{3, 4}, Payload: []byte("hello")}
	b, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddrPort("10.0.0.1:8079")
	z := netip.MustParseAddrPort("10.0.0.2:8079")
	now := time.Unix(1700000000, 123456000)
	if err := w.Write(now, a, z, b); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(now, netip.MustParseAddrPort("10.0.0.1:443"), netip.MustParseAddrPort("10.0.0.2:443"), []byte("quic")); err != nil {
		t.Fatal(err)
	}
	var got []Packet
	if err := Scan(bytes.NewReader(buf.Bytes()), func(p Packet) error { got = append(got, p); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("%d PDUs, want 1", len(got))
	}
	g := got[0].GDP.Header
	if g.Type != pdu.TypeData || g.TTL != 9 || g.Sequence != 77 || g.Dst != h.Dst || g.Src != h.Src || string(g.Payload) != "hello" ||
		got[0].Src != a || got[0].Dst != z || !got[0].Time.Equal(now) {
		t.Fatalf("decoded %+v from %v to %v", g, got[0].Src, got[0].Dst)
	}
	if s := got[0].GDP.String(); !strings.Contains(s, "DATA ttl 9 seq 77") {
		t.Fatalf("String %q", s)
	}
	// The layer decodes a PDU straight from gopacket (its UDP port is
	// registered by package gdpudp: TestGopacketReads).
	pkt := gopacket.NewPacket(b, LayerTypeGDP, gopacket.Default)
	if l, ok := pkt.Layer(LayerTypeGDP).(*GDP); !ok || string(l.LayerPayload()) != "hello" || len(l.LayerContents()) != h.HeaderSize() {
		t.Fatalf("gopacket did not decode the GDP layer: %v", pkt)
	}

	var bad bytes.Buffer
	w, _ = NewWriter(&bad)
	_ = w.Write(now, a, z, b[:len(b)-1])
	err = Scan(bytes.NewReader(bad.Bytes()), func(Packet) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "pcap packet 1") {
		t.Fatalf("a truncated PDU: %v", err)
	}
}
