package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/certs"
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
	// are dropped (counted). Default 1024.
	InboxSize int
	// RtCertLifetime is the validity of the RtCerts the client issues.
	// Default 1h.
	RtCertLifetime time.Duration
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
	waiters map[uint32]chan Message
	held    map[pdu.Name]bool
	routes  map[pdu.Name]Route // advertised and not withdrawn: re-advertised after a re-attach
	relinks chan struct{}      // a re-attach happened (AttachAny)

	inbox   chan Message
	Dropped atomic.Uint64 // DATA PDUs dropped because the inbox was full
	Unsent  atomic.Uint64 // PDUs dropped while re-attaching (AttachAny)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a client for identity id attached over link. Feed it the
// PDUs the link delivers with HandlePDU.
func New(id *certs.Identity, link Link, opts Options) *Client {
	opts = opts.withDefaults()
	c := &Client{
		id:      id,
		link:    link,
		opts:    opts,
		log:     opts.Logger,
		waiters: make(map[uint32]chan Message),
		held:    map[pdu.Name]bool{id.Name: true},
		routes:  make(map[pdu.Name]Route),
		relinks: make(chan struct{}, 1),
		inbox:   make(chan Message, opts.InboxSize),
	}
	c.seq.Store(rand.Uint32())
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// Name is the client's own name.
func (c *Client) Name() pdu.Name { return c.id.Name }

// Router is the name of the router the client is attached to.
func (c *Client) Router() pdu.Name { return c.link.Peer() }

// Done is closed when the link to the router goes down.
func (c *Client) Done() <-chan struct{} { return c.link.Done() }

// Close stops the client's background work (renewals) and closes the link.
func (c *Client) Close() error {
	c.cancel()
	c.wg.Wait()
	return c.link.Close()
}

func (c *Client) nextSeq() uint32 { return c.seq.Add(1) }

// nextAdvSeq returns the sequence of the next ADVERTISE or WITHDRAW: the
// clock in Unix nanoseconds, bumped to stay strictly increasing.
func (c *Client) nextAdvSeq() uint64 {
	c.advMu.Lock()
	defer c.advMu.Unlock()
	s := uint64(time.Now().UnixNano())
	if s <= c.advSeq {
		s = c.advSeq + 1
	}
	c.advSeq = s
	return s
}

// HandlePDU processes one PDU from the router; p is valid only during the
// call. Replies (ADVERTISE_RESULT, ECHO_REPLY, NAK) go to the request
// waiting for their sequence number; ECHO_REQUESTs for a held name are
// answered; DATA goes to Receive.
func (c *Client) HandlePDU(p []byte) {
	var h pdu.Header
	if err := pdu.Decode(p, &h); err != nil {
		return
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
			m.Payload = append([]byte(nil), h.Payload...)
			select {
			case w <- m:
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
	m.Payload = append([]byte(nil), h.Payload...)
	select {
	case c.inbox <- m:
	default:
		c.Dropped.Add(1)
	}
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
		_ = c.link.Send(b)
	}
}

// Receive returns the next DATA PDU (or a NAK no request was waiting for).
func (c *Client) Receive(ctx context.Context) (Message, error) {
	select {
	case m := <-c.inbox:
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

// SendFrom sends a DATA PDU from src (the client's name or one it
// advertised) with the given flags.
func (c *Client) SendFrom(src, dst pdu.Name, flags pdu.Flags, payload []byte) (uint32, error) {
	seq := c.nextSeq()
	h := pdu.Header{Type: pdu.TypeData, TTL: c.opts.TTL, Flags: flags, Sequence: seq, Dst: dst, Src: src, Payload: payload}
	b, err := h.Marshal()
	if err != nil {
		return 0, fmt.Errorf("send to %s: %w", dst, err)
	}
	if err := c.link.Send(b); err != nil {
		return 0, fmt.Errorf("send to %s: %w", dst, err)
	}
	return seq, nil
}

// exchange sends h (its Sequence is set here) and waits for the reply or
// NAK with the same sequence, for at most timeout.
func (c *Client) exchange(ctx context.Context, h pdu.Header, timeout time.Duration) (Message, error) {
	h.Sequence = c.nextSeq()
	w := make(chan Message, 1)
	c.mu.Lock()
	c.waiters[h.Sequence] = w
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiters, h.Sequence)
		c.mu.Unlock()
	}()
	b, err := h.Marshal()
	if err != nil {
		return Message{}, err
	}
	if err := c.link.Send(b); err != nil {
		return Message{}, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case m := <-w:
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
