package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/pdu"
)

// Link is what a Client needs from a tunnel to its router: the router's
// verified name, a way to send one PDU, and a signal when it goes down.
// tunnel.Link satisfies it.
type Link interface {
	Peer() pdu.Name
	Send(p []byte) error
	Done() <-chan struct{}
	Close() error
}

// Errors callers branch on.
var (
	ErrClosed  = errors.New("client: closed")
	ErrTimeout = errors.New("client: no answer in time")
)

// NAKError is a NAK the router sent about one of the client's PDUs.
type NAKError struct {
	Code     pdu.Code
	Reporter pdu.Name // the router that refused it
}

func (e *NAKError) Error() string {
	return fmt.Sprintf("client: router %s: %s", e.Reporter, e.Code)
}

// Options tunes a Client. Zero values take the defaults in the comments.
type Options struct {
	// Logger; nil logs nothing.
	Logger *zap.Logger
	// RequestTimeout bounds one attempt of a request (advertise, withdraw,
	// ping). Default 2s.
	RequestTimeout time.Duration
	// Attempts is how many times a control request is sent before giving
	// up. Default 3.
	Attempts int
	// InboxSize bounds received DATA PDUs not yet taken by Receive; more
	// are dropped (counted in Dropped). Past half full, a source holding
	// InboxSize/(k+1) of them — k the sources with PDUs waiting — is
	// refused (counted in Dropped and DroppedShare), so one sender
	// flooding faster than Receive is called cannot take the whole inbox.
	// Default 1024.
	InboxSize int
	// RtCertLifetime is the validity of the RtCerts the client issues.
	// Default 1h.
	RtCertLifetime time.Duration
	// OnRtCert, when set, is called with every RtCert the client issues
	// itself (before the advertisement that carries it), e.g. to export
	// its expiry. It must not block.
	OnRtCert func(*certs.Cert)
	// TTL is the initial TTL of PDUs the client sends. Default 32.
	TTL uint8
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 2 * time.Second
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.InboxSize <= 0 {
		o.InboxSize = 1024
	}
	if o.RtCertLifetime <= 0 {
		o.RtCertLifetime = time.Hour
	}
	if o.TTL == 0 {
		o.TTL = pdu.DefaultTTL
	}
	return o
}

// Message is a PDU delivered to the client.
type Message struct {
	Type     pdu.Type
	Code     pdu.Code // NAKs only
	Flags    pdu.Flags
	Sequence uint32
	Src, Dst pdu.Name
	Payload  []byte // owned by the receiver

	share pdu.Name // the inbox share it counts in (SetInboxShare)
}

