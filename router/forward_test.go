package router_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gdpnet/gdpnet/advert"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestForwardBetweenEndpoints(t *testing.T) {
	w := newWorld(t)
	r := w.router("r1", router.Config{}, nil)
	a := w.endpoint(r, certs.KindClient, "a")
	b := w.endpoint(r, certs.KindServer, "b")
	advertise(t, a)
	advertise(t, b)

	if _, err := a.Send(b.Name(), []byte("hello b")); err != nil {
		t.Fatal(err)
	}
	m := receive(t, b)
	if m.Src != a.Name() || m.Dst != b.Name() || !bytes.Equal(m.Payload, []byte("hello b")) {
		t.Fatalf("got %+v", m)
	}
	if got := metric(t, r, "gdp_router_fib_names", "", ""); got != 2 {
		t.Fatalf("fib names = %v, want 2", got)
	}
}

func TestNAKs(t *testing.T) {
	w := newWorld(t)
	r := w.router("r1", router.Config{MaxPDU: 1000}, nil)
	a := w.endpoint(r, certs.KindClient, "a")
	b := w.endpoint(r, certs.KindServer, "b")
	advertise(t, a)
	advertise(t, b)
	ctx := context.Background()

	tests := []struct {
		name     string
		dst      pdu.Name
		ttl      uint8
		size     int
		wantCode pdu.Code
		metric   string
	}{
		{"unknown name", pdu.Name{1, 2, 3}, 32, 8, pdu.CodeNoRoute, "no_route"},
		{"ttl zero", b.Name(), 0, 8, pdu.CodeTTLExpired, "ttl_expired"},
		{"too big", b.Name(), 32, 2000, pdu.CodeTooBig, "too_big"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := a.Probe(ctx, tc.dst, tc.ttl, tc.size, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Reached || rep.Code != tc.wantCode || rep.From != r.Name() {
				t.Fatalf("reply %+v, want NAK %s from the router", rep, tc.wantCode)
			}
			if got := metric(t, r, "gdp_router_pdus_dropped_total", "reason", tc.metric); got < 1 {
				t.Fatalf("drop reason %s counted %v times", tc.metric, got)
			}
		})
	}
}

func TestEchoToRouterAndEndpoint(t *testing.T) {
	w := newWorld(t)
	r := w.router("r1", router.Config{}, nil)
	a := w.endpoint(r, certs.KindClient, "a")
	b := w.endpoint(r, certs.KindServer, "b")
	advertise(t, a)
	advertise(t, b)
	ctx := context.Background()
	for _, dst := range []pdu.Name{r.Name(), b.Name()} {
		rep, err := a.Ping(ctx, dst, 64, 2*time.Second)
		if err != nil {
			t.Fatalf("ping %s: %v", dst, err)
		}
		if !rep.Reached || rep.From != dst {
			t.Fatalf("ping %s: %+v", dst, rep)
		}
	}
}

