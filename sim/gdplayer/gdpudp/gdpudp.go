// Package gdpudp registers the gdpnet PDU layer (package gdplayer) with
// gopacket's layers for UDP port gdplayer.Port, the port of the
// simulator's PDU captures, so that gopacket decodes such a datagram's
// payload as LayerTypeGDP:
//
//	import _ "github.com/gdpnet/gdpnet/sim/gdplayer/gdpudp"
//
//	pkt := gopacket.NewPacket(data, layers.LinkTypeRaw, gopacket.Default)
//	g, _ := pkt.Layer(gdplayer.LayerTypeGDP).(*gdplayer.GDP)
//
// It is a package of its own because gopacket's layers fill 7 MB of
// tables when a program starts; the `gdp` binary does not import it.
package gdpudp

import (
	"github.com/google/gopacket/layers"

	"github.com/gdpnet/gdpnet/sim/gdplayer"
)

func init() {
	layers.RegisterUDPPortLayerType(layers.UDPPort(gdplayer.Port), gdplayer.LayerTypeGDP)
}