// Client is one endpoint attached to one router.
type Client struct {
	id   *certs.Identity
	link Link
	opts Options
	log  *zap.Logger

	seq    atomic.Uint32
	advMu  sync.Mutex
	advSeq uint64
	rtCert *certs.Cert

	session   *certs.Metadata // this attachment's session name (Session)
	sessionAd *certs.Cert

	mu      sync.Mutex
	waiters map[uint32]*waiter
	held    map[pdu.Name]bool
	routes  map[pdu.Name]Route // advertised and not withdrawn: re-advertised after a re-attach
	relinks chan struct{}      // a re-attach happened (AttachAny)
	// relinkWait is closed when the re-advertisement a re-attach asked
	// for has ended (accepted, refused, or nothing to advertise): what
	// the client sends after it comes from a source the new router knows.
	relinkMu   sync.Mutex
	relinkWait chan struct{}

	inbox  chan Message
	shares inboxShares
	// inboxShare, when set, keys a DATA PDU's inbox share by its source
	// (SetInboxShare).
	inboxShare atomic.Pointer[func(src pdu.Name) pdu.Name]
	Dropped    atomic.Uint64 // DATA PDUs dropped because the inbox was full or their source held its share of it
	// DroppedShare counts, of Dropped, the PDUs dropped because their
	// source held its share of the inbox (Options.InboxSize).
	DroppedShare atomic.Uint64
	Unsent       atomic.Uint64 // PDUs dropped while re-attaching (AttachAny)
	// Rejected counts answers (NAK, ECHO_REPLY, ADVERTISE_RESULT) whose
	// sequence matched a pending request but whose source or echo did not:
	// forged or misdirected, never delivered.
	Rejected atomic.Uint64

	// SendsAbandoned counts request PDUs never sent because their request
	// gave up (its timeout or context) while they waited behind a send the
	// link held (sendlane.go).
	SendsAbandoned atomic.Uint64
	// EchoesDropped counts echo answers dropped because the send lane
	// already held 64 PDUs (a link whose send queue stays full), or their
	// requester held its share of the answers queued there.
	EchoesDropped atomic.Uint64
	// EchoesDroppedShare counts, of EchoesDropped, the answers dropped
	// because their requester (its identity, as SetInboxShare keys it)
	// held its share: past 32 queued, 64/(k+1), k the requesters with
	// answers queued (Session 21).
	EchoesDroppedShare atomic.Uint64
	echoShares         inboxShares

	lane sendLane // PDUs queued behind a send the link holds (sendlane.go)

	quic quicState // QUIC over names (quic.go)

	proofs proofMarks // which servers have our requester proof (requester.go)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a client for identity id attached over link. Feed it the
// PDUs the link delivers with HandlePDU.
func New(id *certs.Identity, link Link, opts Options) *Client {
	opts = opts.withDefaults()
	c := &Client{
		id:         id,
		link:       link,
		opts:       opts,
		log:        opts.Logger,
		waiters:    make(map[uint32]*waiter),
		held:       map[pdu.Name]bool{id.Name: true},
		routes:     make(map[pdu.Name]Route),
		relinks:    make(chan struct{}, 1),
		inbox:      make(chan Message, opts.InboxSize),
		shares:     inboxShares{limit: opts.InboxSize, by: map[pdu.Name]int{}},
		echoShares: inboxShares{limit: maxAsyncHeld, by: map[pdu.Name]int{}},
	}
	c.seq.Store(randUint32())
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// Name is the client's own name.
func (c *Client) Name() pdu.Name { return c.id.Name }

// Router is the name of the router the client is attached to.
func (c *Client) Router() pdu.Name { return c.link.Peer() }

// Done is closed when the link to the router goes down.
func (c *Client) Done() <-chan struct{} { return c.link.Done() }

// RouterExpiry is when the router's membership, as the router presented
// and the tunnel verified it at the handshake or at the router's last
// renewal on the live link, stops being valid; the zero time when the link
// does not say.
func (c *Client) RouterExpiry() time.Time {
	if l, ok := c.link.(interface{ Expiry() time.Time }); ok {
		return l.Expiry()
	}
	return time.Time{}
}

// Close stops the client's background work (renewals) and closes the link.
func (c *Client) Close() error {
	c.cancel()
	c.wg.Wait()
	c.closeQUIC()
	return c.link.Close()
}

func (c *Client) nextSeq() uint32 { return c.seq.Add(1) }

// randUint32 is 32 bits from the system's CSPRNG.
func randUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return binary.BigEndian.Uint32(b[:])
}

// nextAdvSeq returns the sequence of the next ADVERTISE or WITHDRAW: the
// clock in Unix nanoseconds, bumped to stay strictly increasing.
func (c *Client) nextAdvSeq() uint64 {
	c.advMu.Lock()
	defer c.advMu.Unlock()
	s := uint64(clock.Now().UnixNano())
	if s <= c.advSeq {
		s = c.advSeq + 1
	}
	c.advSeq = s
	return s
}

// HandlePDU processes one PDU from the router; p is valid only during the
// call. Replies (ADVERTISE_RESULT, ECHO_REPLY, NAK) go to the request
// waiting for their sequence number if their source and echo fit that
// request (see waiter.accepts), else they are counted in Rejected and
// dropped; ECHO_REQUESTs for a held name are answered; DATA goes to
// Receive.
func (c *Client) HandlePDU(p []byte) {
	var h pdu.Header
	if err := pdu.Decode(p, &h); err != nil {
		return
	}
	if h.Options != nil {
		// QUIC over names (PROTOCOL.md §9): its packets, and NAKs about
		// them, never reach Receive.
		if h.Type == pdu.TypeData && h.Content() == pdu.ContentQUIC {
			c.quicPacket(&h)
			return
		}
		if h.Type == pdu.TypeNAK && c.quicNAK(&h) {
			return
		}
	}
	m := Message{Type: h.Type, Code: h.Code, Flags: h.Flags, Sequence: h.Sequence, Src: h.Src, Dst: h.Dst}
	switch h.Type {
	case pdu.TypeEchoRequest:
		c.answerEcho(&h)
		return
	case pdu.TypeAdvertiseResult, pdu.TypeEchoReply, pdu.TypeNAK:
		c.mu.Lock()
		w := c.waiters[h.Sequence]
		c.mu.Unlock()
		if w != nil {
			if !w.accepts(&h, c.id.Name) {
				c.Rejected.Add(1)
				return
			}
			m.Payload = append([]byte(nil), h.Payload...)
			select {
			case w.ch <- m:
			default:
			}
			return
		}
		if h.Type != pdu.TypeNAK {
			return
		}
	case pdu.TypeKeepalive:
		return
	}
	m.share = h.Src
	if f := c.inboxShare.Load(); f != nil {
		m.share = (*f)(h.Src)
	}
	if !c.shares.take(m.share) {
		c.Dropped.Add(1)
		c.DroppedShare.Add(1)
		return
	}
	m.Payload = append([]byte(nil), h.Payload...)
	select {
	case c.inbox <- m:
	default:
		c.shares.give(m.share)
		c.Dropped.Add(1)
	}
}

// SetInboxShare makes share(src) the key of the inbox share (Options.
// InboxSize) a DATA PDU from src counts in; nil, the default: src itself.
// share is called for every DATA PDU, on the link's receive path: it must
// be quick and must not block. A capsule server counts the source names a
// requester proof proved as that identity's (Session 17), so a member
// sending from many proven names holds one share, not one per name.
func (c *Client) SetInboxShare(share func(src pdu.Name) pdu.Name) {
	if share == nil {
		c.inboxShare.Store(nil)
		return
	}
	c.inboxShare.Store(&share)
}

// inboxShares splits the inbox between the sources whose PDUs wait in it:
// under half full anyone may add; past that, a source holding
// limit/(k+1) — k the sources with PDUs waiting, itself counted — is
// refused, so a flood from one source leaves the other half to the rest
// and a newcomer always finds about a (k+1)-th of it. A capsule server's
// request queue behind it is fair per source too (capsuled/queue.go); this
// keeps a flood from being dropped in its place before it gets there.
type inboxShares struct {
	limit int

	mu sync.Mutex
	n  int
	by map[pdu.Name]int
}

func (q *inboxShares) take(src pdu.Name) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.limit >= 4 && q.n+1 > q.limit/2 {
		mine := q.by[src]
		k := len(q.by)
		if mine == 0 {
			k++
		}
		if mine+1 > q.limit/(k+1) {
			return false
		}
	}
	q.by[src]++
	q.n++
	return true
}

