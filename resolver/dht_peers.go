package resolver

import (
	"sort"
	"time"

	"github.com/gdpnet/gdpnet/pdu"
)

// PeerView is one DHT peer as the dashboard shows it.
type PeerView struct {
	// ID is the libp2p peer ID.
	ID string `json:"id"`
	// Name and Domain are the member's, when it proved membership
	// (zero otherwise).
	Name   pdu.Name `json:"name"`
	Domain pdu.Name `json:"domain"`
	// Until is when its membership proof expires.
	Until time.Time `json:"until,omitempty"`
	// InTable: the peer is in the routing table now.
	InTable bool `json:"in_table"`
}

// Peers lists the node's routing table and the peers that proved
// membership, sorted by ID.
func (d *DHT) Peers() []PeerView {
	byID := map[string]*PeerView{}
	for _, p := range d.kad.RoutingTable().ListPeers() {
		byID[p.String()] = &PeerView{ID: p.String(), InTable: true}
	}
	d.gate.mu.Lock()
	for p, a := range d.gate.verified {
		v := byID[p.String()]
		if v == nil {
			v = &PeerView{ID: p.String()}
			byID[p.String()] = v
		}
		v.Name, v.Domain, v.Until = a.name, a.domain, a.until
	}
	d.gate.mu.Unlock()
	out := make([]PeerView, 0, len(byID))
	for _, v := range byID {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
