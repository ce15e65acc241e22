package router

import (
	"encoding/binary"

	"github.com/gdpnet/gdpnet/pdu"
)

// HandlePDU is the router's tunnel handler: it processes one PDU that
// arrived on link l. p is valid only during the call; the router may modify
// it in place (the TTL byte) and never keeps it without copying.
func (r *Router) HandlePDU(l Link, p []byte) {
	f := r.faceFor(l)
	if f == nil {
		// A PDU can beat Serve to a freshly accepted link.
		var err error
		if f, err = r.adopt(l); err != nil {
			r.drop(nil, dropUnknownFace)
			return
		}
	}
	r.receive(f, p)
}

// receive runs the forwarding pipeline for one PDU from face in (PROTOCOL.md
// §1): rate limit, size, decode, control, source check, TTL, duplicate
// suppression, then route.
func (r *Router) receive(in *Face, p []byte) {
	in.rxPDUs.Add(1)
	r.met.pdusIn.Inc()
	if r.draining.Load() {
		r.drop(in, dropDraining)
		return
	}
	if !in.ingress.allow() {
		r.drop(in, dropRateLimited)
		r.nak(in, p, pdu.CodeRateLimited)
		return
	}
	if len(p) > r.cfg.MaxPDU {
		r.drop(in, dropTooBig)
		r.nak(in, p, pdu.CodeTooBig)
		return
	}
	var h pdu.Header
	if err := pdu.Decode(p, &h); err != nil {
		r.drop(in, dropMalformed)
		r.nak(in, p, pdu.CodeMalformed)
		return
	}
	switch h.Type {
	case pdu.TypeKeepalive:
		return
	case pdu.TypeAdvertise, pdu.TypeWithdraw:
		if in.kind == FaceRouter && h.Type == pdu.TypeAdvertise {
			r.downstreamRecord(in, &h)
			return
		}
		if in.kind != FaceEndpoint {
			r.drop(in, dropForbidden)
			return
		}
		// control keeps its header (an answer that waits for the
		// location records): a copy of its own, so that h, on every
		// PDU's path, stays on the stack and forwarding allocates
		// nothing (TestForwardAllocs).
		hc := h
		r.control(in, &hc)
		return
	case pdu.TypeNAK, pdu.TypeAdvertiseResult:
		if in.kind == FaceEndpoint {
			// Only routers originate these. An endpoint sending one can
			// only be forging an answer to another endpoint's request
			// (PROTOCOL.md §1.9): endpoints believe a NAK from a source
			// other than their router because no endpoint can send one.
			r.drop(in, dropForbidden)
			return
		}
	}
	if in.kind == FaceEndpoint && !in.holds(h.Src) {
		// A reply to a spoofed source would reflect traffic at a
		// victim: drop silently.
		r.drop(in, dropSpoofed)
		return
	}
	// A name that sends is reachable again: forget a remembered miss.
	r.resolve.sawSource(h.Src)
	if h.Dst == r.name {
		r.local(in, &h)
		return
	}
	if h.TTL == 0 {
		r.drop(in, dropTTLExpired)
		r.nak(in, p, pdu.CodeTTLExpired)
		return
	}
	if r.dedup.seen(p, r.ticks.Load()) {
		r.drop(in, dropDuplicate)
		return
	}
	if h.Type == pdu.TypeNAK && h.Code == pdu.CodeNoRoute && in.kind == FaceRouter && h.Src == in.peer {
		// The router behind the route we cached no longer holds the name:
		// forget the cached route so the next PDU asks again. Only that
		// router's own NAK counts — one it relays from elsewhere says
		// nothing about the hop through it.
		if dst, ok := nakedDst(&h); ok {
			r.forgetLearned(dst, in)
		}
	}
	p[3]-- // TTL, decremented in place before forwarding
	r.route(in, h.Dst, h.Flags, p, true)
}

// route sends p (a validated PDU whose TTL is already decremented) toward
// dst. Anycast picks the nearest hop other than the ingress face; multicast
// sends to every holder. A miss parks p while the resolver is asked when
// mayResolve is set, else NAKs NO_ROUTE.
func (r *Router) route(in *Face, dst pdu.Name, flags pdu.Flags, p []byte, mayResolve bool) {
	hops := r.fib.Lookup(dst)
	if flags&pdu.FlagMulticast != 0 {
		sent, remote := r.multicast(in, hops, p)
		if sent && !remote && mayResolve && in.kind != FaceRouter && r.resolve != nil {
			// Local holders only so far: other routers may hold dst too.
			// Ask the resolver (once per route-cache or negative-cache
			// period); their copies follow when it answers.
			r.resolve.parkRemote(in, dst, p)
		}
		if sent {
			return
		}
	} else if out := r.nearest(in, dst, hops, p); out != nil {
		r.sendOn(in, out, p)
		return
	}
	if mayResolve && r.resolve != nil && r.resolve.park(in, dst, p) {
		return
	}
	r.drop(in, dropNoRoute)
	r.nak(in, p, pdu.CodeNoRoute)
}

