package client

import (
	"testing"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router/routertest"
	"github.com/gdpnet/gdpnet/tunnel"
)

// TestQUICDomainLimit (Session 13): a listener learns the domain a
// dialer's certificate proves membership of (its own: none), and keeps the
// members of one other domain to max_conns_per_domain connections all
// together — that domain's operator mints identities at will, each with
// max_conns_per_peer; 64 of them took all of max_conns. The excess is
// counted (limit="domain"); the listener's own domain and a third domain
// are not held back, and a closed connection gives its place back.
func TestQUICDomainLimit(t *testing.T) {
	own, err := routertest.NewDomain("own")
	if err != nil {
		t.Fatal(err)
	}
	partner, err := routertest.NewDomain("partner")
	if err != nil {
		t.Fatal(err)
	}
	third, err := routertest.NewDomain("third")
	if err != nil {
		t.Fatal(err)
	}
	cr := &quicCreds{verify: tunnel.CertVerifier(certs.NewVerifier(own.ID.Meta, partner.ID.Meta, third.ID.Meta)), domain: own.ID.Meta.Name()}
	// dial is a member of d as the listener sees it: the name and domain
	// its certificate proves.
	dial := func(d *routertest.Domain) (peer, domain pdu.Name) {
		t.Helper()
		id, err := certs.NewIdentity(certs.KindClient, "member")
		if err != nil {
			t.Fatal(err)
		}
		m, err := d.Member(id)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tunnel.TLSCertificate(tunnel.CertIdentity(id, m, d.ID.Meta))
		if err != nil {
			t.Fatal(err)
		}
		peer, domain, err = dialerName(cert.Certificate, cr)
		if err != nil || peer != id.Name {
			t.Fatalf("dialer %s: %s, %v", id.Name, peer, err)
		}
		return peer, domain
	}
	if _, d := dial(own); !d.IsZero() {
		t.Fatalf("a member of the listener's own domain shown as of domain %s", d)
	}
	if _, d := dial(partner); d != partner.ID.Meta.Name() {
		t.Fatalf("a partner's member shown as of domain %s, want %s", d, partner.ID.Meta.Name())
	}
	l := &NameListener{c: &Client{}, cfg: (&QUICConfig{MaxConnsPerDomain: 3}).withDefaults(), perPeer: map[pdu.Name]int{}, perDomain: map[pdu.Name]int{}}
	type conn struct{ peer, domain pdu.Name }
	var held []conn
	accepted := 0
	for range 50 { // 50 identities of the partner domain, one connection each
		p, d := dial(partner)
		if reason, ok := l.admit(p, d); ok {
			accepted++
			held = append(held, conn{p, d})
		} else if reason != "max_conns_per_domain" {
			t.Fatalf("refused %s, want max_conns_per_domain", reason)
		}
	}
	if accepted != 3 || l.c.QUICStats().RefusedDomainLimit != 47 {
		t.Fatalf("50 partner identities: %d accepted, %d refused for the domain; want 3, 47", accepted, l.c.QUICStats().RefusedDomainLimit)
	}
	for range 10 {
		if p, d := dial(own); !okAdmit(l, p, d) {
			t.Fatal("a member of the listener's own domain refused")
		}
	}
	if p, d := dial(third); !okAdmit(l, p, d) {
		t.Fatal("a third domain's member refused")
	}
	l.release(held[0].peer, held[0].domain)
	if p, d := dial(partner); !okAdmit(l, p, d) {
		t.Fatal("a partner's member refused after one of its domain's connections closed")
	}
}

func okAdmit(l *NameListener, peer, domain pdu.Name) bool {
	_, ok := l.admit(peer, domain)
	return ok
}

// TestQUICListenerAdmit (Session 14): Accept decides the limits (the
// handshake's early check of max_conns_per_peer can be raced by a peer's
// concurrent handshakes): a peer at max_conns_per_peer and anyone once
// max_conns are open are refused and counted by limit, and every
// connection closed gives its place back, forgetting a peer and a domain
// with none left (mutants: admit's peer and total checks skipped or
// off by one; release keeping a peer or domain at zero).
func TestQUICListenerAdmit(t *testing.T) {
	l := &NameListener{c: &Client{}, cfg: (&QUICConfig{MaxConnsPerPeer: 2, MaxConns: 4, MaxConnsPerDomain: 10}).withDefaults(),
		perPeer: map[pdu.Name]int{}, perDomain: map[pdu.Name]int{}}
	p, q, dom := pdu.Name{'p'}, pdu.Name{'q'}, pdu.Name{'d'}
	for i := range 2 {
		if reason, ok := l.admit(p, dom); !ok {
			t.Fatalf("p's connection %d refused: %s", i+1, reason)
		}
	}
	if reason, ok := l.admit(p, dom); ok || reason != "max_conns_per_peer" {
		t.Fatalf("p's third connection: %q %v, want refused max_conns_per_peer", reason, ok)
	}
	for i := range 2 {
		if reason, ok := l.admit(q, pdu.Name{}); !ok {
			t.Fatalf("q's connection %d refused: %s", i+1, reason)
		}
	}
	if reason, ok := l.admit(pdu.Name{'r'}, pdu.Name{}); ok || reason != "max_conns" {
		t.Fatalf("a fifth connection, 4 open: %q %v, want refused max_conns", reason, ok)
	}
	st := l.c.QUICStats()
	if st.RefusedPeerLimit != 1 || st.RefusedTotalLimit != 1 {
		t.Fatalf("refused: %d per peer, %d total; want 1, 1", st.RefusedPeerLimit, st.RefusedTotalLimit)
	}
	l.release(p, dom)
	if _, ok := l.admit(pdu.Name{'r'}, pdu.Name{}); !ok {
		t.Fatal("a connection closed: its place not given back")
	}
	l.release(p, dom)
	l.release(q, pdu.Name{})
	l.release(q, pdu.Name{})
	l.release(pdu.Name{'r'}, pdu.Name{})
	if len(l.perPeer) != 0 || len(l.perDomain) != 0 || l.total != 0 {
		t.Fatalf("all closed: %d peers, %d domains kept, total %d", len(l.perPeer), len(l.perDomain), l.total)
	}
}