func (q *inboxShares) give(src pdu.Name) {
	q.mu.Lock()
	if v := q.by[src] - 1; v > 0 {
		q.by[src] = v
	} else {
		delete(q.by, src)
	}
	q.n--
	q.mu.Unlock()
}

func (c *Client) answerEcho(h *pdu.Header) {
	c.mu.Lock()
	ok := c.held[h.Dst]
	c.mu.Unlock()
	if !ok {
		return
	}
	reply := pdu.Header{Type: pdu.TypeEchoReply, TTL: c.opts.TTL, Sequence: h.Sequence, Dst: h.Src, Src: h.Dst, Payload: h.Payload}
	if b, err := reply.Marshal(); err == nil {
		share := h.Src
		if f := c.inboxShare.Load(); f != nil {
			share = (*f)(h.Src)
		}
		c.linkSendAsync(b, share)
	}
}

// Receive returns the next DATA PDU (or a NAK no request was waiting for).
func (c *Client) Receive(ctx context.Context) (Message, error) {
	select {
	case m := <-c.inbox:
		c.shares.give(m.share)
		return m, nil
	case <-ctx.Done():
		return Message{}, ctx.Err()
	case <-c.link.Done():
		return Message{}, ErrClosed
	}
}

// Send sends payload to dst from the client's own name and returns the PDU
// sequence number used.
func (c *Client) Send(dst pdu.Name, payload []byte) (uint32, error) {
	return c.SendFrom(c.id.Name, dst, 0, payload)
}

