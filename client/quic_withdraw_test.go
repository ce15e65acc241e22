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
	w := newQUICWorld(t)
	x, xep := w.endpoint(w.a, "listener")
	y, _ := w.endpoint(w.b, "dialer")
	w.reach(y, x.Name())
	w.reach(x, y.Name())
	ln, err := ListenName(x, x.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
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
