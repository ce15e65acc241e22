package resolver

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	kad "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/gdpnet/gdpnet/certs"
)

// TestSilentIntruderCannotRead: a plain kad-dht client that speaks the
// domain's DHT protocol but never shows a membership (it does not even
// know the handshake) gets no answer: its requests are held, then reset,
// and it is disconnected.
func TestSilentIntruderCannotRead(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("silent")
	cv := certs.NewVerifier(d.Meta)
	c := startDHTs(t, w, d, cv, false, "silent", 3, 2, func(cfg *DHTConfig) { cfg.HandshakeTimeout = time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	name, chain := w.capsuleAt(c.routers[0], "secret", time.Hour)
	if err := c.nodes[0].Publish(ctx, w.location(c.routers[0], name, chain, NextSequence())); err != nil {
		t.Fatal(err)
	}

	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"),
		libp2p.Transport(libp2pquic.NewTransport), libp2p.DisableRelay(), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	spy, err := kad.New(h, kad.Mode(kad.ModeClient), kad.ProtocolPrefix(DomainPrefix(d.Name)),
		kad.Validator(record.NamespacedValidator{recordNamespace: bareValidator{}}), kad.DisableProviders())
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Close()
	target := c.nodes[1]
	m, err := ma.NewMultiaddr(target.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	info, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctx, *info); err != nil {
		t.Fatal(err) // connecting is allowed: the proof is asked for afterwards
	}
	gctx, gcancel := context.WithTimeout(ctx, 5*time.Second)
	defer gcancel()
	if v, err := spy.GetValue(gctx, dhtKey(name), kad.Quorum(1)); err == nil {
		t.Fatalf("a non-member read the record (%d bytes)", len(v))
	}
	if target.kad.RoutingTable().Find(h.ID()) != "" {
		t.Error("the non-member is in the target's routing table")
	}
	for deadline := time.Now().Add(3 * time.Second); !target.gate.isDenied(h.ID()); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the target does not refuse the silent peer")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(h.Network().ConnsToPeer(target.PeerID())) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the non-member is still connected after the handshake timeout")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
