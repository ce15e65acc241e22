package gdplayer

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Writer writes datagrams to a pcap file as IPv4/UDP packets (link type
// RAW), which Wireshark, tcpdump and gopacket open. It is safe for
// concurrent use.
type Writer struct {
	mu sync.Mutex
	w  *pcapgo.Writer
	c  io.Closer
}

// NewWriter starts a pcap stream on w (closed by Close if it is an
// io.Closer).
func NewWriter(w io.Writer) (*Writer, error) {
	pw := pcapgo.NewWriter(w)
	if err := pw.WriteFileHeader(65535, layers.LinkTypeRaw); err != nil {
		return nil, err
	}
	out := &Writer{w: pw}
	if c, ok := w.(io.Closer); ok {
		out.c = c
	}
	return out, nil
}

// Write adds one UDP datagram sent from src to dst at t.
func (w *Writer) Write(t time.Time, src, dst netip.AddrPort, payload []byte) error {
	if !src.Addr().Is4() || !dst.Addr().Is4() {
		return errors.New("gdplayer: pcap writer takes IPv4 addresses")
	}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		return err
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		ip, udp, gopacket.Payload(payload)); err != nil {
		return err
	}
	b := buf.Bytes()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.WritePacket(gopacket.CaptureInfo{Timestamp: t, CaptureLength: len(b), Length: len(b)}, b)
}

// Close closes the underlying file.
func (w *Writer) Close() error {
	if w.c != nil {
		return w.c.Close()
	}
	return nil
}

// Packet is one decoded PDU of a capture.
type Packet struct {
	Time     time.Time
	Src, Dst netip.AddrPort
	GDP      *GDP
}

// Scan reads a pcap stream and calls fn for every UDP packet on Port that
// holds a PDU; packets that are not PDUs are skipped, a PDU that does not
// decode is an error naming the packet.
func Scan(r io.Reader, fn func(Packet) error) error {
	pr, err := pcapgo.NewReader(r)
	if err != nil {
		return fmt.Errorf("pcap: %w", err)
	}
	for i := 1; ; i++ {
		data, ci, err := pr.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("pcap packet %d: %w", i, err)
		}
		pkt := gopacket.NewPacket(data, pr.LinkType(), gopacket.Default)
		ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if ip == nil || udp == nil || (udp.DstPort != Port && udp.SrcPort != Port) {
			continue
		}
		g, _ := pkt.Layer(LayerTypeGDP).(*GDP)
		if g == nil {
			if el := pkt.ErrorLayer(); el != nil {
				return fmt.Errorf("pcap packet %d: %w", i, el.Error())
			}
			continue
		}
		s, _ := netip.AddrFromSlice(ip.SrcIP)
		d, _ := netip.AddrFromSlice(ip.DstIP)
		if err := fn(Packet{Time: ci.Timestamp, Src: netip.AddrPortFrom(s, uint16(udp.SrcPort)),
			Dst: netip.AddrPortFrom(d, uint16(udp.DstPort)), GDP: g}); err != nil {
			return err
		}
	}
}
