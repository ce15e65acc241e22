package router_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
)

// longNegative is a router config whose negative cache would hold a miss
// for a minute: anything these tests see within seconds is the fix, not
// the entry expiring.
func longNegative() router.Config {
	var cfg router.Config
	cfg.Resolver.NegativeTTL = config.Duration(time.Minute)
	return cfg
}

func pingCode(c *client.Client, dst pdu.Name) pdu.Code {
	var nak *client.NAKError
	_, err := c.Ping(context.Background(), dst, 8, 2*time.Second)
	switch {
	case err == nil:
		return 0
	case errors.As(err, &nak):
		return nak.Code
	}
	return pdu.CodeMalformed // no answer at all: not what any caller wants
}

// TestSourceForgetsNegative: a writer at router a asks for a replica that is
// away (restarting): a remembers the miss. The replica comes back at b.
// Until it sends, a still refuses it from the negative cache (for a
// minute here); its first PDU through a (a catch-up request to the writer)
// makes a forget the miss, and the writer reaches it at once.
func TestSourceForgetsNegative(t *testing.T) {
	w := newWorld(t)
	a := w.router("a", longNegative(), nil)
	b := w.router("b", longNegative(), nil)
	w.connect(a, b)
	writer := w.endpoint(a, certs.KindClient, "writer")
	advertise(t, writer)
	w.published(writer.Name())
	repID, err := certs.NewIdentity(certs.KindServer, "replica")
	if err != nil {
		t.Fatal(err)
	}
	if code := pingCode(writer, repID.Name); code != pdu.CodeNoRoute {
		t.Fatalf("ping of the absent replica: code %v, want NO_ROUTE", code)
	}
	rep := w.attach(b, repID)
	advertise(t, rep)
	w.published(repID.Name)
	// Back and published, but a remembers the miss: this is the delay a
	// restarted replica saw.
	if code := pingCode(writer, repID.Name); code != pdu.CodeNoRoute {
		t.Fatalf("ping from the negative cache: code %v, want NO_ROUTE", code)
	}
	if _, err := rep.Send(writer.Name(), []byte("sync request")); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, writer); m.Src != repID.Name {
		t.Fatalf("writer got %+v", m)
	}
	start := time.Now()
	if code := pingCode(writer, repID.Name); code != 0 {
		t.Fatalf("ping after the replica sent: code %v, want a reply (the miss should be forgotten)", code)
	}
	t.Logf("replica reached %s after its first PDU", time.Since(start))
	if got := metric(t, a, "gdp_router_negative_forgotten_total", "", ""); got != 1 {
		t.Fatalf("gdp_router_negative_forgotten_total = %v, want 1", got)
	}
}

// gatedResolver answers LookupAll from its inner resolver, then holds the
// answer until release is closed: a lookup in flight while the world
// changes.
type gatedResolver struct {
	*resolver.Static
	gate    chan struct{} // closed: lookups answer at once
	started chan pdu.Name
}

func (g *gatedResolver) LookupAll(ctx context.Context, name pdu.Name) ([]*resolver.Record, error) {
	recs, err := g.Static.LookupAll(ctx, name)
	select {
	case g.started <- name:
	default:
	}
	<-g.gate
	return recs, err
}

// TestSourceDuringLookupAsksAgain: the miss of a lookup that was in flight
// when a PDU from the looked-up name arrived is not remembered; the lookup
// is asked again and the parked PDU delivered.
func TestSourceDuringLookupAsksAgain(t *testing.T) {
	w := newWorld(t)
	g := &gatedResolver{Static: w.res, gate: make(chan struct{}), started: make(chan pdu.Name, 16)}
	var once sync.Once
	release := func() { once.Do(func() { close(g.gate) }) }
	a := w.router("a", longNegative(), g)
	t.Cleanup(release) // runs before a's Close: its workers must not stay blocked
	b := w.router("b", longNegative(), nil)
	w.connect(a, b)
	writer := w.endpoint(a, certs.KindClient, "writer")
	advertise(t, writer)
	w.published(writer.Name())
	repID, err := certs.NewIdentity(certs.KindServer, "replica")
	if err != nil {
		t.Fatal(err)
	}
	// The writer's PDU to the absent replica parks at a; the lookup has its
	// (negative) answer and is held.
	if _, err := writer.Send(repID.Name, []byte("record 1")); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-g.started:
		if n != repID.Name {
			t.Fatalf("lookup of %v", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no lookup")
	}
	// Meanwhile the replica comes back at b and sends through a (b's own
	// lookups go to the static resolver directly).
	rep := w.attach(b, repID)
	advertise(t, rep)
	if _, err := rep.Send(writer.Name(), []byte("sync request")); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, writer); m.Src != repID.Name {
		t.Fatalf("writer got %+v", m)
	}
	release()
	// The stale miss is not remembered: the lookup is asked again and the
	// parked record arrives.
	if m := receive(t, rep); string(m.Payload) != "record 1" {
		t.Fatalf("replica got %+v", m)
	}
	if code := pingCode(writer, repID.Name); code != 0 {
		t.Fatalf("ping after the lookup: code %v", code)
	}
}
