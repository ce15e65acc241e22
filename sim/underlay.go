package sim

import (
	"fmt"
	"net/netip"

	"github.com/gdpnet/gdpnet/sim/linkem"
)

// nodeAddr is node i's underlay address: 10.x.y.z from i+1.
func nodeAddr(i int) netip.Addr {
	v := i + 1
	return netip.AddrFrom4([4]byte{10, byte(v >> 16), byte(v >> 8), byte(v)})
}

// underlay builds the emulated network of a validated topology.
func (t *Topology) underlay() (*linkem.Network, error) {
	n := linkem.NewNetwork(t.Seed)
	for i, nd := range t.Nodes {
		if _, err := n.AddNode(nd.Name, nodeAddr(i)); err != nil {
			n.Close()
			return nil, err
		}
	}
	for _, l := range t.Links {
		if _, err := n.AddLink(l.A, l.B, l.Config, l.Config); err != nil {
			n.Close()
			return nil, fmt.Errorf("link %s: %w", l.ID(), err)
		}
	}
	return n, nil
}
