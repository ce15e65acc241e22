package resolver

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"

	"github.com/gdpnet/gdpnet/certs"
)

// TestPublishSlowPeer: a publish searches for the closest peers once (the
// put goes to the peers the gather asked) and, when one of them never
// answers its get, still leaves the put time: the gets end at half the
// time left. Before, every publish ran two searches, and a get waiting
// out the caller's deadline left the put nothing (in the simulator every
// publish at 300 routers failed that way and was redone from the start).
func TestPublishSlowPeer(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("slow")
	cv := certs.NewVerifier(d.Meta)
	c := startDHTs(t, w, d, cv, false, "slow", 5, 4, func(cfg *DHTConfig) { cfg.PutTimeout = 20 * time.Second })

	// A peer that connects and then answers nothing: no membership
	// proof (within the 10 s handshake timeout), no get, no put.
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
	quit := make(chan struct{})
	defer close(quit)
	silent := func(s network.Stream) {
		<-quit
		_ = s.Reset()
	}
	h.SetStreamHandler(DomainPrefix(d.Name)+"/kad/1.0.0", silent)
	h.SetStreamHandler(DomainPrefix(d.Name)+"/member/1.0.0", silent)

	pub := c.nodes[1]
	pub.host.Peerstore().AddAddrs(h.ID(), h.Addrs(), peerstore.PermanentAddrTTL)
	var searches atomic.Int32
	search := pub.closestPeers
	pub.closestPeers = func(ctx context.Context, key string) ([]peer.ID, error) {
		searches.Add(1)
		ps, err := search(ctx, key)
		return append(ps, h.ID()), err
	}

	name, chain := w.capsuleAt(c.routers[1], "slow peer", time.Hour)
	rec := w.location(c.routers[1], name, chain, NextSequence())
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	start := time.Now()
	if err := pub.Publish(ctx, rec); err != nil {
		t.Fatalf("publish with one silent peer among the closest (%s): %v", time.Since(start).Round(time.Millisecond), err)
	}
	if n := searches.Load(); n != 1 {
		t.Fatalf("a publish searched for the closest peers %d times, want once", n)
	}
	lctx, lcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer lcancel()
	for i, n := range c.nodes {
		if got, err := n.Lookup(lctx, name); err != nil || got.Sequence != rec.Sequence {
			t.Fatalf("node %d: lookup after the publish: %v", i, err)
		}
	}
}
