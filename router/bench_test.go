package router_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
	"github.com/gdpnet/gdpnet/router/routertest"
	"github.com/gdpnet/gdpnet/tunnel"
)

// meter counts deliveries and remembers when the last one came.
type meter struct {
	n    atomic.Int64
	last atomic.Int64
}

func (m *meter) hit() {
	m.n.Add(1)
	m.last.Store(time.Now().UnixNano())
}

// settle waits until want deliveries or until nothing arrived for idle.
func (m *meter) settle(want int64, idle time.Duration) {
	for {
		before := m.n.Load()
		if before >= want {
			return
		}
		time.Sleep(idle)
		if m.n.Load() == before {
			return
		}
	}
}

func (m *meter) rate(start time.Time) float64 {
	el := time.Unix(0, m.last.Load()).Sub(start)
	if m.n.Load() == 0 || el <= 0 {
		return 0
	}
	return float64(m.n.Load()) / el.Seconds()
}

// relayRate remembers the bare relay's rate per size so the router
// benchmark that follows it in the same run reports the ratio.
var relayRate sync.Map // int -> float64

// BenchmarkForward measures PDUs/s through one router over raw GDP-in-UDP
// tunnels (sender → router → sink, all on loopback, real crypto), beside a
// bare Go UDP relay (sender → relay → sink, ReadFromUDP/WriteToUDP, no
// crypto) measured in the same run. The router sub-benchmark reports
// x_relay, its rate over the relay's. Target: x_relay ≥ 1.0.
func BenchmarkForward(b *testing.B) {
	for _, size := range []int{200, 1300} {
		b.Run(fmt.Sprintf("bare-relay-%dB", size), func(b *testing.B) { benchRelay(b, size) })
		b.Run(fmt.Sprintf("router-raw-%dB", size), func(b *testing.B) { benchRouter(b, size) })
	}
}

func udp(b *testing.B) *net.UDPConn {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	_ = c.SetReadBuffer(8 << 20)
	_ = c.SetWriteBuffer(8 << 20)
	return c
}

func benchRelay(b *testing.B, size int) {
	sink, relay, sender := udp(b), udp(b), udp(b)
	var m meter
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			if _, _, err := sink.ReadFromUDP(buf); err != nil {
				return
			}
			m.hit()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		to := sink.LocalAddr().(*net.UDPAddr)
		for {
			n, _, err := relay.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = relay.WriteToUDP(buf[:n], to)
		}
	}()
	p := make([]byte, size)
	to := relay.LocalAddr().(*net.UDPAddr)
	b.ReportAllocs()
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		_, _ = sender.WriteToUDP(p, to)
	}
	m.settle(int64(b.N), 50*time.Millisecond)
	b.StopTimer()
	rate := m.rate(start)
	relayRate.Store(size, rate)
	b.ReportMetric(rate, "pdus/s")
	b.ReportMetric(100*float64(int64(b.N)-m.n.Load())/float64(b.N), "loss%")
	_ = sink.Close()
	_ = relay.Close()
	_ = sender.Close()
	wg.Wait()
}

// rawEndpoint starts a tunnel endpoint with a raw socket for id.
func rawTunnel(b *testing.B, dom *routertest.Domain, id *certs.Identity, h tunnel.Handler) *tunnel.Endpoint {
	member, err := dom.Member(id)
	if err != nil {
		b.Fatal(err)
	}
	ep, err := tunnel.NewEndpoint(tunnel.Config{
		Identity: tunnel.CertIdentity(id, member, dom.ID.Meta),
		Verify:   tunnel.CertVerifier(dom.Verifier),
		Conn:     udp(b),
		Raw:      udp(b),
		Handler:  h,
	})
	if err != nil {
		b.Fatal(err)
	}
	return ep
}

