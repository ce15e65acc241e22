package linkem

import (
	"errors"
	"fmt"
	"net/netip"
)

// DeliverFunc receives a datagram that reached its destination node where
// no socket of this Network listens on its address: the netns mode hands
// it to the destination's real network namespace. It must not keep
// payload.
type DeliverFunc func(src, dst netip.AddrPort, payload []byte)

// SetDeliver sets (nil: clears) where datagrams with no listening socket
// go; without it they are counted as NoListener and dropped.
func (n *Network) SetDeliver(f DeliverFunc) {
	if f == nil {
		n.ext.Store(nil)
		return
	}
	n.ext.Store(&f)
}

// ErrUnknownSource is returned by Inject for a source address that is no
// node's.
var ErrUnknownSource = errors.New("linkem: source is no node's address")

// Inject starts a datagram from src to dst as if a socket at src had sent
// it: it crosses the links of the path with their shaping, taps and
// counters, then reaches a socket at dst or the DeliverFunc. The netns
// mode injects what a namespace sent on its veth. Like UDP, a datagram the
// network then loses is no error.
func (n *Network) Inject(src, dst netip.AddrPort, b []byte) error {
	if len(b) > MaxMTU {
		return fmt.Errorf("linkem: inject: datagram of %d bytes is over %d", len(b), MaxMTU)
	}
	n.mu.RLock()
	from, closed := n.byAddr[src.Addr()], n.closed
	n.mu.RUnlock()
	if closed {
		return errors.New("linkem: inject: network closed")
	}
	if from == nil {
		return ErrUnknownSource
	}
	return n.send(src, dst, b)
}
