package tunnel

import "sync/atomic"

// DropReason says why a raw frame or a PDU was dropped.
type DropReason uint8

// Drop reasons, also the "reason" label of the drop metric.
const (
	DropTruncated         DropReason = iota // shorter than a frame header and tag
	DropBadType                             // frame type is not 0x21
	DropUnknownSession                      // no session has that receiver index
	DropAuth                                // tag did not verify (bit flips, wrong key)
	DropReplay                              // counter already seen or left of the window
	DropBadFragment                         // fragment inconsistent with its packet
	DropReassemblyEvicted                   // incomplete PDU pushed out by newer ones
	DropReassemblyTimeout                   // incomplete PDU older than the timeout
	DropOversize                            // datagram larger than the MTU, or PDU over MaxPDU
	DropNoHandler                           // no Handler configured
	DropPathMTU                             // the kernel refused a frame as larger than the path MTU (EMSGSIZE)
	DropStreamTimeout                       // a PDU stream (or a bulk stream's tag) did not end within StreamTimeout
	DropBulkUnaccepted                      // a bulk stream nobody accepted within StreamTimeout, or on a node that takes none
	DropDatagramQueue                       // a QUIC datagram arrived while quic-go's receive queue (128) was full: the link's reader fell behind
	DropDatagramTooLarge                    // quic-go discarded a queued datagram that no longer fit a packet (the path's size shrank)
	numDropReasons
)

var dropNames = [numDropReasons]string{
	"truncated", "bad_type", "unknown_session", "auth", "replay", "bad_fragment",
	"reassembly_evicted", "reassembly_timeout", "oversize", "no_handler", "path_mtu",
	"stream_timeout", "bulk_unaccepted", "datagram_queue", "datagram_too_large",
}

func (r DropReason) String() string {
	if r < numDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// Stats is a snapshot of an endpoint's counters.
type Stats struct {
	PDUsSent, PDUsReceived     uint64 // whole PDUs, every kind
	KeepalivesSent             uint64 // KEEPALIVE datagrams sent on idle links (not in PDUsSent)
	KeepalivesReceived         uint64 // and received (consumed, not delivered)
	FramesSent, FramesReceived uint64 // raw frames (fragments count one each)
	// SendCalls and RecvCalls are the raw socket's send and receive
	// system calls (sendmmsg/recvmmsg or one-datagram calls): frames per
	// call is how well the data path batches.
	SendCalls, RecvCalls       uint64
	HandshakesRefused          uint64 // peers that failed verification in TLS
	HandshakesInFlight         int64  // incoming QUIC handshakes started and not finished
	Retries                    uint64 // new clients asked to validate their address (QUIC Retry)
	DialsFailed, AcceptsFailed uint64
	// LinksDialed, LinksAccepted and LinksClosed count every link that
	// came up (by side) and went down: their log lines are rate-limited
	// per peer (a peer reconnecting in a loop), these are not.
	LinksDialed, LinksAccepted, LinksClosed uint64
	Rekeys                                  uint64
	// Renewals: our renewed credentials sent on live links, and the
	// peers' received: accepted (the link's expiry moved), refused (they
	// did not verify for the link's peer), rate-limited (not checked), or
	// unchanged (the credentials the link already had).
	RenewalsSent, RenewalsAccepted, RenewalsRefused uint64
	RenewalsRateLimited, RenewalsUnchanged          uint64
	Links                                           int               // links up now
	Drops                                           map[string]uint64 // by DropReason name; only non-zero ones
}

// Dropped returns the count for one reason.
func (s Stats) Dropped(r DropReason) uint64 { return s.Drops[r.String()] }

type counters struct {
	pdusSent, pdusReceived     atomic.Uint64
	keepalivesSent             atomic.Uint64
	keepalivesReceived         atomic.Uint64
	framesSent, framesReceived atomic.Uint64
	sendCalls, recvCalls       atomic.Uint64
	handshakeRefused           atomic.Uint64
	handshakes                 atomic.Int64 // incoming handshakes in flight
	retries                    atomic.Uint64
	dialFailed, acceptFailed   atomic.Uint64
	linksDialed, linksAccepted atomic.Uint64
	linksClosed                atomic.Uint64
	rekeys                     atomic.Uint64
	renewalsSent               atomic.Uint64
	renewalsAccepted           atomic.Uint64
	renewalsRefused            atomic.Uint64
	renewalsLimited            atomic.Uint64
	renewalsUnchanged          atomic.Uint64
	drops                      [numDropReasons]atomic.Uint64
}

func (c *counters) drop(r DropReason) { c.drops[r].Add(1) }

// Stats returns the endpoint's counters.
func (e *Endpoint) Stats() Stats {
	c := &e.stats
	s := Stats{
		PDUsSent: c.pdusSent.Load(), PDUsReceived: c.pdusReceived.Load(),
		KeepalivesSent: c.keepalivesSent.Load(), KeepalivesReceived: c.keepalivesReceived.Load(),
		FramesSent: c.framesSent.Load(), FramesReceived: c.framesReceived.Load(),
		SendCalls: c.sendCalls.Load(), RecvCalls: c.recvCalls.Load(),
		HandshakesRefused:  c.handshakeRefused.Load(),
		HandshakesInFlight: c.handshakes.Load(), Retries: c.retries.Load(),
		DialsFailed: c.dialFailed.Load(), AcceptsFailed: c.acceptFailed.Load(),
		LinksDialed: c.linksDialed.Load(), LinksAccepted: c.linksAccepted.Load(), LinksClosed: c.linksClosed.Load(),
		Rekeys:       c.rekeys.Load(),
		RenewalsSent: c.renewalsSent.Load(), RenewalsAccepted: c.renewalsAccepted.Load(),
		RenewalsRefused: c.renewalsRefused.Load(), RenewalsRateLimited: c.renewalsLimited.Load(),
		RenewalsUnchanged: c.renewalsUnchanged.Load(),
		Links:             e.numLinks(),
		Drops:             map[string]uint64{},
	}
	for i := range c.drops {
		if v := c.drops[i].Load(); v != 0 {
			s.Drops[DropReason(i).String()] = v
		}
	}
	return s
}

func (e *Endpoint) numLinks() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.links)
}
