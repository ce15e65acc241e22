package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// subMessage is one WebSocket message of a subscription: "subscribed"
// first (from: the first seqno that will come), then one "record" per
// record in seqno order — every seqno from "from" on exactly once — and
// "error" before the gateway closes the stream for a reason of its own
// (reason "closing": the gateway shuts down). Only a "record" carries
// the record's fields.
type subMessage struct {
	Type string `json:"type"`
	*recordOut
	Capsule string `json:"capsule,omitempty"`
	From    uint64 `json:"from,omitempty"`
	Error   string `json:"error,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 64 << 10,
	// The gateway serves local programs, not web pages: a browser page
	// of another origin must not ride the user's socket.
	CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == "" },
}

// wsReadLimit bounds a frame a subscriber sends: it has only control
// frames and its close to send.
const wsReadLimit = 4 << 10

// wsWriteTimeout bounds one message to a subscriber: a client that does
// not read for that long is disconnected (it resumes with ?from=).
const wsWriteTimeout = 10 * time.Second

// wsPingInterval: a subscription with nothing to deliver is pinged this
// often, so a client may take 30 s of silence for a dead gateway (the
// Python example's socket timeout), and a subscriber gone without a close
// is noticed by the failed write. A variable for the tests.
var wsPingInterval = 15 * time.Second

func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) {
	name, ok := s.capsuleName(w, r)
	if !ok {
		return
	}
	from, err := queryUint(r.URL.Query().Get("from"), 0)
	if err != nil {
		s.fail(w, http.StatusBadRequest, "bad_request", fmt.Errorf("from: %w", err))
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		s.fail(w, http.StatusBadRequest, "bad_request", errors.New("subscribe wants a WebSocket upgrade (GET with Upgrade: websocket)"))
		return
	}
	if n := s.subs.Add(1); n > int64(s.conf().MaxSubscriptions) {
		s.subs.Add(-1)
		s.fail(w, http.StatusServiceUnavailable, "too_many_subscriptions", fmt.Errorf("%d subscriptions open (max_subscriptions)", n-1))
		s.m.rejected.WithLabelValues("too_many_subscriptions").Inc()
		return
	}
	defer s.subs.Add(-1)
	// Open the reader first so an unknown capsule is a plain 404.
	octx, ocancel := s.reqCtx(r)
	rd, err := s.up.Caps().NewReader(octx, name, client.ReaderOptions{})
	ocancel()
	if err != nil {
		s.overlayError(w, "subscribe", err)
		return
	}
	if from == 0 {
		from = 1
		if hb := rd.Heartbeat(); hb != nil {
			from = hb.Seqno + 1
		}
	}
	// Join s.wg under s.mu unless Close has begun (an Add racing Close's
	// Wait is a data race).
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		s.fail(w, http.StatusServiceUnavailable, "closing", errors.New("the gateway is shutting down"))
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered
	}
	defer conn.Close()
	s.m.subs.Inc()
	defer s.m.subs.Dec()
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	// The client's side: control frames, and the close that ends it. It
	// has nothing to send beyond those, so a bigger frame is refused before
	// it is read whole (the WebSocket closes with 1009 "message too big",
	// counted too_large), however long a frame the client announces.
	conn.SetReadLimit(wsReadLimit)
	go func() {
		defer cancel()
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				if errors.Is(err, websocket.ErrReadLimit) {
					s.m.rejected.WithLabelValues("too_large").Inc()
				}
				return
			}
		}
	}()
	go func() {
		t := time.NewTicker(wsPingInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteTimeout)) != nil {
					cancel() // the subscriber is gone
					return
				}
			}
		}
	}()
	f := &follower{s: s, conn: conn, rd: rd, name: name, next: from}
	if err := f.send(subMessage{Type: "subscribed", Capsule: name.String(), From: from}); err != nil {
		return
	}
	err = f.run(ctx)
	if s.ctx.Err() != nil {
		// The gateway shuts down (SIGTERM, a restart): say so, and where
		// to resume, rather than end as if the stream were over.
		_ = f.send(subMessage{Type: "error", Error: fmt.Sprintf("the gateway is shutting down: subscribe again with from=%d once it is back", f.next), Reason: "closing"})
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "gateway shutting down"), time.Now().Add(time.Second))
		return
	}
	if err != nil && ctx.Err() == nil {
		s.log.Warn("subscription ended", logging.Capsule(name), logging.Seqno(f.next), zap.Error(err))
		_ = f.send(subMessage{Type: "error", Error: err.Error(), Reason: "overlay_error"})
	}
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
}

// follower feeds one WebSocket from a capsule subscription: every seqno
// from next on, once, in order. A push that skips ahead is filled by a
// verified read first; entries already sent are dropped. Across an uplink
// re-attachment the subscription carries on: the routers hold the pushes
// for the gateway's session name until they learn where it went, and a
// push lost on the way shows as a gap at the next one (client.Subscription
// subscribes again from the gap).
type follower struct {
	s    *Server
	conn *websocket.Conn
	rd   *client.Reader
	name pdu.Name
	next uint64
}

func (f *follower) send(m subMessage) error {
	_ = f.conn.SetWriteDeadline(time.Now().Add(wsWriteTimeout))
	return f.conn.WriteJSON(m)
}

// deliver sends e if it is the next one; it fills a gap before it by a
// read.
func (f *follower) deliver(ctx context.Context, e capsule.Record) error {
	if e.Seqno < f.next {
		return nil // sent already
	}
	if e.Seqno > f.next {
		if err := f.fill(ctx, e.Seqno-1); err != nil {
			return err
		}
	}
	if err := f.send(subMessage{Type: "record", recordOut: ptr(toOut(e))}); err != nil {
		return err
	}
	f.s.m.sent.Inc()
	f.next = e.Seqno + 1
	return nil
}

// fill reads [next, to] and sends it.
func (f *follower) fill(ctx context.Context, to uint64) error {
	return f.rd.Scan(ctx, f.next, to, func(e capsule.Record) error {
		if e.Seqno != f.next {
			return fmt.Errorf("fill: %w: got %d, want %d", capsule.ErrBadProof, e.Seqno, f.next)
		}
		if err := f.send(subMessage{Type: "record", recordOut: ptr(toOut(e))}); err != nil {
			return err
		}
		f.s.m.sent.Inc()
		f.next++
		return nil
	})
}

func (f *follower) run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		sub, err := f.rd.Subscribe(ctx, f.next)
		if err != nil {
			// The uplink may be down: try again until it is back.
			f.s.log.Info("subscribe failed; retrying", logging.Capsule(f.name), zap.Error(err))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		f.s.liveMu.Lock()
		f.s.live[sub] = struct{}{}
		f.s.liveMu.Unlock()
		err = f.follow(ctx, sub)
		f.s.liveMu.Lock()
		delete(f.s.live, sub)
		f.s.liveMu.Unlock()
		_ = sub.Close()
		if errors.Is(err, errAgain) {
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// errAgain: the subscription broke off; subscribe again after a pause.
var errAgain = errors.New("subscribe again")

// follow delivers the subscription's events until ctx ends (nil), the
// subscription breaks off (errAgain) or delivery fails.
func (f *follower) follow(ctx context.Context, sub *client.Subscription) error {
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// A subscription that cannot go on (the replica refused a
			// renewal, a page did not verify): subscribe again.
			f.s.log.Info("subscription interrupted; subscribing again", logging.Capsule(f.name), logging.Seqno(f.next), zap.Error(err))
			return errAgain
		}
		for _, e := range ev.Entries {
			if err := f.deliver(ctx, e); err != nil {
				return err
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }
