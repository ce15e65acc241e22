package client

import (
	"errors"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/router/routertest"
	"github.com/gdpnet/gdpnet/tunnel"
)

// TestEndpointReloadClosesWithdrawnRouterLink (Session 18): a client
// endpoint's reload that no longer trusts its router's domain — a gateway
// at a partner's edge router whose trusted_domains entry was removed, here
// the own domain's key replaced — closes the router link at once, refused
// (tunnel.ErrPeerRefused); a reload under the same trust keeps it. Before,
// the link verified under the old trust stayed until it dropped or the
// router renewed its membership. Real routers, tunnels and certificates.
func TestEndpointReloadClosesWithdrawnRouterLink(t *testing.T) {
	w := newQUICWorld(t)
	x, xep := w.endpoint(w.a, "x")
	member, err := w.dom.Member(x.id)
	if err != nil {
		t.Fatal(err)
	}
	if err := xep.Reload(member, w.dom.ID.Meta, w.dom.Verifier); err != nil {
		t.Fatal(err)
	}
	if err := x.link.(tunnel.Link).Err(); err != nil {
		t.Fatalf("a reload under the same trust closed the router link: %v", err)
	}
	newDom, err := routertest.NewDomain("the replacement domain")
	if err != nil {
		t.Fatal(err)
	}
	v := certs.NewVerifier(newDom.ID.Meta)
	v.Now = w.dom.Verifier.Now
	if err := xep.Reload(member, w.dom.ID.Meta, v); err != nil {
		t.Fatal(err)
	}
	select {
	case <-x.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the router link still open 30 s after a reload that no longer trusts the router's domain")
	}
	if err := x.link.(tunnel.Link).Err(); !errors.Is(err, tunnel.ErrPeerRefused) {
		t.Fatalf("router link closed with %v, want refused", err)
	}
}
