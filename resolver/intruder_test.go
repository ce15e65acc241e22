package resolver

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	kad "github.com/libp2p/go-libp2p-kad-dht"
	kadpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

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

// TestIntruderCannotReadOrWrite (issue 9 item 4): plain kad-dht clients
// without a membership — three fresh peer ids — send PUT_VALUE (a record
// that would pass the validator: a genuine router signed it) and GET_VALUE
// (for a name a member published) straight to a member node. Nothing is
// stored and nothing is read: the kad-dht handler never runs for a peer
// that has not proved membership. Members still put and read meanwhile.
func TestIntruderCannotReadOrWrite(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("writer-intruder")
	cv := certs.NewVerifier(d.Meta)
	c := startDHTs(t, w, d, cv, false, "wintr", 3, 2, func(cfg *DHTConfig) { cfg.HandshakeTimeout = time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	secret, chain := w.capsuleAt(c.routers[0], "wintr secret", time.Hour)
	if err := c.nodes[0].Publish(ctx, w.location(c.routers[0], secret, chain, NextSequence())); err != nil {
		t.Fatal(err)
	}
	target := c.nodes[1]
	m, err := ma.NewMultiaddr(target.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	info, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		t.Fatal(err)
	}
	refused0 := counterValue(target.metrics.rejectedRq)

	for i := range 3 {
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
		msgr, err := kadpb.NewProtocolMessenger(spy.MessageSender())
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Connect(ctx, *info); err != nil {
			t.Fatal(err)
		}
		// A valid record set for a fresh name: only the gate can stop it.
		name, ch := w.capsuleAt(c.routers[0], fmt.Sprintf("wintr junk %d", i), time.Hour)
		value, err := MarshalSet([]*Record{w.location(c.routers[0], name, ch, NextSequence())})
		if err != nil {
			t.Fatal(err)
		}
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		putErr := msgr.PutValue(rctx, target.PeerID(), record.MakePutRecord(dhtKey(name), value))
		got, _, getErr := msgr.GetValue(rctx, target.PeerID(), dhtKey(secret))
		rcancel()
		if putErr == nil {
			t.Errorf("intruder %d: PUT_VALUE acknowledged", i)
		}
		if getErr == nil && got != nil {
			t.Errorf("intruder %d: GET_VALUE answered with a %d-byte record", i, len(got.GetValue()))
		}
		// A handler that ran after the reset stores a moment later: look
		// for a while before concluding nothing was stored.
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if r, err := target.local.Get(ctx, dhtKey(name)); err == nil && r != nil {
				t.Fatalf("intruder %d (peer %s) stored a value at a member node", i, h.ID())
			}
		}
	}
	if got := counterValue(target.metrics.rejectedRq) - refused0; got < 3 {
		t.Errorf("dht_requests_refused_total rose by %v, want ≥ 3", got)
	}
	// Members are unaffected: a put through the target and a read of it.
	name, ch := w.capsuleAt(c.routers[2], "wintr honest", time.Hour)
	if err := c.nodes[2].Publish(ctx, w.location(c.routers[2], name, ch, NextSequence())); err != nil {
		t.Fatalf("member publish: %v", err)
	}
	if r, err := target.local.Get(ctx, dhtKey(name)); err != nil || r == nil {
		t.Errorf("the member's put is not stored at the target: %v", err)
	}
	if _, err := c.nodes[0].Lookup(ctx, name); err != nil {
		t.Errorf("member lookup: %v", err)
	}
	if _, err := target.Lookup(ctx, secret); err != nil {
		t.Errorf("member lookup of the first record: %v", err)
	}
}

// counterValue reads a counter (zero if it cannot be read).
func counterValue(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 64)
	c.Collect(ch)
	close(ch)
	var sum float64
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) == nil {
			sum += d.GetCounter().GetValue()
		}
	}
	return sum
}
