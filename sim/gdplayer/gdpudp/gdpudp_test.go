package gdpudp

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/sim/gdplayer"
)

// TestGopacketReads: a pcap gdplayer writes (by hand, without gopacket)
// is byte for byte what gopacket's pcapgo and layers write for the same
// datagram (file header, record header, IPv4 and UDP headers with their
// checksums); pcapgo reads it back, and with this package imported
// gopacket decodes the GDP layer from UDP port gdplayer.Port.
func TestGopacketReads(t *testing.T) {
	h := pdu.Header{Type: pdu.TypeData, TTL: 9, Sequence: 77, Dst: pdu.Name{1, 2}, Src: pdu.Name{3, 4}, Payload: []byte("hello")}
	b, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	a, z := netip.MustParseAddrPort("10.0.0.1:8079"), netip.MustParseAddrPort("10.0.3.2:8079")
	when := time.Unix(1700000000, 123456789)
	for _, payload := range [][]byte{b, b[:len(b)-1], []byte("odd"), {}} {
		var got bytes.Buffer
		w, err := gdplayer.NewWriter(&got)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(when, a, z, payload); err != nil {
			t.Fatal(err)
		}
		// The same datagram as gopacket writes it.
		var want bytes.Buffer
		pw := pcapgo.NewWriter(&want)
		if err := pw.WriteFileHeader(65535, layers.LinkTypeRaw); err != nil {
			t.Fatal(err)
		}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: a.Addr().AsSlice(), DstIP: z.Addr().AsSlice()}
		udp := &layers.UDP{SrcPort: layers.UDPPort(a.Port()), DstPort: layers.UDPPort(z.Port())}
		_ = udp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, udp, gopacket.Payload(payload)); err != nil {
			t.Fatal(err)
		}
		if err := pw.WritePacket(gopacket.CaptureInfo{Timestamp: when, CaptureLength: len(buf.Bytes()), Length: len(buf.Bytes())}, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("%d-byte payload: wrote\n%x\ngopacket writes\n%x", len(payload), got.Bytes(), want.Bytes())
		}
	}

	var f bytes.Buffer
	w, _ := gdplayer.NewWriter(&f)
	if err := w.Write(when, a, z, b); err != nil {
		t.Fatal(err)
	}
	pr, err := pcapgo.NewReader(bytes.NewReader(f.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	data, ci, err := pr.ReadPacketData()
	if err != nil || !ci.Timestamp.Equal(when.Truncate(time.Microsecond)) {
		t.Fatalf("pcapgo: %v at %v", err, ci.Timestamp)
	}
	pkt := gopacket.NewPacket(data, pr.LinkType(), gopacket.Default)
	g, ok := pkt.Layer(gdplayer.LayerTypeGDP).(*gdplayer.GDP)
	if !ok || string(g.LayerPayload()) != "hello" || g.Header.Sequence != 77 {
		t.Fatalf("gopacket did not decode the GDP layer: %v", pkt)
	}
}
