package handoffd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// Stream carries one handoff: the sender writes frames, the receiver
// answers on the same stream. Close ends it in an orderly way (the peer
// reads every byte written before).
type Stream interface {
	io.ReadWriteCloser
}

// Listener hands the agent one stream per incoming handoff. The agent is
// given it (transports are injected): over the overlay (OverlayListener)
// in deployment, plain TCP in tests of the pipeline alone.
type Listener interface {
	Accept(ctx context.Context) (Stream, string, error) // stream, peer
	Close() error
}

// overlayStream is a QUIC stream of a connection over names.
type overlayStream struct {
	*quic.Stream
	conn *client.NameConn
}

// ErrAgentSilent: the handoff's QUIC connection heard nothing from the
// agent (not even the acknowledgement of a keepalive) for SenderIdleTimeout
// — the agent ended, restarted or is cut off.
var ErrAgentSilent = errors.New("the destination agent stopped answering")

// SenderIdleTimeout and SenderKeepAlive are the QUIC idle timeout and
// keepalive of the sender's connection to an agent (DialOverlay), shorter
// than QUIC over names' defaults (30 s, 10 s): a live agent acknowledges a
// keepalive within a round trip whatever its disk is doing, so a second
// of keepalive and five of silence tell a dead agent from a busy one, and
// the sender says so in seconds instead of 30. They are this connection's
// only (QUIC takes the lower of both ends' idle timeouts for it); tunnels
// and other QUIC connections keep theirs.
const (
	SenderIdleTimeout = 5 * time.Second
	SenderKeepAlive   = time.Second
)

func (s *overlayStream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	return n, silent(err)
}

func (s *overlayStream) Write(p []byte) (int, error) {
	n, err := s.Stream.Write(p)
	return n, silent(err)
}

// silent names a QUIC idle timeout for what it means to a handoff.
func silent(err error) error {
	var idle *quic.IdleTimeoutError
	if errors.As(err, &idle) {
		return fmt.Errorf("%w: no packet from it in %s (ended, restarted or cut off): %w", ErrAgentSilent, SenderIdleTimeout, err)
	}
	return err
}

// Close sends FIN, waits (bounded) until the peer has read everything and
// closed its side, then closes the connection: closing it at once could
// drop the last frames still in flight.
func (s *overlayStream) Close() error {
	err := s.Stream.Close()
	s.Stream.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, s.Stream)
	s.conn.CloseWithError(0, "")
	return err
}

// OverlayListener accepts handoffs over QUIC over names (client.ListenName):
// one connection per handoff, its first stream. Each connection waits for
// its first stream (at most streamWait) on a goroutine of its own: a peer
// that connects and never opens one holds a slot of the name listener's
// per-peer bound (max_conns_per_peer), never the handoffs of others.
func OverlayListener(ln *client.NameListener) Listener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &overlayListener{ln: ln, ctx: ctx, cancel: cancel, ready: make(chan acceptedStream)}
	// Started here, not at the first Accept: Close's Wait then never runs
	// beside the WaitGroup's first Add (a listener closed before any
	// Accept), which the WaitGroup does not allow.
	l.wg.Add(1)
	go l.acceptConns()
	return l
}

// streamWait bounds how long an accepted connection may take to open its
// handoff stream.
const streamWait = 30 * time.Second

type overlayListener struct {
	ln     *client.NameListener
	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	ready  chan acceptedStream
	wg     sync.WaitGroup
}

type acceptedStream struct {
	st   Stream
	peer string
	err  error // the name listener failed: Accept returns it
}

func (l *overlayListener) Accept(ctx context.Context) (Stream, string, error) {
	select {
	case a := <-l.ready:
		return a.st, a.peer, a.err
	case <-ctx.Done():
		return nil, "", ctx.Err()
	case <-l.ctx.Done():
		return nil, "", net.ErrClosed
	}
}

// acceptConns takes connections until the name listener fails or the
// listener is closed, and starts the wait for each one's first stream.
func (l *overlayListener) acceptConns() {
	defer l.wg.Done()
	for {
		nc, err := l.ln.Accept(l.ctx)
		if err != nil {
			select {
			case l.ready <- acceptedStream{err: err}:
			case <-l.ctx.Done():
			}
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			actx, cancel := context.WithTimeout(l.ctx, streamWait)
			st, err := nc.AcceptStream(actx)
			cancel()
			if err != nil {
				nc.CloseWithError(0, "no stream")
				return
			}
			select {
			case l.ready <- acceptedStream{st: &overlayStream{Stream: st, conn: nc}, peer: nc.Peer().String()}:
			case <-l.ctx.Done():
				nc.CloseWithError(0, "closing")
			}
		}()
	}
}

// Close stops taking connections and waits for the goroutines it started;
// connections still waiting for their stream are closed.
func (l *overlayListener) Close() error {
	l.cancel()
	err := l.ln.Close()
	l.wg.Wait()
	return err
}

// DialOverlay opens a handoff stream to the agent named name over the
// overlay (client.DialName). Unless cfg sets them, the connection's idle
// timeout and keepalive are SenderIdleTimeout and SenderKeepAlive: a dead
// agent fails the handoff with ErrAgentSilent within seconds.
func DialOverlay(ctx context.Context, c *client.Client, name pdu.Name, cfg *client.QUICConfig) (Stream, error) {
	var o client.QUICConfig
	if cfg != nil {
		o = *cfg
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = SenderIdleTimeout
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = SenderKeepAlive
	}
	nc, err := client.DialName(ctx, c, name, &o)
	if err != nil {
		return nil, fmt.Errorf("dial agent %s: %w", name, err)
	}
	st, err := nc.OpenStreamSync(ctx)
	if err != nil {
		nc.CloseWithError(0, "")
		return nil, fmt.Errorf("dial agent %s: open stream: %w", name, err)
	}
	return &overlayStream{Stream: st, conn: nc}, nil
}

// TCPListener accepts handoffs over plain TCP (tests, and two cloudlets on
// one trusted LAN without the overlay).
func TCPListener(ln net.Listener) Listener { return &tcpListener{ln} }

type tcpListener struct{ ln net.Listener }

func (l *tcpListener) Accept(ctx context.Context) (Stream, string, error) {
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := l.ln.Accept(); ch <- res{c, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, "", r.err
		}
		// One peer per host: a sender's every connection comes from a new port.
		peer := r.c.RemoteAddr().String()
		if h, _, err := net.SplitHostPort(peer); err == nil {
			peer = h
		}
		return r.c, peer, nil
	case <-ctx.Done():
		l.ln.Close()
		return nil, "", ctx.Err()
	}
}

func (l *tcpListener) Close() error { return l.ln.Close() }
