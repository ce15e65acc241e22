package gdplayer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/google/gopacket"
)

// The pcap format (the classic one Wireshark, tcpdump and gopacket's
// pcapgo read), written and read here directly: its file header and
// record headers, and the IPv4 and UDP headers of link type RAW, are a few
// fixed fields, and gopacket's pcapgo and layers packages would bring
// their tables into every `gdp` process (see the package comment).
const (
	pcapMagicMicro = 0xa1b2c3d4 // microsecond timestamps
	pcapMagicNano  = 0xa1b23c4d // nanosecond timestamps
	pcapSnaplen    = 65535
	// Link types (www.tcpdump.org/linktypes.html).
	linkEthernet = 1
	linkRaw      = 101 // an IPv4 or IPv6 packet, no link header
	linkIPv4     = 228
	// pcapMaxRecord bounds a record's length, as pcapgo does: a larger one
	// is a corrupt file, not a packet.
	pcapMaxRecord = 256 << 10
)

// Writer writes datagrams to a pcap file as IPv4/UDP packets (link type
// RAW), which Wireshark, tcpdump and gopacket open. It is safe for
// concurrent use.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
	c  io.Closer
}

// NewWriter starts a pcap stream on w (closed by Close if it is an
// io.Closer).
func NewWriter(w io.Writer) (*Writer, error) {
	var h [24]byte
	le := binary.LittleEndian
	le.PutUint32(h[0:], pcapMagicMicro)
	le.PutUint16(h[4:], 2) // version 2.4
	le.PutUint16(h[6:], 4)
	le.PutUint32(h[16:], pcapSnaplen)
	le.PutUint32(h[20:], linkRaw)
	if _, err := w.Write(h[:]); err != nil {
		return nil, err
	}
	out := &Writer{w: w}
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
	n := 20 + 8 + len(payload)
	if n > pcapSnaplen {
		return fmt.Errorf("gdplayer: a %d-byte datagram does not fit an IPv4 packet", len(payload))
	}
	b := make([]byte, 16+n)
	le, be := binary.LittleEndian, binary.BigEndian
	le.PutUint32(b[0:], uint32(t.Unix()))
	le.PutUint32(b[4:], uint32(t.Nanosecond()/1000))
	le.PutUint32(b[8:], uint32(n))
	le.PutUint32(b[12:], uint32(n))
	ip := b[16:36]
	ip[0] = 0x45 // version 4, 20-byte header
	be.PutUint16(ip[2:], uint16(n))
	ip[8], ip[9] = 64, 17 // TTL, UDP
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:], s4[:])
	copy(ip[16:], d4[:])
	be.PutUint16(ip[10:], ^fold(sum(ip, 0)))
	udp := b[36:]
	be.PutUint16(udp[0:], src.Port())
	be.PutUint16(udp[2:], dst.Port())
	be.PutUint16(udp[4:], uint16(8+len(payload)))
	copy(udp[8:], payload)
	// The checksum over the pseudo-header (addresses, protocol, length)
	// and the datagram; 0 is sent as 0xffff (RFC 768).
	pseudo := sum(ip[12:20], 17+uint32(8+len(payload)))
	c := ^fold(sum(udp, pseudo))
	if c == 0 {
		c = 0xffff
	}
	be.PutUint16(udp[6:], c)
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err := w.w.Write(b)
	return err
}

// sum adds b as big-endian 16-bit words to acc (the Internet checksum's
// one's-complement sum, folded by fold).
func sum(b []byte, acc uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		acc += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		acc += uint32(b[len(b)-1]) << 8
	}
	return acc
}

func fold(acc uint32) uint16 {
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
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

// Scan reads a pcap stream (link type RAW, IPv4 or Ethernet) and calls fn
// for every UDP packet on Port that holds a PDU, decoded by the gopacket
// layer (LayerTypeGDP); packets that are not IPv4/UDP on Port are skipped,
// a PDU that does not decode is an error naming the packet.
func Scan(r io.Reader, fn func(Packet) error) error {
	var h [24]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return fmt.Errorf("pcap: file header: %w", err)
	}
	var order binary.ByteOrder = binary.LittleEndian
	nano := false
	switch m := binary.LittleEndian.Uint32(h[:]); m {
	case pcapMagicMicro, pcapMagicNano:
		nano = m == pcapMagicNano
	default:
		order = binary.BigEndian
		switch binary.BigEndian.Uint32(h[:]) {
		case pcapMagicMicro:
		case pcapMagicNano:
			nano = true
		default:
			return fmt.Errorf("pcap: unknown magic %#x (not a pcap file; pcapng is not read)", m)
		}
	}
	link := order.Uint32(h[20:]) & 0x0fffffff // the top bits are FCS flags
	if link != linkRaw && link != linkIPv4 && link != linkEthernet {
		return fmt.Errorf("pcap: link type %d not read (RAW, IPv4 and Ethernet are)", link)
	}
	var rh [16]byte
	for i := 1; ; i++ {
		if _, err := io.ReadFull(r, rh[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("pcap packet %d: %w", i, err)
		}
		caplen := order.Uint32(rh[8:])
		if caplen > pcapMaxRecord {
			return fmt.Errorf("pcap packet %d: capture length %d over %d", i, caplen, pcapMaxRecord)
		}
		data := make([]byte, caplen)
		if _, err := io.ReadFull(r, data); err != nil {
			return fmt.Errorf("pcap packet %d: %w", i, err)
		}
		frac := int64(order.Uint32(rh[4:]))
		if !nano {
			frac *= 1000
		}
		ts := time.Unix(int64(order.Uint32(rh[0:])), frac)
		if link == linkEthernet {
			if len(data) < 14 || binary.BigEndian.Uint16(data[12:]) != 0x0800 {
				continue
			}
			data = data[14:]
		}
		src, dst, payload, ok := udp4(data)
		if !ok || (dst.Port() != Port && src.Port() != Port) {
			continue
		}
		pkt := gopacket.NewPacket(payload, LayerTypeGDP, gopacket.Default)
		g, _ := pkt.Layer(LayerTypeGDP).(*GDP)
		if g == nil {
			if el := pkt.ErrorLayer(); el != nil {
				return fmt.Errorf("pcap packet %d: %w", i, el.Error())
			}
			continue
		}
		if err := fn(Packet{Time: ts, Src: src, Dst: dst, GDP: g}); err != nil {
			return err
		}
	}
}

// udp4 is the addresses and payload of an unfragmented IPv4/UDP packet
// (ok false for anything else, or a packet cut short).
func udp4(b []byte) (src, dst netip.AddrPort, payload []byte, ok bool) {
	if len(b) < 20 || b[0]>>4 != 4 || b[9] != 17 {
		return src, dst, nil, false
	}
	hl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if hl < 20 || total < hl+8 || total > len(b) {
		return src, dst, nil, false
	}
	if binary.BigEndian.Uint16(b[6:])&0x3fff != 0 { // more fragments, or an offset
		return src, dst, nil, false
	}
	u := b[hl:total]
	ulen := int(binary.BigEndian.Uint16(u[4:]))
	if ulen < 8 || ulen > len(u) {
		return src, dst, nil, false
	}
	s := netip.AddrFrom4([4]byte(b[12:16]))
	d := netip.AddrFrom4([4]byte(b[16:20]))
	return netip.AddrPortFrom(s, binary.BigEndian.Uint16(u[0:])), netip.AddrPortFrom(d, binary.BigEndian.Uint16(u[2:])), u[8:ulen], true
}