// SendContext is Send for a caller that must not wait on a congested link
// for longer than ctx allows: the send waits for the link at most until
// ctx is done, and then gives up without sending (ctx's error; a send
// already handed to the link is left there). Send itself waits as long as
// the link does: quic-go's SendDatagram blocks while its queue is full
// (a congested or dead path), bounded only by the link's idle timeout.
func (c *Client) SendContext(ctx context.Context, dst pdu.Name, payload []byte) (uint32, error) {
	if ctx.Done() == nil {
		return c.Send(dst, payload)
	}
	return c.sendFromBy(ctx, nil, c.id.Name, dst, 0, payload)
}

// SendFrom sends a DATA PDU from src (the client's name or one it
// advertised) with the given flags.
func (c *Client) SendFrom(src, dst pdu.Name, flags pdu.Flags, payload []byte) (uint32, error) {
	seq := c.nextSeq()
	h := pdu.Header{Type: pdu.TypeData, TTL: c.opts.TTL, Flags: flags, Sequence: seq, Dst: dst, Src: src, Payload: payload}
	b, err := h.Marshal()
	if err != nil {
		return 0, fmt.Errorf("send to %s: %w", dst, err)
	}
	if err := c.linkSend(b); err != nil {
		return 0, fmt.Errorf("send to %s: %w", dst, err)
	}
	return seq, nil
}

// sendFromBy is SendFrom for a request with a deadline: the send itself
// waits at most until deadline or ctx is done (sendBy), so a link whose
// send queue stays full cannot hold the request past its timeout. The
// sequence is returned with a send error too.
func (c *Client) sendFromBy(ctx context.Context, deadline <-chan time.Time, src, dst pdu.Name, flags pdu.Flags, payload []byte) (uint32, error) {
	seq := c.nextSeq()
	h := pdu.Header{Type: pdu.TypeData, TTL: c.opts.TTL, Flags: flags, Sequence: seq, Dst: dst, Src: src, Payload: payload}
	b, err := h.Marshal()
	if err != nil {
		return 0, fmt.Errorf("send to %s: %w", dst, err)
	}
	if err := c.sendBy(ctx, deadline, b); err != nil {
		return seq, fmt.Errorf("send to %s: %w", dst, err)
	}
	return seq, nil
}

// exchange sends h (its Sequence is set here: a fresh random id, not the
// next value of the DATA counter) and waits, for at most timeout from the
// call — the send included (Session 20) — for the reply or NAK with that
// id whose source and echo fit h.
func (c *Client) exchange(ctx context.Context, h pdu.Header, timeout time.Duration) (Message, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	ch := make(chan Message, 1)
	done, err := c.post(ctx, h, ch, t.C)
	if err != nil {
		return Message{}, err
	}
	defer done()
	select {
	case m := <-ch:
		return m, nil
	case <-t.C:
		return Message{}, ErrTimeout
	case <-ctx.Done():
		return Message{}, ctx.Err()
	case <-c.link.Done():
		return Message{}, ErrClosed
	case <-c.ctx.Done():
		return Message{}, ErrClosed
	}
}

// post sends h with a fresh random id as its Sequence; the reply or NAK
// with that id whose source and echo fit h goes to ch (dropped when ch is
// full) until done is called. The send waits at most until deadline fires
// or ctx is done (sendBy): then post fails with errSendBlocked (an
// ErrTimeout) or ctx's error.
func (c *Client) post(ctx context.Context, h pdu.Header, ch chan Message, deadline <-chan time.Time) (done func(), err error) {
	w := &waiter{
		ch: ch, typ: h.Type, dst: h.Dst, ttl: h.TTL,
		payload: h.Payload, router: c.link.Peer(),
	}
	c.mu.Lock()
	for {
		h.Sequence = randUint32()
		if c.waiters[h.Sequence] == nil {
			break
		}
	}
	w.id = h.Sequence
	c.waiters[h.Sequence] = w
	c.mu.Unlock()
	done = func() {
		c.mu.Lock()
		delete(c.waiters, w.id)
		c.mu.Unlock()
	}
	b, err := h.Marshal()
	if err == nil {
		err = c.sendBy(ctx, deadline, b)
	}
	if err != nil {
		done()
		return nil, err
	}
	return done, nil
}

