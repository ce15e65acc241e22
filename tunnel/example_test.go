package tunnel_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/tunnel"
)

// Two routers of one trust domain open a raw link and exchange a PDU.
func Example() {
	domain, _ := certs.NewIdentity(certs.KindDomain, "example domain")
	verifier := tunnel.CertVerifier(certs.NewVerifier(domain.Meta))
	node := func(got chan<- string) *tunnel.Endpoint {
		id, _ := certs.NewIdentity(certs.KindRouter, "example router")
		member, _ := certs.IssueMember(domain, id.Name, time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
		quicConn, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		rawConn, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		ep, err := tunnel.NewEndpoint(tunnel.Config{
			Identity: tunnel.CertIdentity(id, member, domain.Meta),
			Verify:   verifier,
			Conn:     quicConn,
			Raw:      rawConn,
			Handler: func(l tunnel.Link, p []byte) {
				got <- string(p) // p is only valid during the call
			},
		})
		if err != nil {
			panic(err)
		}
		return ep
	}
	received := make(chan string, 1)
	a, b := node(nil), node(received)
	defer a.Close()
	defer b.Close()

	ctx := context.Background()
	link, err := a.Dial(ctx, b.Addr(), b.Name(), tunnel.KindRaw)
	if err != nil {
		panic(err)
	}
	peer, _ := b.Accept(ctx)
	link.Send([]byte("hello over raw GDP-in-UDP"))
	fmt.Println(<-received)
	fmt.Println(peer.Peer() == a.Name(), link.Peer() == b.Name())
	// Output:
	// hello over raw GDP-in-UDP
	// true true
}
