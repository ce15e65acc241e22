package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/tunnel"
)

func init() {
	addDemoStage(20, "Tunnels: two routers exchange PDUs over QUIC and over raw GDP-in-UDP", demoTunnel)
}

// demoTunnelNode is one side of the tunnel demo.
type demoTunnelNode struct {
	id   *certs.Identity
	ep   *tunnel.Endpoint
	got  atomic.Int64
	size atomic.Int64 // bytes received
}

func demoTunnel(ctx context.Context, d *demoEnv) error {
	d.Showed("PDUs of 1 B to the maximum size over QUIC and raw GDP-in-UDP; impostors refused in the handshake")
	// Identities: from the certs stage when it ran, else a domain of our own.
	var verifier *certs.Verifier
	var enrol func(alias string, ttl time.Duration) (*certs.Identity, *tunnel.Identity, error)
	if p, ok := d.Shared["certs.pki"].(*demoPKI); ok {
		verifier = p.Verifier
		enrol = func(alias string, ttl time.Duration) (*certs.Identity, *tunnel.Identity, error) {
			id, m, err := p.NewNode(certs.KindRouter, alias, ttl)
			if err != nil {
				return nil, nil, err
			}
			return id, tunnel.CertIdentity(id, m, p.Domain.Meta), nil
		}
		d.Say("routers tun-a and tun-b join the demo domain from the certificates stage")
	} else {
		dom, err := certs.NewIdentity(certs.KindDomain, "tunnel demo domain")
		if err != nil {
			return err
		}
		verifier = certs.NewVerifier(dom.Meta)
		enrol = func(alias string, ttl time.Duration) (*certs.Identity, *tunnel.Identity, error) {
			id, err := certs.NewIdentity(certs.KindRouter, "demo "+alias)
			if err != nil {
				return nil, nil, err
			}
			now := time.Now()
			m, err := certs.IssueMember(dom, id.Name, now.Add(-time.Minute), now.Add(ttl))
			if err != nil {
				return nil, nil, err
			}
			return id, tunnel.CertIdentity(id, m, dom.Meta), nil
		}
		d.Say("routers tun-a and tun-b join a fresh trust domain")
	}

	start := func(alias string) (*demoTunnelNode, error) {
		id, tid, err := enrol(alias, 24*time.Hour)
		if err != nil {
			return nil, err
		}
		n := &demoTunnelNode{id: id}
		ep, err := demoEndpoint(tid, verifier, func(_ tunnel.Link, p []byte) {
			n.got.Add(1)
			n.size.Add(int64(len(p)))
		})
		if err != nil {
			return nil, err
		}
		n.ep = ep
		d.Defer(func() { ep.Close() })
		return n, nil
	}
	a, err := start("tun-a")
	if err != nil {
		return err
	}
	b, err := start("tun-b")
	if err != nil {
		return err
	}
	d.Say("tun-a %s: quic %s, raw %s", tunShort(a.id.Name), a.ep.Addr(), a.ep.RawAddr())
	d.Say("tun-b %s: quic %s, raw %s", tunShort(b.id.Name), b.ep.Addr(), b.ep.RawAddr())

	// DATA PDUs of every interesting size, from 1-byte payloads to the maximum.
	sizes := []int{1, 200, 1000, 1300, 1400, 5000, 20000, pdu.MaxPayload}
	var pdus [][]byte
	for i, s := range sizes {
		h := pdu.Header{Type: pdu.TypeData, TTL: pdu.DefaultTTL, Sequence: uint32(i), Dst: b.id.Name, Src: a.id.Name, Payload: make([]byte, s)}
		raw, err := h.Marshal()
		if err != nil {
			return err
		}
		pdus = append(pdus, raw)
	}
	const rounds = 50
	d.Say("over each kind of link tun-a sends %d rounds of %d DATA PDUs, payloads of %d B to %d B, and tun-b counts what arrives",
		rounds, len(sizes), sizes[0], sizes[len(sizes)-1])
	for _, kind := range []tunnel.Kind{tunnel.KindQUIC, tunnel.KindRaw} {
		l, err := a.ep.Dial(ctx, b.ep.Addr(), b.id.Name, kind)
		if err != nil {
			return fmt.Errorf("%s dial: %w", kind, err)
		}
		acc, err := b.ep.Accept(ctx)
		if err != nil {
			return err
		}
		d.Say("%s link up: both sides proved their names in the TLS 1.3 handshake (tun-b sees peer %s, membership valid until %s)",
			kind, tunShort(acc.Peer()), acc.Expiry().UTC().Format(time.RFC3339))
		before, beforeBytes := b.got.Load(), b.size.Load()
		statsBefore := a.ep.Stats()
		var want int64
		for r := 0; r < rounds; r++ {
			for _, p := range pdus {
				if err := l.Send(p); err != nil {
					return fmt.Errorf("%s send: %w", kind, err)
				}
				want += int64(len(p))
			}
			time.Sleep(2 * time.Millisecond) // datagrams are unreliable: do not flood the demo
		}
		n := int64(rounds * len(pdus))
		deadline := time.Now().Add(10 * time.Second)
		for b.got.Load()-before < n && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		got, bytes := b.got.Load()-before, b.size.Load()-beforeBytes
		st := a.ep.Stats()
		switch kind {
		case tunnel.KindQUIC:
			d.Say("quic: %d of %d PDUs (%d bytes) arrived: small ones as DATAGRAM frames, larger ones on a stream each", got, n, bytes)
			d.Figure("quic: PDUs delivered/sent", "%d of %d (%d bytes)", got, n, bytes)
		case tunnel.KindRaw:
			d.Say("raw: %d of %d PDUs (%d bytes) arrived in %d ChaCha20-Poly1305 frames (PDUs over the %d-byte MTU fragmented hop by hop)",
				got, n, bytes, st.FramesSent-statsBefore.FramesSent, 1452)
			d.Figure("raw: PDUs delivered/sent", "%d of %d (%d bytes)", got, n, bytes)
			d.Figure("raw: encrypted frames sent", "%d", st.FramesSent-statsBefore.FramesSent)
		}
		if got < n*9/10 || (kind == tunnel.KindRaw && got != n) {
			return fmt.Errorf("%s: only %d of %d PDUs arrived", kind, got, n)
		}
		l.Close()
		<-l.Done()
	}

	// A peer that shows tun-a's credentials with a key of its own.
	_, stolen, err := enrol("tun-thief", time.Hour)
	if err != nil {
		return err
	}
	imp, err := certs.NewIdentity(certs.KindRouter, "impostor")
	if err != nil {
		return err
	}
	stolen.Key = imp.Key
	impEP, err := demoEndpoint(stolen, verifier, nil)
	if err != nil {
		return err
	}
	defer impEP.Close()
	_, err = impEP.Dial(ctx, b.ep.Addr(), b.id.Name, tunnel.KindQUIC)
	if !errors.Is(err, tunnel.ErrPeerRefused) {
		return fmt.Errorf("impostor with a wrong key: got %v, want refused", err)
	}
	d.Say("a peer presenting a member's credentials with a different key: refused in the handshake")

	// A member whose membership has run out.
	_, expired, err := enrol("tun-expired", time.Nanosecond)
	if err != nil {
		return err
	}
	time.Sleep(time.Millisecond)
	expEP, err := demoEndpoint(expired, verifier, nil)
	if err != nil {
		return err
	}
	defer expEP.Close()
	_, err = expEP.Dial(ctx, b.ep.Addr(), b.id.Name, tunnel.KindRaw)
	if !errors.Is(err, tunnel.ErrPeerRefused) {
		return fmt.Errorf("expired member: got %v, want refused", err)
	}
	d.Say("a router whose membership expired: refused in the handshake")
	st := b.ep.Stats()
	d.Say("tun-b counted %d PDUs received, %d handshakes refused, %s", st.PDUsReceived, st.HandshakesRefused, demoDrops(st.Drops))
	d.Figure("handshakes refused", "%d of 2 bad peers", st.HandshakesRefused)
	return nil
}

// demoEndpoint starts a tunnel endpoint with QUIC and raw sockets on
// 127.0.0.1.
func demoEndpoint(id *tunnel.Identity, v *certs.Verifier, h tunnel.Handler) (*tunnel.Endpoint, error) {
	q, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	r, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		q.Close()
		return nil, err
	}
	ep, err := tunnel.NewEndpoint(tunnel.Config{
		Identity: id, Verify: tunnel.CertVerifier(v), Conn: q, Raw: r, Handler: h,
		RawMTU: 1452, HandshakeTimeout: 3 * time.Second,
	})
	if err != nil {
		q.Close()
		r.Close()
	}
	return ep, err
}

func tunShort(n pdu.Name) string { return n.String()[:8] + "…" }

// demoDrops says what an endpoint dropped, by reason: "no drops" or
// "drops: reason n, …".
func demoDrops(drops map[string]uint64) string {
	if len(drops) == 0 {
		return "no drops"
	}
	keys := make([]string, 0, len(drops))
	for k := range drops {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, drops[k])
	}
	return "drops: " + strings.Join(parts, ", ")
}
