package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/pdu"
)

// CapsuleOptions tunes a CapsuleClient. Zero values take the defaults in
// the comments.
type CapsuleOptions struct {
	// Timeout bounds one attempt of a request. Default 2s.
	Timeout time.Duration
	// Attempts is how many times at least a request is sent before giving
	// up (requests are idempotent); a caller's context with a deadline
	// keeps it re-sending until that deadline. Default 3.
	Attempts int
	// ProofRefresh (Session 15): requests to a capsule server carry the
	// requester proof (our membership, PROTOCOL.md §8.3) until the server
	// answers one, and again this long after, so that the server counts
	// them in our identity's shares (request queue, subscriptions) rather
	// than in the pool of requesters that proved nothing. Default
	// DefaultProofRefresh (30 s); negative: never (as a client before
	// Session 15; CREATEs still carry it).
	ProofRefresh time.Duration
}

func (o CapsuleOptions) withDefaults() CapsuleOptions {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.ProofRefresh == 0 {
		o.ProofRefresh = DefaultProofRefresh
	}
	return o
}

// Errors of the capsule SDK callers branch on. Server refusals are
// *wire.StatusError values; verification failures wrap the capsule
// package's sentinels (capsule.ErrBadProof, capsule.ErrEquivocation, …).
var (
	// ErrNoReplica: no replica acknowledged an append.
	ErrNoReplica = errors.New("client: no replica acknowledged")
	// ErrNoPlacement: the capsule's replicas sent no placement record
	// signed by its owner, so a writer does not know where to write.
	ErrNoPlacement = errors.New("client: no owner-signed placement record")
	// ErrNoAnswer: a capsule request got no answer after every attempt.
	ErrNoAnswer = errors.New("client: no answer from the capsule server")
)

