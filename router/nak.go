package router

import (
	"github.com/gdpnet/gdpnet/pdu"
)

// nak tells the source of orig (raw bytes as received) why the router did
// not forward it. The NAK goes back on the face the PDU came in on — the
// reverse path — and is rate limited per face, so a flood of bad PDUs cannot
// turn the router into a NAK amplifier. Nothing is sent about a NAK, to a
// source that asked for NO_NAK, or about bytes too broken to name a source.
func (r *Router) nak(in *Face, orig []byte, code pdu.Code) {
	// The budget first: under a flood most NAKs are not sent, and building
	// one allocates.
	if !in.naks.allow() {
		return
	}
	h, ok := pdu.NAK(orig, code, r.name)
	if !ok {
		return
	}
	var buf [pdu.HeaderLen + 36 + pdu.MaxNAKEcho]byte
	b, err := h.Append(buf[:0])
	if err != nil {
		return
	}
	if in.send(nil, b) == nil {
		r.met.naks[code].Inc()
		r.met.pdusOut.Inc()
	}
}

// drop counts a PDU the router will not forward.
func (r *Router) drop(in *Face, why dropReason) {
	r.met.dropped[why].Inc()
	if in != nil {
		in.drops.Add(1)
	}
}

// nakedDst returns the destination of the PDU a NAK echoes, if the echo
// holds enough of it.
func nakedDst(h *pdu.Header) (pdu.Name, bool) {
	if len(h.Payload) < pdu.HeaderLen {
		return pdu.Name{}, false
	}
	return pdu.Name(h.Payload[12:44]), true
}
