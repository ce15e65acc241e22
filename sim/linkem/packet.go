package linkem

import (
	"net/netip"
	"sync"
)

// packet is one datagram in flight. Payloads up to smallSize share a pool.
type packet struct {
	buf      []byte
	n        int
	src, dst netip.AddrPort
	pool     bool
}

const smallSize = 2048

var smallPool = sync.Pool{New: func() any { return &packet{buf: make([]byte, smallSize), pool: true} }}

func newPacket(b []byte, src, dst netip.AddrPort) *packet {
	var p *packet
	if len(b) <= smallSize {
		p = smallPool.Get().(*packet)
	} else {
		p = &packet{buf: make([]byte, len(b))}
	}
	p.n = copy(p.buf, b)
	p.src, p.dst = src, dst
	return p
}

func (p *packet) free() {
	if p.pool {
		smallPool.Put(p)
	}
}