// nearest returns the live hop with the lowest cost that is not the ingress
// face. Equal-cost replicas of a name (several servers holding a capsule)
// are spread by a hash of the PDU's source and sequence, so one source's
// flow is not pinned to a single replica while retransmissions stay put.
// An endpoint's own name attached more than once (the same identity in two
// processes, or re-attached before the old tunnel timed out) goes to the
// newest attachment: replies must reach the process that asked.
func (r *Router) nearest(in *Face, dst pdu.Name, hops []Hop, p []byte) *Face {
	now := r.nowNanos.Load()
	best, n := -1, 0
	for i := range hops {
		h := &hops[i]
		if !h.usable(in, now) {
			continue
		}
		if best < 0 {
			best, n = i, 1
			continue
		}
		if h.Cost != hops[best].Cost {
			break // hops are sorted by cost
		}
		n++
	}
	if best < 0 {
		return nil
	}
	if n > 1 && hops[best].Face.peer == dst {
		newest := hops[best].Face
		for i := best + 1; i < len(hops) && hops[i].Cost == hops[best].Cost; i++ {
			h := &hops[i]
			if h.usable(in, now) && h.Face.id > newest.id && h.Face.peer == dst {
				newest = h.Face
			}
		}
		return newest
	}
	if n > 1 {
		k := binary.LittleEndian.Uint32(p[44:48]) ^ binary.BigEndian.Uint32(p[8:12])
		pick := int(k % uint32(n))
		for i := best; i < len(hops); i++ {
			h := &hops[i]
			if !h.usable(in, now) {
				continue
			}
			if pick == 0 {
				return h.Face
			}
			pick--
		}
	}
	return hops[best].Face
}

// multicast delivers p to every holder: one copy to each local endpoint
// holding dst and one to each peer router holding it (each FIB hop is a
// distinct face). A copy that came from a peer router goes only to local
// endpoints: the router that accepted it from its source fanned it out to
// the other routers already, so a copy crosses at most one router-to-router
// tunnel and cannot loop (dedup drops any duplicate). It reports whether
// any copy was sent, and whether any went to another router or there was
// a live resolver-learned hop (the remote holders are known).
func (r *Router) multicast(in *Face, hops []Hop, p []byte) (sent, remote bool) {
	now := r.nowNanos.Load()
	for i := range hops {
		h := &hops[i]
		if !h.usable(in, now) {
			continue
		}
		if h.Origin == OriginResolver || h.Face.kind == FaceRouter {
			remote = true
		}
		if in.kind == FaceRouter && h.Face.kind == FaceRouter {
			continue
		}
		r.sendOn(in, h.Face, p)
		sent = true
	}
	return sent, remote
}

// multicastRemote sends the copies of p for dst's peer-router hops only
// (its local holders had theirs when p arrived).
func (r *Router) multicastRemote(in *Face, hops []Hop, p []byte) {
	if in.kind == FaceRouter {
		return
	}
	now := r.nowNanos.Load()
	for i := range hops {
		h := &hops[i]
		if h.Face.kind != FaceRouter || !h.usable(in, now) {
			continue
		}
		r.sendOn(in, h.Face, p)
	}
}

// usable reports whether a PDU that came in on face in may leave by h at
// now (Unix nanoseconds): not back where it came from, over an open face,
// on a route that has not expired.
func (h *Hop) usable(in *Face, now int64) bool {
	return h.Face != in && !h.Face.closed.Load() && (h.Expiry.IsZero() || h.Expiry.UnixNano() > now)
}

func (r *Router) sendOn(in, out *Face, p []byte) {
	var from *idShare
	if in != nil && in != out {
		from = in.share
	}
	if err := out.send(from, p); err != nil {
		switch err {
		case errQueueBytes:
			r.met.quota(quotaQueueBytes)
		case errQueueShare:
			r.met.quota(quotaQueueShare)
		case errSendFailed:
			r.drop(in, dropSendError)
			return
		}
		r.drop(in, dropQueueFull)
		return
	}
	r.met.pdusOut.Inc()
}

// local handles a PDU addressed to the router itself: it answers
// ECHO_REQUEST (gdp ping of a router) and drops the rest, counted.
func (r *Router) local(in *Face, h *pdu.Header) {
	if h.Type != pdu.TypeEchoRequest {
		r.drop(in, dropLocal)
		return
	}
	reply := pdu.Header{
		Type:     pdu.TypeEchoReply,
		TTL:      pdu.DefaultTTL,
		Sequence: h.Sequence,
		Dst:      h.Src,
		Src:      r.name,
		Payload:  h.Payload,
	}
	b, err := reply.Marshal()
	if err != nil {
		r.drop(in, dropMalformed)
		return
	}
	r.sendOn(in, in, b)
}
