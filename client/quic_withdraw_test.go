package client

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// TestQUICTrustWithdrawnClosesConns (Session 17): a reload of the
// listener's credentials (Endpoint.Reload → SetQUICCredentials) checks the
// connections it accepted again: one whose dialer's membership still
// verifies stays up (a renewal changes nothing), one whose domain the new
// trust no longer lists — here the listener's own domain replaced by
// another key's, as after a leaked domain key — is closed, counted
// gdp_client_quic_refused_total{limit="withdrawn"}; the dialer sees its
// connection end. Real routers, tunnels and certificates.
func TestQUICTrustWithdrawnClosesConns(t *testing.T) {
	p := newQUICPair(t)
	w, x, xep, ac, nc, echo := p.w, p.x, p.xep, p.ac, p.nc, p.echo
	member, err := w.dom.Member(x.id)
	if err != nil {
		t.Fatal(err)
	}
	// A renewal under the same trust: the connection stays.
	if err := xep.Reload(member, w.dom.ID.Meta, w.dom.Verifier); err != nil {
		t.Fatal(err)
	}
	if err := echo(); err != nil {
		t.Fatalf("echo after a reload under the same trust: %v", err)
	}
	if got := x.QUICStats().Withdrawn; got != 0 {
		t.Fatalf("%d connections closed by a reload under the same trust", got)
	}
	// The own domain's key replaced: the dialer's membership (old key)
	// proves nothing now.
	newDom, err := routertest.NewDomain("the replacement domain")
	if err != nil {
		t.Fatal(err)
	}
	v := certs.NewVerifier(newDom.ID.Meta)
	v.Now = w.dom.Verifier.Now
	if err := x.SetQUICCredentials(member, w.dom.ID.Meta, v); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		side string
		nc   *NameConn
	}{{"listener", ac}, {"dialer", nc}} {
		select {
		case <-c.nc.Context().Done():
		case <-time.After(30 * time.Second):
			t.Fatalf("the %s's connection still open 30 s after the trust in the dialer's domain was withdrawn", c.side)
		}
	}
	if got := x.QUICStats().Withdrawn; got != 1 {
		t.Fatalf("withdrawn %d, want 1", got)
	}
}

// quicPair is a QUIC-over-names connection between two endpoints on
// different routers: x listens, y dials; ac is x's side, nc y's, and echo
// sends one byte from y to x and back.
type quicPair struct {
	w        *quicWorld
	x, y     *Client
	xep, yep *Endpoint
	ac, nc   *NameConn
	echo     func() error
}

