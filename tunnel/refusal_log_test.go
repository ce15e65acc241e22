package tunnel

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gdpnet/gdpnet/pdu"
)

// The refusing side's log names whom it refused and why: a peer whose
// membership expired is logged with its name as peer and "expired" in
// reason.
func TestRefusalLogNamesPeerAndReason(t *testing.T) {
	now := time.Now()
	d := newDomain(t)
	_, srvID := d.member(now.Add(-time.Hour), now.Add(time.Hour))
	core, logs := observer.New(zap.InfoLevel)
	srv := newTestNode(t, false, func(c *Config) {
		c.Identity, c.Verify, c.Logger = srvID, d.verifier(), zap.New(core)
		c.HandshakeTimeout = 2 * time.Second
	})
	_, expired := d.member(now.Add(-2*time.Hour), now.Add(-time.Hour))
	cli := certNode(t, expired, d.verifier())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.ep.Dial(ctx, srv.ep.Addr(), srvID.Name, KindQUIC); err == nil {
		t.Fatal("an expired member was let in")
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		for _, e := range logs.FilterMessage("peer refused at handshake").All() {
			m := e.ContextMap()
			if m["peer"] == expired.Name.String() && strings.Contains(m["reason"].(string), "expired") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("refusal logged as %v; want peer %s and an expired reason", m, expired.Name)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no refusal logged: %v", logs.All())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// 10,000 refused handshakes (anyone on the network can try one) are all
// counted, and cost the log one line per claimed name and interval.
func TestRefusedHandshakeFloodLogsBounded(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	srv := newTestNode(t, false, func(c *Config) { c.Logger = zap.New(core) })
	verify := srv.ep.verifyChain(pdu.Name{})
	const n = 10000
	for i := 0; i < n; i++ {
		if err := verify([][]byte{[]byte("not a certificate")}, nil); err == nil {
			t.Fatal("junk verified")
		}
	}
	if got := srv.ep.Stats().HandshakesRefused; got != n {
		t.Errorf("HandshakesRefused = %d, want %d", got, n)
	}
	lines := logs.FilterMessage("peer refused at handshake").All()
	if len(lines) != 1 {
		t.Fatalf("%d \"peer refused at handshake\" lines for %d refusals, want 1", len(lines), n)
	}
	if m := lines[0].ContextMap(); m["peer"] != "unknown" || m["reason"] == "" {
		t.Errorf("line %v: want peer unknown and a reason", m)
	}
}
