package resolver

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gdpnet/gdpnet/certs"
)

// freeUDPPort is a loopback UDP port nothing listens on (now).
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func p2pAddr(t *testing.T, id *certs.Identity, port int) string {
	t.Helper()
	priv, err := crypto.UnmarshalEd25519PrivateKey(id.Key)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1/p2p/%s", port, pid)
}

// TestBootstrapPeersDialledAtOnce: a node whose first four bootstrap
// peers never answer (UDP sockets that read and say nothing; libp2p gives
// up on each after its handshake timeout, ~5 s) joins through the fifth
// after one such wait, not four in a row.
func TestBootstrapPeersDialledAtOnce(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("boot")
	cv := certs.NewVerifier(d.Meta)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	seed := w.router(d, "boot seed")
	a, err := NewDHT(ctx, DHTConfig{Identity: seed.id, Member: seed.member, Domain: d.Meta, Certs: cv})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var boot []string
	for i := range 4 {
		silent, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
		go func() {
			buf := make([]byte, 2048)
			for {
				if _, _, err := silent.ReadFrom(buf); err != nil {
					return
				}
			}
		}()
		ghost := w.router(d, fmt.Sprintf("boot ghost %d", i))
		boot = append(boot, p2pAddr(t, ghost.id, silent.LocalAddr().(*net.UDPAddr).Port))
	}
	boot = append(boot, a.Addrs()...)
	r := w.router(d, "boot joiner")
	start := time.Now()
	b, err := NewDHT(ctx, DHTConfig{Identity: r.id, Member: r.member, Domain: d.Meta, Certs: cv, Bootstrap: boot,
		HandshakeTimeout: 30 * time.Second, PutTimeout: 60 * time.Second})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	t.Logf("joined in %s past four silent bootstrap peers", took.Round(time.Millisecond))
	if took >= 14*time.Second {
		t.Errorf("join took %s: the silent peers were waited for one after the other", took)
	}
	if b.AdmittedCount() < 1 {
		t.Errorf("admitted %d peers, want the seed", b.AdmittedCount())
	}
}