func newQUICPair(t *testing.T) *quicPair {
	t.Helper()
	w := newQUICWorld(t)
	x, xep := w.endpoint(w.a, "listener")
	y, yep := w.endpoint(w.b, "dialer")
	w.reach(y, x.Name())
	w.reach(x, y.Name())
	ln, err := ListenName(x, x.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	accepted := make(chan *NameConn, 1)
	go func() {
		if c, err := ln.Accept(ctx); err == nil {
			accepted <- c
		}
	}()
	nc, err := DialName(ctx, y, x.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var ac *NameConn
	select {
	case ac = <-accepted:
	case <-time.After(30 * time.Second):
		t.Fatal("not accepted")
	}
	// echo proves the connection carries data: a stream from the dialer,
	// one byte there and back.
	go func() {
		for {
			s, err := ac.AcceptStream(ctx)
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(s, s) }()
		}
	}()
	echo := func() error {
		s, err := nc.OpenStreamSync(ctx)
		if err != nil {
			return err
		}
		if _, err := s.Write([]byte{7}); err != nil {
			return err
		}
		b := make([]byte, 1)
		_, err = io.ReadFull(s, b)
		s.CancelRead(0)
		_ = s.Close()
		return err
	}
	if err := echo(); err != nil {
		t.Fatalf("echo before the reload: %v", err)
	}
	return &quicPair{w: w, x: x, y: y, xep: xep, yep: yep, ac: ac, nc: nc, echo: echo}
}

// TestQUICTrustWithdrawnClosesDialledConns (Session 18): a reload of the
// DIALER's credentials checks the connections it dialled again, as a
// listener's does those it accepted: a renewal under the same trust keeps
// the connection carrying data; a reload that stops trusting the
// listener's domain (here the dialer's own domain key replaced) closes it
// on both sides, counted gdp_client_quic_refused_total{limit=
// "withdrawn_dialed"} once. Before, a dialled connection stayed until it
// closed on its own. Real routers, tunnels and certificates.
func TestQUICTrustWithdrawnClosesDialledConns(t *testing.T) {
	p := newQUICPair(t)
	w, y, yep := p.w, p.y, p.yep
	member, err := w.dom.Member(y.id)
	if err != nil {
		t.Fatal(err)
	}
	if err := yep.Reload(member, w.dom.ID.Meta, w.dom.Verifier); err != nil {
		t.Fatal(err)
	}
	if err := p.echo(); err != nil {
		t.Fatalf("echo after the dialer's reload under the same trust: %v", err)
	}
	if got := y.QUICStats().WithdrawnDialed; got != 0 {
		t.Fatalf("%d dialled connections closed by a reload under the same trust", got)
	}
	newDom, err := routertest.NewDomain("the replacement domain")
	if err != nil {
		t.Fatal(err)
	}
	v := certs.NewVerifier(newDom.ID.Meta)
	v.Now = w.dom.Verifier.Now
	// The closed connection stays tracked until the second reload below
	// has run: that reload must neither close nor count it again (a
	// loaded run once reloaded before it was forgotten: 2, want 1).
	forget := make(chan struct{})
	quicForgetHook = func() { <-forget }
	t.Cleanup(func() { quicForgetHook = nil })
	released := false
	release := func() {
		if !released {
			released = true
			close(forget)
		}
	}
	t.Cleanup(release)
	if err := y.SetQUICCredentials(member, w.dom.ID.Meta, v); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		side string
		nc   *NameConn
	}{{"dialer", p.nc}, {"listener", p.ac}} {
		select {
		case <-c.nc.Context().Done():
		case <-time.After(30 * time.Second):
			t.Fatalf("the %s's connection still open 30 s after the dialer stopped trusting the listener's domain", c.side)
		}
	}
	st := y.QUICStats()
	if st.WithdrawnDialed != 1 || st.Withdrawn != 0 {
		t.Fatalf("dialer's counts: withdrawn_dialed %d, withdrawn %d; want 1, 0", st.WithdrawnDialed, st.Withdrawn)
	}
	// A later reload, before the closed connection is forgotten, has
	// nothing to close; then it is forgotten.
	if err := y.SetQUICCredentials(member, w.dom.ID.Meta, certs.NewVerifier(newDom.ID.Meta)); err != nil {
		t.Fatal(err)
	}
	release()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		y.quic.mu.Lock()
		n := len(y.quic.dialled)
		y.quic.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d closed dialled connections still tracked after 30 s", n)
		}
	}
	if got := y.QUICStats().WithdrawnDialed; got != 1 {
		t.Fatalf("withdrawn_dialed %d after a second reload, want still 1", got)
	}
}

// TestQUICTrustWithdrawnDuringDial (Session 18): a reload that stops
// trusting the listener's domain while a dial's handshake is done but the
// connection not yet tracked — the reload's recheck cannot see it — still
// closes it: the dial checks it again under the credentials stored since
// the handshake verified the listener. Before, the dial compared against
// the credentials it read after the handshake (the new ones) and kept a
// connection verified only by the withdrawn trust.
func TestQUICTrustWithdrawnDuringDial(t *testing.T) {
	p := newQUICPair(t)
	w, x, y := p.w, p.x, p.y
	member, err := w.dom.Member(y.id)
	if err != nil {
		t.Fatal(err)
	}
	newDom, err := routertest.NewDomain("the replacement domain")
	if err != nil {
		t.Fatal(err)
	}
	v := certs.NewVerifier(newDom.ID.Meta)
	v.Now = w.dom.Verifier.Now
	quicDialledHook = func() {
		if err := y.SetQUICCredentials(member, w.dom.ID.Meta, v); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { quicDialledHook = nil })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nc, err := DialName(ctx, y, x.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-nc.Context().Done():
	case <-time.After(30 * time.Second):
		t.Fatal("a connection dialled under the old trust still open 30 s after a reload during its dial stopped trusting the listener's domain")
	}
	// The pair's connection, tracked before, went by the reload's recheck.
	select {
	case <-p.nc.Context().Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the earlier dialled connection still open 30 s after the reload")
	}
	if got := y.QUICStats().WithdrawnDialed; got != 2 {
		t.Fatalf("withdrawn_dialed %d, want 2 (the earlier connection and the one dialled during the reload)", got)
	}
}