func TestSpoofedSourceDropped(t *testing.T) {
	w := newWorld(t)
	r := w.router("r1", router.Config{}, nil)
	a := w.endpoint(r, certs.KindClient, "a")
	b := w.endpoint(r, certs.KindServer, "b")
	advertise(t, a)
	advertise(t, b)
	// a claims to be b's neighbour c: the router must not forward it.
	if _, err := a.SendFrom(pdu.Name{9, 9, 9}, b.Name(), 0, []byte("spoof")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "spoofed drop counted", func() bool {
		return metric(t, r, "gdp_router_pdus_dropped_total", "reason", "spoofed_source") == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if m, err := b.Receive(ctx); err == nil {
		t.Fatalf("spoofed PDU delivered: %+v", m)
	}
}

func TestMulticastAndAnycast(t *testing.T) {
	w := newWorld(t)
	r := w.router("r1", router.Config{}, nil)
	src := w.endpoint(r, certs.KindClient, "src")
	advertise(t, src)
	cap, err := newCapsule("replicated")
	if err != nil {
		t.Fatal(err)
	}
	var replicas []*client.Client
	for _, d := range []string{"s1", "s2", "s3"} {
		s := w.endpoint(r, certs.KindServer, d)
		ad, err := cap.AdCert(s.Name(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		advertise(t, s, client.CapsuleRoute(cap.Meta, ad))
		replicas = append(replicas, s)
	}
	// Multicast reaches every replica.
	if _, err := src.SendFrom(src.Name(), cap.Meta.Name(), pdu.FlagMulticast, []byte("all")); err != nil {
		t.Fatal(err)
	}
	for _, s := range replicas {
		if m := receive(t, s); string(m.Payload) != "all" {
			t.Fatalf("replica got %q", m.Payload)
		}
	}
	// Anycast reaches exactly one replica per PDU, and equal-cost replicas
	// share the PDUs (the spread by source and sequence). Every replica
	// counts everything it receives until the expected total arrives and
	// then a while longer, so a copy to every holder shows as 3n.
	const n = 30
	for range n {
		if _, err := src.Send(cap.Meta.Name(), []byte("one")); err != nil {
			t.Fatal(err)
		}
	}
	var counts [3]atomic.Int64
	var total atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, s := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := s.Receive(ctx)
				if err != nil {
					return
				}
				if string(m.Payload) == "one" {
					counts[i].Add(1)
					total.Add(1)
				}
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()
	eventually(t, "anycast PDUs delivered", func() bool { return total.Load() >= n })
	time.Sleep(300 * time.Millisecond) // let any extra copies arrive
	if got := total.Load(); got != n {
		t.Fatalf("anycast delivered %d copies of %d PDUs (per replica %d %d %d)", got, n,
			counts[0].Load(), counts[1].Load(), counts[2].Load())
	}
	for i := range counts {
		if counts[i].Load() == 0 {
			t.Fatalf("anycast not spread over equal-cost replicas: per replica %d %d %d",
				counts[0].Load(), counts[1].Load(), counts[2].Load())
		}
	}
}

func TestDisconnectWithdraws(t *testing.T) {
	w := newWorld(t)
	r := w.router("r1", router.Config{}, nil)
	id, _ := certs.NewIdentity(certs.KindServer, "leaving")
	s, link := w.attachLink(r, id)
	advertise(t, s)
	ctx := context.Background()
	eventually(t, "location record published", func() bool {
		_, err := w.res.Lookup(ctx, id.Name)
		return err == nil
	})
	_ = link.Close()
	eventually(t, "route removed", func() bool { return r.FIB().Lookup(id.Name) == nil })
	eventually(t, "record withdrawn", func() bool {
		_, err := w.res.Lookup(ctx, id.Name)
		return err != nil
	})
	if got := metric(t, r, "gdp_router_routes_removed_total", "reason", "disconnect"); got != 1 {
		t.Fatalf("removed{disconnect} = %v", got)
	}
}

func TestWithdraw(t *testing.T) {
	w := newWorld(t)
	r := w.router("r1", router.Config{}, nil)
	s := w.endpoint(r, certs.KindServer, "s")
	advertise(t, s)
	res, err := s.Withdraw(context.Background(), s.Name(), pdu.Name{7})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != advert.StatusOK || res[1].Status != advert.StatusNotFound {
		t.Fatalf("withdraw results %+v", res)
	}
	if r.FIB().Lookup(s.Name()) != nil {
		t.Fatal("route still installed")
	}
}

func TestRouteExpiresWithChain(t *testing.T) {
	w := newWorld(t)
	r := w.router("r1", router.Config{}, nil)
	s := w.endpoint(r, certs.KindServer, "s")
	cap, _ := newCapsule("short-lived")
	ad, err := cap.AdCert(s.Name(), 1500*time.Millisecond) // valid since a minute ago, for 1.5 s more
	if err != nil {
		t.Fatal(err)
	}
	advertise(t, s, client.CapsuleRoute(cap.Meta, ad))
	if r.FIB().Lookup(cap.Meta.Name()) == nil {
		t.Fatal("route not installed")
	}
	eventually(t, "route expiry", func() bool { return r.FIB().Lookup(cap.Meta.Name()) == nil })
	// The expiry sweep takes the route out of the FIB first and counts it
	// after: on a loaded machine the lookup can see it gone before the count.
	eventually(t, "route expiry counted", func() bool {
		return metric(t, r, "gdp_router_routes_removed_total", "reason", "expiry") >= 1
	})
	eventually(t, "location record gone", func() bool {
		_, err := w.res.Lookup(context.Background(), cap.Meta.Name())
		return err != nil
	})
	if got := metric(t, r, "gdp_router_routes_removed_total", "reason", "expiry"); got != 1 {
		t.Fatalf("removed{expiry} = %v", got)
	}
	var nak *client.NAKError
	if _, err := s.Ping(context.Background(), cap.Meta.Name(), 8, time.Second); !errors.As(err, &nak) || nak.Code != pdu.CodeNoRoute {
		t.Fatalf("ping after expiry: %v, want NO_ROUTE", err)
	}
}

// TestTickSetsHousekeeping: Deps.Tick is the housekeeping period — a
// router ticking hourly has not yet swept a route that expired
// seconds ago (one on the default 50 ms tick has: TestRouteExpiresWithChain).
func TestTickSetsHousekeeping(t *testing.T) {
	w := newWorld(t)
	w.tick = time.Hour
	r := w.router("r1", router.Config{}, nil)
	s := w.endpoint(r, certs.KindServer, "s")
	cap, _ := newCapsule("short-lived")
	ad, err := cap.AdCert(s.Name(), 1500*time.Millisecond) // whole seconds: expires within 2.5 s
	if err != nil {
		t.Fatal(err)
	}
	advertise(t, s, client.CapsuleRoute(cap.Meta, ad))
	time.Sleep(3 * time.Second)
	if r.FIB().Lookup(cap.Meta.Name()) == nil {
		t.Fatal("route swept before the first tick of an hourly housekeeping")
	}
	if got := metric(t, r, "gdp_router_routes_removed_total", "reason", "expiry"); got != 0 {
		t.Fatalf("removed{expiry} = %v before the first tick of an hourly housekeeping", got)
	}
}

// TestSameIdentityTwice: one identity attached over two tunnels (two
// processes) — PDUs for its name go to the newest attachment, and to the
// older one again once the newer leaves.
func TestSameIdentityTwice(t *testing.T) {
	w := newWorld(t)
	r := w.router("r", router.Config{}, nil)
	id, _ := certs.NewIdentity(certs.KindClient, "twice")
	older, _ := w.attachLink(r, id)
	advertise(t, older)
	newer, newerLink := w.attachLink(r, id)
	advertise(t, newer)
	src := w.endpoint(r, certs.KindServer, "sender")
	advertise(t, src)
	for i := range 10 {
		if _, err := src.Send(id.Name, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if m := receive(t, newer); m.Payload[0] != byte(i) {
			t.Fatalf("newer got %v", m.Payload)
		}
	}
	_ = newerLink.Close()
	eventually(t, "newer detached", func() bool { return len(r.FIB().Lookup(id.Name)) == 1 })
	if _, err := src.Send(id.Name, []byte("back")); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, older); string(m.Payload) != "back" {
		t.Fatalf("older got %q", m.Payload)
	}
}