// TestBootstrapRetried: a node whose only bootstrap peer is not up yet
// keeps trying for BootstrapTimeout and joins once the peer starts; with
// the default (0) it fails at once, as before.
func TestBootstrapRetried(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("retry")
	cv := certs.NewVerifier(d.Meta)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	seed := w.router(d, "retry seed")
	port := freeUDPPort(t)
	boot := []string{p2pAddr(t, seed.id, port)}

	r0 := w.router(d, "retry impatient")
	if n, err := NewDHT(ctx, DHTConfig{Identity: r0.id, Member: r0.member, Domain: d.Meta, Certs: cv, Bootstrap: boot}); err == nil {
		n.Close()
		t.Fatal("joined through a bootstrap peer that is not up")
	}

	seedUp := make(chan *DHT, 1)
	go func() {
		time.Sleep(3 * time.Second)
		a, err := NewDHT(ctx, DHTConfig{Identity: seed.id, Member: seed.member, Domain: d.Meta, Certs: cv,
			Listen: []string{fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", port)}})
		if err != nil {
			t.Errorf("seed: %v", err)
		}
		seedUp <- a
	}()
	r := w.router(d, "retry patient")
	b, err := NewDHT(ctx, DHTConfig{Identity: r.id, Member: r.member, Domain: d.Meta, Certs: cv, Bootstrap: boot,
		BootstrapTimeout: 60 * time.Second})
	if a := <-seedUp; a != nil {
		defer a.Close()
	}
	if err != nil {
		t.Fatalf("with bootstrap_timeout 60s: %v", err)
	}
	defer b.Close()
	if b.AdmittedCount() < 1 {
		t.Errorf("admitted %d peers, want the seed", b.AdmittedCount())
	}
}

// TestSeededJoin: a node that joins seeded connects to its bootstrap
// peers and no one else (no routing table refresh at start), yet its
// publishes and lookups reach the nodes it was not seeded with; a node
// joining the default way (refresh) with the same two peers dials the
// rest of the DHT; and a seeded node's periodic refresh still runs.
func TestSeededJoin(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("seeded")
	cv := certs.NewVerifier(d.Meta)
	c := startDHTs(t, w, d, cv, false, "seeded", 6, 5, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	boot := append(c.nodes[0].Addrs(), c.nodes[1].Addrs()...)
	join := func(label string, mod func(*DHTConfig)) (*DHT, *routerFx) {
		t.Helper()
		r := w.router(d, label)
		cfg := DHTConfig{Identity: r.id, Member: r.member, Domain: d.Meta, Certs: cv, Bootstrap: boot,
			HandshakeTimeout: 10 * time.Second, MinPuts: 3}
		mod(&cfg)
		n, err := NewDHT(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n, r
	}
	peers := func(n *DHT) int { return len(n.host.Network().Peers()) }

	s, sr := join("seeded joiner", func(c *DHTConfig) { c.Join = JoinSeeded })
	time.Sleep(2 * time.Second) // a refresh, if one ran, dials within this
	if got := peers(s); got != 2 {
		t.Fatalf("seeded join: connected to %d peers, want its 2 bootstrap peers only", got)
	}
	if got := s.PeerCount(); got != 2 {
		t.Errorf("seeded join: routing table holds %d peers, want 2", got)
	}
	// Its lookups and publishes reach beyond its seeds.
	name, chain := w.capsuleAt(c.routers[5], "far", time.Hour)
	if err := c.nodes[5].Publish(ctx, w.location(c.routers[5], name, chain, NextSequence())); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Lookup(ctx, name); err != nil || got.Router() != c.routers[5].id.Name {
		t.Fatalf("seeded node's lookup of a name node 5 published: %v, %v", got, err)
	}
	own, ownChain := w.capsuleAt(sr, "own", time.Hour)
	if err := s.Publish(ctx, w.location(sr, own, ownChain, NextSequence())); err != nil {
		t.Fatal(err)
	}
	for i, n := range c.nodes {
		if got, err := n.Lookup(ctx, own); err != nil || got.Router() != sr.id.Name {
			t.Fatalf("node %d's lookup of the seeded node's name: %v, %v", i, got, err)
		}
	}

	// The default join, through the same two peers, dials the others.
	r, _ := join("refresh joiner", func(*DHTConfig) {})
	for peers(r) <= 2 {
		if ctx.Err() != nil {
			t.Fatalf("refresh join: still %d peers after the refresh", peers(r))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A seeded node refreshes every RefreshInterval.
	p, _ := join("seeded refresher", func(c *DHTConfig) { c.Join, c.RefreshInterval = JoinSeeded, time.Second })
	for peers(p) <= 2 {
		if ctx.Err() != nil {
			t.Fatalf("seeded join with a 1 s refresh: still %d peers", peers(p))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAddPeers: a pre-warmed node (AddPeers: the table filled, nothing
// dialled) resolves a name another node published and publishes its own,
// dialling its peers — each proving membership — only when used.
func TestAddPeers(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("prewarm")
	cv := certs.NewVerifier(d.Meta)
	c := startDHTs(t, w, d, cv, false, "prewarm", 4, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := w.router(d, "prewarmed")
	reg := prometheus.NewRegistry()
	p, err := NewDHT(ctx, DHTConfig{Identity: r.id, Member: r.member, Domain: d.Meta, Certs: cv, HandshakeTimeout: 10 * time.Second,
		Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var addrs []string
	for _, n := range c.nodes {
		addrs = append(addrs, n.Addrs()...)
	}
	addrs = append(addrs, p.Addrs()...) // itself: skipped
	if n, err := p.AddPeers(addrs...); err != nil || n != 4 {
		t.Fatalf("AddPeers: %d added, %v; want 4", n, err)
	}
	if got := len(p.host.Network().Peers()); got != 0 || p.PeerCount() != 4 {
		t.Fatalf("after AddPeers: %d connections (want 0), %d in the table (want 4)", got, p.PeerCount())
	}
	if in, out := p.Connections(); in != 0 || out != 0 {
		t.Fatalf("after AddPeers: %d connections accepted, %d dialled; want none", in, out)
	}
	accepted := func() (n int64) {
		for _, o := range c.nodes {
			in, _ := o.Connections()
			n += in
		}
		return n
	}
	in0 := accepted()
	if _, err := p.AddPeers("/ip4/127.0.0.1/udp/1/quic-v1"); err == nil {
		t.Error("an address without /p2p/ accepted")
	}
	name, chain := w.capsuleAt(c.routers[2], "warm", time.Hour)
	if err := c.nodes[2].Publish(ctx, w.location(c.routers[2], name, chain, NextSequence())); err != nil {
		t.Fatal(err)
	}
	if got, err := p.Lookup(ctx, name); err != nil || got.Router() != c.routers[2].id.Name {
		t.Fatalf("pre-warmed lookup: %v, %v", got, err)
	}
	own, ownChain := w.capsuleAt(r, "warm own", time.Hour)
	if err := p.Publish(ctx, w.location(r, own, ownChain, NextSequence())); err != nil {
		t.Fatal(err)
	}
	if got, err := c.nodes[3].Lookup(ctx, own); err != nil || got.Router() != r.id.Name {
		t.Fatalf("lookup of the pre-warmed node's name: %v, %v", got, err)
	}
	if p.AdmittedCount() == 0 {
		t.Error("no peer proved membership to the pre-warmed node")
	}
	// Every connection it opened is counted, at both ends and in the
	// metric; a lookup on a connected peer opens none.
	in, out := p.Connections()
	// Its peers may accept more: the other nodes dial each other meanwhile.
	if out == 0 || out > 4 || accepted()-in0 < out {
		t.Errorf("pre-warmed node dialled %d (accepted %d); its peers accepted %d; want 1 to 4 dialled, all accepted", out, in, accepted()-in0)
	}
	if got := counterValue(p.metrics.conns.WithLabelValues("out")); got != float64(out) || !registered(t, reg, "gdp_resolver_dht_connections_total") {
		t.Errorf("gdp_resolver_dht_connections_total{direction=out} = %v, want %d", got, out)
	}
	if _, err := p.Lookup(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, again := p.Connections(); again != out {
		t.Errorf("a lookup over open connections dialled %d more", again-out)
	}
}

// registered says whether reg gathers a metric family called name.
func registered(t *testing.T, reg *prometheus.Registry, name string) bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return true
		}
	}
	return false
}

// TestBootstrapPeerRestarted: the first node of a domain (no bootstrap
// peers of its own) stops and starts again on its address with its
// identity, as `gdp resolver` does after a restart: empty routing table.
// The node that lists it as bootstrap peer finds the connection gone,
// says so in one WARN line with a fix, and redials it, so the restarted
// node has a routing table again within 3 s — not after the next refresh
// (10 min). With bootstrap_keepalive off it would not.
func TestBootstrapPeerRestarted(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("keep")
	cv := certs.NewVerifier(d.Meta)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seed := w.router(d, "keep seed")
	port := freeUDPPort(t)
	listen := []string{fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", port)}
	a, err := NewDHT(ctx, DHTConfig{Identity: seed.id, Member: seed.member, Domain: d.Meta, Certs: cv, Listen: listen})
	if err != nil {
		t.Fatal(err)
	}
	r := w.router(d, "keep router")
	core, logs := observer.New(zap.InfoLevel)
	reg := prometheus.NewRegistry()
	b, err := NewDHT(ctx, DHTConfig{Identity: r.id, Member: r.member, Domain: d.Meta, Certs: cv, Bootstrap: a.Addrs(),
		Logger: zap.New(core), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.WaitPeers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	restarted := time.Now()
	a, err = NewDHT(ctx, DHTConfig{Identity: seed.id, Member: seed.member, Domain: d.Meta, Certs: cv, Listen: listen})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
	defer wcancel()
	if err := a.WaitPeers(wctx, 1); err != nil {
		t.Fatalf("the restarted first node: %v (its bootstrap client did not come back)", err)
	}
	t.Logf("the restarted node has its routing table again %s after its restart", time.Since(restarted).Round(time.Millisecond))
	lost := logs.FilterMessage("bootstrap peer lost; redialing").All()
	if len(lost) != 1 {
		t.Fatalf("%d 'bootstrap peer lost' lines, want 1: %v", len(lost), logs.All())
	}
	if lost[0].Level != zap.WarnLevel || lost[0].ContextMap()["fix"] == nil || lost[0].ContextMap()["peer_id"] == nil {
		t.Errorf("the loss line: %v %v, want WARN with peer_id and fix", lost[0].Level, lost[0].ContextMap())
	}
	if n := gatheredCounter(t, reg, "gdp_resolver_dht_bootstrap_lost_total", nil); n != 1 {
		t.Errorf("gdp_resolver_dht_bootstrap_lost_total = %v, want 1", n)
	}
	if n := gatheredCounter(t, reg, "gdp_resolver_dht_bootstrap_redials_total", map[string]string{"result": "ok"}); n < 1 {
		t.Errorf("gdp_resolver_dht_bootstrap_redials_total{result=ok} = %v, want ≥ 1", n)
	}
}

// gatheredCounter is the value of the counter name (with labels) in reg.
func gatheredCounter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// TestSweepKeepsPrewarmedPeers: the member sweep removes a table peer only
// when its membership expired, not because it has proved nothing yet — a
// pre-warmed or seeded table's peers prove theirs only when first used, and
// a sweep that removed them emptied the simulator's seeded tables (its
// 1,000-router run never finished publishing). Fifty sweeps pass over a
// table of four peers that were never dialled: all four stay.
func TestSweepKeepsPrewarmedPeers(t *testing.T) {
	w := newWorld(t, time.Now().Add(-time.Minute))
	d := w.domain("sweepwarm")
	cv := certs.NewVerifier(d.Meta)
	c := startDHTs(t, w, d, cv, false, "sweepwarm", 4, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r := w.router(d, "swept")
	const sweep = 10 * time.Millisecond
	p, err := NewDHT(ctx, DHTConfig{Identity: r.id, Member: r.member, Domain: d.Meta, Certs: cv,
		Join: JoinSeeded, MemberSweep: sweep, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var addrs []string
	for _, n := range c.nodes {
		addrs = append(addrs, n.Addrs()...)
	}
	if n, err := p.AddPeers(addrs...); err != nil || n != 4 {
		t.Fatalf("AddPeers: %d added, %v; want 4", n, err)
	}
	time.Sleep(50 * sweep)
	if got := p.PeerCount(); got != 4 {
		t.Fatalf("after 50 member sweeps: %d of 4 pre-warmed peers left in the routing table", got)
	}
	// Used, they still answer: the table was not only kept but usable.
	name, chain := w.capsuleAt(c.routers[1], "swept", time.Hour)
	if err := c.nodes[1].Publish(ctx, w.location(c.routers[1], name, chain, NextSequence())); err != nil {
		t.Fatal(err)
	}
	if got, err := p.Lookup(ctx, name); err != nil || got.Router() != c.routers[1].id.Name {
		t.Fatalf("lookup through the swept table: %v, %v", got, err)
	}
}
