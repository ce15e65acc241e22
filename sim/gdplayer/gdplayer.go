// Package gdplayer is a gopacket layer for gdpnet PDUs (docs/PROTOCOL.md
// §1), so pcaps the simulator writes — and any capture of plaintext PDUs
// in UDP — decode with github.com/google/gopacket like any other protocol:
//
//	pkt := gopacket.NewPacket(data, layers.LinkTypeRaw, gopacket.Default)
//	if l := pkt.Layer(gdplayer.LayerTypeGDP); l != nil {
//		g := l.(*gdplayer.GDP)
//		fmt.Println(g.Header.Type, g.Header.Src, g.Header.Dst)
//	}
//
// with the layer registered for UDP port Port, the port the simulator's
// PDU captures use, by importing package gdpudp:
//
//	import _ "github.com/gdpnet/gdpnet/sim/gdplayer/gdpudp"
//
// (The registration is a package of its own so that this one needs only
// gopacket's core, not its layers, whose tables — 7 MB filled at start
// — every `gdp` process would otherwise pay for, each of a hundred router
// processes in the simulator's netns mode among them.) Tunnels encrypt
// PDUs on the wire (QUIC or raw frames), so a capture of real traffic
// shows QUIC; the simulator captures PDUs where a router sends and
// receives them.
package gdplayer

import (
	"fmt"

	"github.com/google/gopacket"

	"github.com/gdpnet/gdpnet/pdu"
)

// Port is the UDP port PDU captures use (both ends).
const Port = 8079

// LayerTypeGDP is the gdpnet PDU layer.
var LayerTypeGDP = gopacket.RegisterLayerType(8009, gopacket.LayerTypeMetadata{
	Name: "GDP", Decoder: gopacket.DecodeFunc(decode)})

// GDP is one decoded PDU: its fixed header, options and payload.
type GDP struct {
	// Contents is the PDU's header (with options), Payload the rest.
	Contents, Payload []byte
	// Header is the decoded PDU; its Payload is the layer's Payload.
	Header pdu.Header
}

// LayerContents implements gopacket.Layer: the PDU's header.
func (g *GDP) LayerContents() []byte { return g.Contents }

// LayerPayload implements gopacket.Layer: the PDU's payload.
func (g *GDP) LayerPayload() []byte { return g.Payload }

// LayerType implements gopacket.Layer.
func (g *GDP) LayerType() gopacket.LayerType { return LayerTypeGDP }

// CanDecode implements gopacket.DecodingLayer.
func (g *GDP) CanDecode() gopacket.LayerClass { return LayerTypeGDP }

// NextLayerType implements gopacket.DecodingLayer: the payload is opaque
// to gopacket.
func (g *GDP) NextLayerType() gopacket.LayerType { return gopacket.LayerTypePayload }

// DecodeFromBytes implements gopacket.DecodingLayer with the strict PDU
// decoder; the header's slices alias data.
func (g *GDP) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if err := pdu.Decode(data, &g.Header); err != nil {
		df.SetTruncated()
		return fmt.Errorf("gdp: %w", err)
	}
	hl := g.Header.HeaderSize()
	g.Contents, g.Payload = data[:hl], data[hl:]
	return nil
}

// String is a one-line description, as tcpdump would print it.
func (g *GDP) String() string {
	h := &g.Header
	s := fmt.Sprintf("GDP %s ttl %d seq %d %s > %s len %d", h.Type, h.TTL, h.Sequence, short(h.Src), short(h.Dst), len(h.Payload))
	if h.Type == pdu.TypeNAK {
		s += " code " + h.Code.String()
	}
	return s
}

func short(n pdu.Name) string {
	s := n.String()
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func decode(data []byte, p gopacket.PacketBuilder) error {
	g := &GDP{}
	if err := g.DecodeFromBytes(data, p); err != nil {
		return err
	}
	p.AddLayer(g)
	return p.NextDecoder(g.NextLayerType())
}