func benchRouter(b *testing.B, size int) {
	dom, err := routertest.NewDomain("bench")
	if err != nil {
		b.Fatal(err)
	}
	rc, _ := dom.NewRouter("bench router")
	// Unlimited face rate: measure what the router can do, not the
	// default per-face limit (200k PDUs/s).
	node, err := router.StartNode(router.Config{Face: router.FaceConfig{RatePPS: -1}}, router.Deps{
		Identity: rc.ID, Member: rc.Member, Domain: rc.Domain, Verifier: dom.Verifier,
	}, udp(b), udp(b))
	if err != nil {
		b.Fatal(err)
	}
	defer node.Close()

	var m meter
	var sinkClient atomic.Pointer[client.Client]
	sinkID, _ := certs.NewIdentity(certs.KindServer, "sink")
	sinkEP := rawTunnel(b, dom, sinkID, func(_ tunnel.Link, p []byte) {
		if len(p) > 2 && pdu.Type(p[2]) == pdu.TypeData {
			m.hit()
		} else if c := sinkClient.Load(); c != nil {
			c.HandlePDU(p)
		}
	})
	defer sinkEP.Close()
	senderID, _ := certs.NewIdentity(certs.KindClient, "sender")
	senderEP := rawTunnel(b, dom, senderID, func(tunnel.Link, []byte) {})
	defer senderEP.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ra := node.Tunnel.Addr()
	sl, err := sinkEP.Dial(ctx, ra, rc.ID.Name, tunnel.KindRaw)
	if err != nil {
		b.Fatal(err)
	}
	sc := client.New(sinkID, sl, client.Options{})
	sinkClient.Store(sc)
	if _, err := sc.Advertise(ctx, sc.Self()); err != nil {
		b.Fatal(err)
	}
	tl, err := senderEP.Dial(ctx, ra, rc.ID.Name, tunnel.KindRaw)
	if err != nil {
		b.Fatal(err)
	}
	h := pdu.Header{Type: pdu.TypeData, TTL: pdu.DefaultTTL, Dst: sinkID.Name, Src: senderID.Name, Payload: make([]byte, size-pdu.HeaderLen)}
	p, err := h.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		binary.BigEndian.PutUint32(p[8:12], uint32(i)) // a fresh sequence: not a duplicate
		if err := tl.Send(p); err != nil {
			b.Fatal(err)
		}
	}
	m.settle(int64(b.N), 50*time.Millisecond)
	b.StopTimer()
	rate := m.rate(start)
	b.ReportMetric(rate, "pdus/s")
	b.ReportMetric(100*float64(int64(b.N)-m.n.Load())/float64(b.N), "loss%")
	if base, ok := relayRate.Load(size); ok && base.(float64) > 0 {
		b.ReportMetric(rate/base.(float64), "x_relay")
	}
}

// BenchmarkAdvertise measures advertisements verified (the whole chain:
// AdCert, RtCert, membership) and installed per second, from two endpoints
// at once, 64 names per ADVERTISE. Target: ≥ 3,000/s.
func BenchmarkAdvertise(b *testing.B) {
	dom, _ := routertest.NewDomain("bench")
	rc, _ := dom.NewRouter("bench router")
	res := resolver.NewStatic(&resolver.Verifier{Certs: dom.Verifier})
	// Unlimited per-face budget: measure the router's verification
	// capacity, not the default per-endpoint limit.
	r, err := router.New(router.Config{Listen: "127.0.0.1:9", Advertise: router.AdvertiseConfig{Rate: -1}}, router.Deps{
		Identity: rc.ID, Member: rc.Member, Domain: rc.Domain, Verifier: dom.Verifier, Resolver: res,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	const endpoints = 2
	type ep struct {
		c      *client.Client
		routes []client.Route
		link   *routertest.Link
	}
	eps := make([]ep, endpoints)
	for i := range eps {
		id, _ := certs.NewIdentity(certs.KindServer, fmt.Sprintf("server %d", i))
		mine, theirs := routertest.Pipe(id.Name, r.Name(), 1024)
		if _, err := r.Attach(theirs, router.FaceEndpoint, pdu.Name{}, "mem"); err != nil {
			b.Fatal(err)
		}
		theirs.Start(func(l *routertest.Link, p []byte) { r.HandlePDU(l, p) })
		c := client.New(id, mine, client.Options{RequestTimeout: 10 * time.Second})
		mine.Start(func(_ *routertest.Link, p []byte) { c.HandlePDU(p) })
		eps[i] = ep{c: c, link: mine}
		defer func() { _ = c.Close(); mine.Wait() }()
	}
	// Mint b.N capsules with AdCerts outside the timer.
	for i := range b.N {
		cap, err := routertest.NewCapsule(fmt.Sprintf("c%d", i))
		if err != nil {
			b.Fatal(err)
		}
		e := &eps[i%endpoints]
		ad, err := cap.AdCert(e.c.Name(), time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		e.routes = append(e.routes, client.CapsuleRoute(cap.Meta, ad))
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := eps[i].c.Advertise(context.Background(), eps[i].routes...); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	if got := r.FIB().Len(); got != b.N {
		b.Fatalf("FIB holds %d names, want %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "adverts/s")
}