// CapsuleClient speaks the capsule commands of docs/PROTOCOL.md §8 over a
// Client. It takes over the Client's Receive queue: one goroutine sorts
// what arrives into responses (matched by request id) and subscription
// pushes. Close stops it; the Client stays open.
type CapsuleClient struct {
	c    *Client
	opts CapsuleOptions
	pend *wire.Pending

	mu   sync.Mutex
	subs map[uint64]*subWaiter

	// heads remembers each capsule's newest verified heartbeat past its
	// readers' lives (heads.go).
	heads heads

	// sent remembers the PDU sequence of the last requests sent (request
	// id and destination), so a router's NAK about one reaches its waiter
	// at once instead of the request timing out.
	sentMu   sync.Mutex
	sent     map[uint32]sentPDU
	sentRing []uint32
	sentNext int

	// Dropped counts PDUs that were not capsule messages, late answers,
	// pushes for unknown or full subscriptions, and pushes held too long
	// for their server's answer (more than maxEarlyPushes waiting).
	Dropped atomic.Uint64
	// Forged counts answers refused because they came from a node that was
	// not asked (or answered another operation), and subscription pushes
	// from a node other than the server asked by name.
	Forged atomic.Uint64
	// BadReceipts counts APPEND acknowledgements a writer did not count:
	// no receipt, or one that does not verify under a server the owner
	// placed the capsule on.
	BadReceipts atomic.Uint64
	// Resends counts APPEND batches a writer sent again to a replica that
	// had not acknowledged them within the measured RTO.
	Resends atomic.Uint64

	bulk bulkConns // QUIC connections for bulk reads (capsule_bulk.go)

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewCapsuleClient starts a capsule client on c.
func NewCapsuleClient(c *Client, opts CapsuleOptions) *CapsuleClient {
	cc := &CapsuleClient{c: c, opts: opts.withDefaults(), pend: wire.NewPending(), subs: map[uint64]*subWaiter{},
		sent: map[uint32]sentPDU{}, sentRing: make([]uint32, maxSentPDUs)}
	ctx, cancel := context.WithCancel(context.Background())
	cc.cancel = cancel
	cc.wg.Add(1)
	go func() {
		defer cc.wg.Done()
		cc.loop(ctx)
	}()
	return cc
}

// Client is the underlying attachment.
func (cc *CapsuleClient) Client() *Client { return cc.c }

// Close stops the receive goroutine. Subscriptions end.
func (cc *CapsuleClient) Close() error {
	cc.bulk.close()
	cc.pend.Close()
	cc.cancel()
	cc.wg.Wait()
	return nil
}

func (cc *CapsuleClient) loop(ctx context.Context) {
	for {
		m, err := cc.c.Receive(ctx)
		if err != nil {
			return
		}
		if m.Type == pdu.TypeNAK {
			if !cc.nak(m) {
				cc.Dropped.Add(1)
			}
			continue
		}
		if m.Type != pdu.TypeData {
			cc.Dropped.Add(1)
			continue
		}
		msg, err := wire.Unmarshal(m.Payload)
		if err != nil {
			cc.Dropped.Add(1)
			continue
		}
		if msg.IsResponse() {
			if msg.Op == wire.OpSubscribe && msg.Status.Success() {
				cc.noteSubscribed(m.Src, msg.ID)
			}
			if err := cc.pend.Deliver(m.Src, msg); err != nil {
				if errors.Is(err, wire.ErrWrongSource) {
					cc.Forged.Add(1)
				} else {
					cc.Dropped.Add(1)
				}
			}
			continue
		}
		if msg.Op != wire.OpEvent {
			cc.Dropped.Add(1)
			continue
		}
		cc.mu.Lock()
		sw := cc.subs[msg.ID]
		cc.mu.Unlock()
		if sw == nil {
			cc.Dropped.Add(1)
			continue
		}
		switch {
		case sw.acked(m.Src):
		case !sw.asked.IsZero() && m.Src != sw.asked:
			// Asked by name: only that server may push.
			cc.Forged.Add(1)
			continue
		default:
			// A push can overtake its server's answer to the SUBSCRIBE
			// (the push goroutine starts before the answer is sent), and
			// after a failover a renewal sent to the capsule's name may be
			// taken by another replica. Dropping such a push would lose
			// the records it carries until the next renewal, so it waits
			// for the answer that names its server; one from a node that
			// never answers is never delivered.
			if len(sw.early) >= maxEarlyPushes {
				sw.early = sw.early[1:]
				// The oldest held push: its server has not answered (yet,
				// or ever); a legitimate one's records come again when the
				// subscription resumes from the gap.
				cc.Dropped.Add(1)
			}
			sw.early = append(sw.early, earlyPush{src: m.Src, msg: msg})
			continue
		}
		cc.queuePush(sw, msg)
	}
}

// queuePush hands a push to its subscription.
func (cc *CapsuleClient) queuePush(sw *subWaiter, msg *wire.Message) {
	select {
	case sw.ch <- msg:
	default:
		cc.Dropped.Add(1) // the subscriber sees the gap and resumes
	}
}

// maxEarlyPushes bounds the pushes a subscription holds while they wait
// for their server's answer to the SUBSCRIBE; beyond it the oldest is
// dropped (counted in Dropped), and the subscriber resumes from any gap
// that leaves.
const maxEarlyPushes = 16

// earlyPush is a push that arrived before its server's answer.
type earlyPush struct {
	src pdu.Name
	msg *wire.Message
}

// subWaiter is a subscription's push queue and the servers whose
// acknowledgement of the SUBSCRIBE (id and source matched by Pending) made
// them ones pushes are taken from. The receive goroutine alone touches
// servers and early.
type subWaiter struct {
	ch    chan *wire.Message
	asked pdu.Name // the server asked; zero when the capsule's name was
	// servers acknowledged this subscription, oldest first (at most
	// maxSubServers): a renewal sent to the capsule's name may be taken
	// by another replica (a failover), and pushes from each that took it
	// are verified like any other.
	servers []pdu.Name
	// early holds pushes that arrived before their server's answer.
	early []earlyPush
}

// maxSubServers bounds the servers one subscription takes pushes from.
const maxSubServers = 4

func (sw *subWaiter) acked(src pdu.Name) bool {
	for _, s := range sw.servers {
		if s == src {
			return true
		}
	}
	return false
}

// noteSubscribed records a server that acknowledged subscription id, in
// the receive goroutine so that pushes right behind the answer are taken.
// With a server asked by name only that server's answer counts.
func (cc *CapsuleClient) noteSubscribed(from pdu.Name, id uint64) {
	cc.mu.Lock()
	sw := cc.subs[id]
	cc.mu.Unlock()
	if sw == nil || (!sw.asked.IsZero() && sw.asked != from) {
		return
	}
	if !sw.acked(from) {
		if len(sw.servers) >= maxSubServers {
			sw.servers = sw.servers[1:]
		}
		sw.servers = append(sw.servers, from)
	}
	// Pushes from this server that overtook its answer are delivered in
	// the order they came; others' wait for their own server's answer.
	kept := sw.early[:0]
	for _, e := range sw.early {
		if e.src == from {
			cc.queuePush(sw, e.msg)
		} else {
			kept = append(kept, e)
		}
	}
	clear(sw.early[len(kept):])
	sw.early = kept
}

// answerers are the nodes whose answer to a request sent to dst about
// capsule c counts: dst itself, or, for a request to the capsule's own
// name (any replica may take it), any node, whose answer the caller
// verifies.
func answerers(dst, c pdu.Name) []pdu.Name {
	if dst == c {
		return nil
	}
	return []pdu.Name{dst}
}

// maxSentPDUs bounds the sequence numbers remembered for matching NAKs.
const maxSentPDUs = 4096

// sentPDU is a request PDU a NAK may be about.
type sentPDU struct {
	id  uint64
	dst pdu.Name
}

// sendPDU sends payload b of request id to dst and remembers its PDU
// sequence for NAK matching. With a ctx that can end (a deadline, a
// cancel) the send waits at most until it does (Client.sendFromBy, Session
// 20): a link whose send queue stays full then costs the request its
// timeout, not the link's idle timeout; b must then not be modified.
func (cc *CapsuleClient) sendPDU(ctx context.Context, id uint64, dst pdu.Name, flags pdu.Flags, b []byte) error {
	var seq uint32
	var err error
	if ctx.Done() == nil {
		seq, err = cc.c.SendFrom(cc.c.ReplyName(), dst, flags, b)
	} else {
		seq, err = cc.c.sendFromBy(ctx, nil, cc.c.ReplyName(), dst, flags, b)
	}
	if err != nil {
		return err
	}
	cc.sentMu.Lock()
	delete(cc.sent, cc.sentRing[cc.sentNext])
	cc.sentRing[cc.sentNext] = seq
	cc.sentNext = (cc.sentNext + 1) % maxSentPDUs
	cc.sent[seq] = sentPDU{id: id, dst: dst}
	cc.sentMu.Unlock()
	return nil
}

// nak hands a router's NAK to the request it is about: its sequence must
// be one we sent and the echoed header must name the destination we sent
// that PDU to.
func (cc *CapsuleClient) nak(m Message) bool {
	cc.sentMu.Lock()
	s, ok := cc.sent[m.Sequence]
	cc.sentMu.Unlock()
	if !ok || len(m.Payload) < pdu.HeaderLen || pdu.Type(m.Payload[2]) != pdu.TypeData ||
		pdu.Name(m.Payload[12:44]) != s.dst {
		return false
	}
	return cc.pend.DeliverNAK(s.id, s.dst, m.Code, m.Src)
}

// nakError turns a NAK reply into the error a request fails with.
func nakError(op wire.Op, dst pdu.Name, rep wire.Reply) error {
	e := &NAKError{Code: rep.NAK, Reporter: rep.Reporter}
	switch rep.NAK {
	case pdu.CodeNoRoute:
		return fmt.Errorf("%s %s: %w: no capsule server is reachable under that name "+
			"(a mistyped name, a capsule not placed, or AdCerts that expired)", op, dst, e)
	case pdu.CodeForbidden:
		return fmt.Errorf("%s %s: %w: the router refused the request", op, dst, e)
	}
	return fmt.Errorf("%s %s: %w", op, dst, e)
}

// send encodes m and sends it to dst with flags, the send bounded by ctx
// (sendPDU). A request carries the requester proof while the server it is
// taken to reach has not answered one recently (RequestProof); a CREATE's
// is set by Create.
func (cc *CapsuleClient) send(ctx context.Context, dst pdu.Name, flags pdu.Flags, m *wire.Message) error {
	if m.Op != wire.OpCreate {
		m.Proof = cc.c.RequestProof(cc.c.ReplyName(), dst, cc.opts.ProofRefresh)
	}
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	return cc.sendPDU(ctx, m.ID, dst, flags, b)
}

// call sends m to dst and returns the first answer, resending after each
// timeout (the same request id, so a server's answer to any copy counts).
// It sends Attempts times; with untilDeadline set and a deadline on ctx it
// goes on re-sending until that deadline, so a slow server, not a dead
// one, is waited for as long as the caller allows (the writer's rule):
// for requests only this server can answer (a CREATE on it, a reader's
// READ). Calls that move on to another server when one is silent (a
// quorum's METADATA, each server of a DELETE) keep the fixed attempts.
func (cc *CapsuleClient) call(ctx context.Context, dst pdu.Name, m *wire.Message, untilDeadline bool) (wire.Reply, error) {
	id, ch, err := cc.pend.Add(m.Op, 4, answerers(dst, m.CapsuleName())...)
	if err != nil {
		return wire.Reply{}, err
	}
	defer cc.pend.Done(id)
	m.ID = id
	deadline, hasDeadline := ctx.Deadline()
	hasDeadline = hasDeadline && untilDeadline
	sends := 0
	var blocked error // the last attempt's send did not leave in its time
	for ; sends < cc.opts.Attempts || (hasDeadline && time.Until(deadline) > 0); sends++ {
		// The attempt's Timeout covers its send (Session 20): on a link
		// whose send queue stays full the send gives up with the attempt.
		actx, cancel := context.WithTimeout(ctx, cc.opts.Timeout)
		err := cc.send(actx, dst, 0, m)
		blocked = nil
		if err != nil && actx.Err() != nil {
			cancel()
			cc.c.RequestUnanswered(dst)
			if ctx.Err() != nil {
				return wire.Reply{}, fmt.Errorf("%s %s: %w after %d attempts (%w; %w)", m.Op, dst, ErrNoAnswer, sends+1, errSendBlocked, ctx.Err())
			}
			blocked = errSendBlocked
			continue
		}
		if err != nil {
			cancel()
			return wire.Reply{}, fmt.Errorf("%s %s: %w", m.Op, dst, err)
		}
		rep, err := wire.Wait(actx, ch)
		cancel()
		if err == nil && rep.NAK != pdu.CodeNone {
			// A router says the destination cannot be reached: that is
			// the answer, and re-sending would only get it again.
			cc.c.RequestUnanswered(dst)
			return rep, nakError(m.Op, dst, rep)
		}
		if err == nil {
			cc.c.RequestAnswered(cc.c.ReplyName(), dst, rep.From, m.Proof != nil)
			return rep, nil
		}
		// Unanswered: the server may be down (a restarted one forgot our
		// proof) or the name moving to another replica; the next copy
		// carries the proof.
		cc.c.RequestUnanswered(dst)
		if ctx.Err() != nil {
			// Sent but unanswered: the server may have acted on it.
			return wire.Reply{}, fmt.Errorf("%s %s: %w after %d attempts (%w)", m.Op, dst, ErrNoAnswer, sends+1, ctx.Err())
		}
	}
	if blocked != nil {
		return wire.Reply{}, fmt.Errorf("%s %s: %w after %d attempts (%w)", m.Op, dst, ErrNoAnswer, sends, blocked)
	}
	return wire.Reply{}, fmt.Errorf("%s %s: %w after %d attempts", m.Op, dst, ErrNoAnswer, sends)
}

// callOK is call that turns a failure status into an error.
func (cc *CapsuleClient) callOK(ctx context.Context, dst pdu.Name, m *wire.Message, untilDeadline bool) (wire.Reply, error) {
	rep, err := cc.call(ctx, dst, m, untilDeadline)
	if err != nil {
		return rep, err
	}
	return rep, rep.Msg.Err()
}