// waiter is one request waiting for its answer, with what an answer must
// show to be believed (docs/PROTOCOL.md §1.9).
type waiter struct {
	ch      chan Message
	id      uint32   // the request's sequence: random per request
	typ     pdu.Type // ADVERTISE, WITHDRAW or ECHO_REQUEST
	dst     pdu.Name // the name asked
	ttl     uint8    // the TTL the request left with
	payload []byte   // the request's payload (echoed by ECHO_REPLY, in part by NAKs)
	router  pdu.Name // the attached router when the request was sent
}

// accepts reports whether h, whose sequence is w.id, is an answer w can
// believe. The id is 32 random bits only the routers on the path and the
// destination saw; on top of it the answer must come from a source that
// could have sent it:
//   - ADVERTISE_RESULT: from the attached router, for an ADVERTISE or
//     WITHDRAW (they are addressed to it and go nowhere else).
//   - ECHO_REPLY: from the name pinged, echoing the request's random
//     payload whole.
//   - NAK: echoing the request (type, source = me, destination, id, and as
//     much of the payload as a NAK carries), from the attached router — or,
//     for an ECHO_REQUEST that could leave the attached router (TTL ≥ 1),
//     from another router on the path. The client cannot tell a router's
//     name from an endpoint's, so the "another router" half rests on the
//     routers: an endpoint's PDUs must carry a name it holds as source,
//     and routers drop every NAK and ADVERTISE_RESULT an endpoint sends
//     (endpoints never originate them). A NAK "from" the destination itself
//     or from this client is not believed.
func (w *waiter) accepts(h *pdu.Header, self pdu.Name) bool {
	switch h.Type {
	case pdu.TypeAdvertiseResult:
		return (w.typ == pdu.TypeAdvertise || w.typ == pdu.TypeWithdraw) && h.Src == w.router
	case pdu.TypeEchoReply:
		return w.typ == pdu.TypeEchoRequest && h.Src == w.dst && bytes.Equal(h.Payload, w.payload)
	case pdu.TypeNAK:
		if !w.echoedBy(h.Payload, self) {
			return false
		}
		if h.Src == w.router {
			return true
		}
		return w.typ == pdu.TypeEchoRequest && w.ttl >= 1 && h.Src != w.dst && h.Src != self
	}
	return false
}

// echoedBy reports whether echo (a NAK's payload: the first bytes of the
// PDU it refused, PROTOCOL.md §1.7) is this request as sent. The TTL byte
// is not compared (routers decrement it in flight). A router may echo the
// header alone (a refused ADVERTISE), else it echoes up to pdu.MaxNAKEcho
// bytes, and the payload bytes it carries must be the request's.
func (w *waiter) echoedBy(echo []byte, self pdu.Name) bool {
	if len(echo) < pdu.HeaderLen || len(echo) > pdu.MaxNAKEcho || int(echo[1])*4 != pdu.HeaderLen {
		return false // the client's requests carry no options
	}
	if pdu.Type(echo[2]) != w.typ || binary.BigEndian.Uint32(echo[8:12]) != w.id ||
		pdu.Name(echo[12:44]) != w.dst || pdu.Name(echo[44:76]) != self {
		return false
	}
	rest := echo[pdu.HeaderLen:]
	if w.typ == pdu.TypeEchoRequest && len(rest) < min(len(w.payload), pdu.MaxNAKEcho-pdu.HeaderLen) {
		// A probe's random payload is the part of the echo a guesser
		// cannot know: a NAK about a probe must carry it.
		return false
	}
	return len(rest) <= len(w.payload) && bytes.Equal(rest, w.payload[:len(rest)])
}
