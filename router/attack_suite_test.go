package router_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/advert"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router"
)

// legitDuring sends n DATA PDUs from src to dst (paced, ~1 ms apart) while
// attack runs in its own goroutine, and returns the fraction dst received.
// The attack is running before the first legitimate PDU leaves (started
// reports it) and is stopped after the last one arrived or 3 s passed.
func legitDuring(t *testing.T, src *client.Client, dst pdu.Name, recv func(context.Context) ([]byte, error), n int, attack func(stop <-chan struct{}, started func())) float64 {
	t.Helper()
	stop := make(chan struct{})
	running := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		attack(stop, func() { once.Do(func() { close(running) }) })
	}()
	select {
	case <-running:
	case <-time.After(15 * time.Second):
		close(stop)
		wg.Wait()
		t.Fatal("the attack never started")
	}
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		seen := map[string]bool{}
		for int(got.Load()) < n {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			p, err := recv(ctx)
			cancel()
			if err != nil {
				return
			}
			if bytes.HasPrefix(p, []byte("legit ")) && !seen[string(p)] {
				seen[string(p)] = true
				got.Add(1)
			}
		}
	}()
	for i := range n {
		_, _ = src.Send(dst, []byte(fmt.Sprintf("legit %d", i)))
		time.Sleep(time.Millisecond)
	}
	<-done
	close(stop)
	wg.Wait()
	return float64(got.Load()) / float64(n)
}

func clientRecv(c *client.Client) func(context.Context) ([]byte, error) {
	return func(ctx context.Context) ([]byte, error) {
		m, err := c.Receive(ctx)
		return m.Payload, err
	}
}

// TestAttackSuite runs the router-level attacks of docs/SECURITY.md §2.12
// one by one while a legitimate client sends 300 PDUs to a capsule name a
// legitimate server holds: each attack must fail (its refusals or drops
// counted, the capsule's route unchanged) and at least 90 % of the
// legitimate PDUs must arrive. The rates are logged for the table.
func TestAttackSuite(t *testing.T) {
	w := newWorld(t)
	r := w.router("r", router.Config{}, nil)
	b := w.router("b", router.Config{}, nil)
	c := w.router("c", router.Config{}, nil)
	rb, _ := w.connect(r, b)
	bc, _ := w.connect(b, c)
	cr, _ := w.connect(c, r)

	capsule, err := newCapsule("attacked capsule")
	if err != nil {
		t.Fatal(err)
	}
	serverID, err := certs.NewIdentity(certs.KindServer, "legit server")
	if err != nil {
		t.Fatal(err)
	}
	server := w.attach(r, serverID)
	ad, err := capsule.AdCert(server.Name(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	advertise(t, server, server.Self(), client.CapsuleRoute(capsule.Meta, ad))
	sender := w.endpoint(r, certs.KindClient, "legit sender")
	advertise(t, sender)
	cname := capsule.Meta.Name()
	routeIntact := func(t *testing.T) {
		t.Helper()
		hops := r.FIB().Lookup(cname)
		if len(hops) != 1 || hops[0].Face.Peer() != server.Name() {
			t.Fatalf("route for the capsule changed: %+v", hops)
		}
	}
	dropped := func(reason string) float64 {
		return metric(t, r, "gdp_router_pdus_dropped_total", "reason", reason) +
			metric(t, b, "gdp_router_pdus_dropped_total", "reason", reason) +
			metric(t, c, "gdp_router_pdus_dropped_total", "reason", reason)
	}
	advResult := func(status advert.Status) float64 {
		return metric(t, r, "gdp_router_advertisements_total", "result", status.String())
	}
	// refusedAdverts: advertisements refused for any reason (the
	// per-identity verification budget turns a flood's later ones into
	// rate_limited).
	refusedAdverts := func() float64 {
		var sum float64
		for st := advert.StatusMalformed; st <= advert.StatusIdentityQuota; st++ {
			sum += advResult(st)
		}
		return sum
	}
	const n = 300
	run := func(t *testing.T, attack func(stop <-chan struct{}, started func())) {
		t.Helper()
		rate := legitDuring(t, sender, cname, clientRecv(server), n, attack)
		t.Logf("legitimate PDUs delivered during the attack: %.1f%%", 100*rate)
		if rate < 0.9 {
			t.Fatalf("legitimate delivery %.1f%% < 90%%", 100*rate)
		}
		routeIntact(t)
	}

	mallory := w.raw(r, certs.KindServer, "mallory")
	now := time.Now()
	mRt := mallory.rtCert(r.Name(), now.Add(-time.Minute), now.Add(time.Hour))
	// sendAdvert sends an ADVERTISE without waiting for its answer.
	sendAdvert := func(e *rawEP, a *advert.Advertise) {
		bts, err := advert.MarshalAdvertise(a)
		if err != nil {
			t.Error(err)
			return
		}
		e.seq++
		h := pdu.Header{Type: pdu.TypeAdvertise, TTL: 1, Sequence: e.seq, Src: e.id.Name, Payload: bts}
		p, err := h.Marshal()
		if err != nil {
			t.Error(err)
			return
		}
		_ = e.link.Send(p)
	}
	drain := func(e *rawEP, stop <-chan struct{}) {
		for {
			select {
			case <-e.in:
			case <-stop:
				return
			}
		}
	}

	t.Run("forged advertisements", func(t *testing.T) {
		// The capsule advertised by mallory with an AdCert mallory signed
		// itself, and with the owner's AdCert for the server but a flipped
		// signature byte: both must be refused bad_signature.
		self, err := certs.IssueAdCert(mallory.id.Key, cname, mallory.id.Name, now.Add(-time.Minute), now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		forged := ad.Marshal()
		forged[len(forged)-1] ^= 1
		before, beforeAll := advResult(advert.StatusBadSignature), refusedAdverts()
		run(t, func(stop <-chan struct{}, started func()) {
			go drain(mallory, stop)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				adc := self.Marshal()
				if i%2 == 1 {
					adc = forged
				}
				sendAdvert(mallory, &advert.Advertise{Seq: seqNow(), Endpoint: mallory.id.Meta.Marshal(), RtCert: mRt.Marshal(),
					Names: []advert.AdvertName{{Name: cname, Target: capsule.Meta.Marshal(), AdCert: adc}}})
				if i == 10 {
					started()
				}
				time.Sleep(200 * time.Microsecond)
			}
		})
		if got, all := advResult(advert.StatusBadSignature)-before, refusedAdverts()-beforeAll; got < 1 || all < 10 {
			t.Fatalf("%v forged advertisements refused bad_signature, %v refused in all; want ≥ 1 and ≥ 10", got, all)
		}
	})

	t.Run("replayed advertisements", func(t *testing.T) {
		// mallory replays the legitimate server's valid chain (someone
		// else's endpoint: not_endpoint) with fresh sequences.
		// RtCerts are public (they ride in location records): mallory
		// presents the server's own.
		srvRt, err := certs.IssueRtCert(serverID, r.Name(), now.Add(-time.Minute), now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		legitAd := &advert.Advertise{Endpoint: serverID.Meta.Marshal(), RtCert: srvRt.Marshal(),
			Names: []advert.AdvertName{{Name: cname, Target: capsule.Meta.Marshal(), AdCert: ad.Marshal()}}}
		before, beforeAll := advResult(advert.StatusNotEndpoint), refusedAdverts()
		run(t, func(stop <-chan struct{}, started func()) {
			go drain(mallory, stop)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a := *legitAd
				a.Seq = seqNow()
				sendAdvert(mallory, &a)
				if i == 10 {
					started()
				}
				time.Sleep(200 * time.Microsecond)
			}
		})
		if got, all := advResult(advert.StatusNotEndpoint)-before, refusedAdverts()-beforeAll; got < 1 || all < 10 {
			t.Fatalf("%v replayed advertisements refused not_endpoint, %v refused in all; want ≥ 1 and ≥ 10", got, all)
		}
	})

	t.Run("black hole", func(t *testing.T) {
		// mallory holds a valid AdCert of a capsule of its own and
		// advertises it under the attacked capsule's name (name mismatch),
		// and withdraws the attacked name it does not hold.
		own, err := newCapsule("mallory's own")
		if err != nil {
			t.Fatal(err)
		}
		ownAd, err := own.AdCert(mallory.id.Name, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		before, beforeAll := advResult(advert.StatusNameMismatch), refusedAdverts()
		run(t, func(stop <-chan struct{}, started func()) {
			go drain(mallory, stop)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				sendAdvert(mallory, &advert.Advertise{Seq: seqNow(), Endpoint: mallory.id.Meta.Marshal(), RtCert: mRt.Marshal(),
					Names: []advert.AdvertName{{Name: cname, Target: own.Meta.Marshal(), AdCert: ownAd.Marshal()}}})
				wd, _ := advert.MarshalWithdraw(&advert.Withdraw{Seq: seqNow(), Names: []pdu.Name{cname}})
				mallory.seq++
				h := pdu.Header{Type: pdu.TypeWithdraw, TTL: 1, Sequence: mallory.seq, Src: mallory.id.Name, Payload: wd}
				if p, err := h.Marshal(); err == nil {
					_ = mallory.link.Send(p)
				}
				if i == 10 {
					started()
				}
				time.Sleep(200 * time.Microsecond)
			}
		})
		if got, all := advResult(advert.StatusNameMismatch)-before, refusedAdverts()-beforeAll; got < 1 || all < 10 {
			t.Fatalf("%v black-hole advertisements refused name_mismatch, %v refused in all; want ≥ 1 and ≥ 10", got, all)
		}
	})

	t.Run("spoofed sources", func(t *testing.T) {
		// mallory sends DATA as if from the legitimate sender and from
		// the server (to make the server's answers go elsewhere).
		before := dropped("spoofed_source")
		run(t, func(stop <-chan struct{}, started func()) {
			go drain(mallory, stop)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				src := sender.Name()
				if i%2 == 1 {
					src = server.Name()
				}
				h := pdu.Header{Type: pdu.TypeData, TTL: 16, Sequence: uint32(i), Src: src, Dst: cname, Payload: []byte("spoof")}
				if p, err := h.Marshal(); err == nil {
					_ = mallory.link.Send(p)
				}
				if i == 10 {
					started()
				}
				time.Sleep(100 * time.Microsecond)
			}
		})
		if got := dropped("spoofed_source") - before; got < 10 {
			t.Fatalf("%v spoofed PDUs dropped, want ≥ 10", got)
		}
	})

	t.Run("TTL loop", func(t *testing.T) {
		// A static routing loop r → b → c → r for a name; mallory (and a
		// raw face of the loop) pump PDUs into it with the largest TTL:
		// each dies after one lap (duplicate) instead of circling 255 hops.
		x := pdu.Name{0xee, 7}
		for _, hop := range []struct {
			r *testRouter
			f *router.Face
		}{{r, rb}, {b, bc}, {c, cr}} {
			if err := hop.r.FIB().Install(x, router.Hop{Face: hop.f, Cost: 1, Origin: router.OriginStatic}); err != nil {
				t.Fatal(err)
			}
		}
		loopy := w.endpoint(r, certs.KindClient, "loopy")
		advertise(t, loopy)
		before := dropped("duplicate") + dropped("ttl_expired")
		sent := 0
		run(t, func(stop <-chan struct{}, started func()) {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := loopy.SendFrom(loopy.Name(), x, 0, []byte("loop")); err == nil {
					sent++
				}
				if i == 10 {
					started()
				}
				time.Sleep(200 * time.Microsecond)
			}
		})
		eventually(t, "every looping PDU dropped", func() bool { return dropped("duplicate")+dropped("ttl_expired")-before >= float64(sent)*0.9 })
		// each looping PDU made at most one lap (+ the hop back into r)
		time.Sleep(50 * time.Millisecond)
		if in := metric(t, b, "gdp_router_pdus_in_total", "", ""); in > float64(4*sent+100) {
			t.Fatalf("router b saw %v PDUs for %d looping ones: they circled", in, sent)
		}
	})

	t.Run("malformed and oversized PDUs", func(t *testing.T) {
		// Random datagrams of random length, half behind a plausible
		// header, and PDUs claiming more payload than they carry.
		noise := w.raw(r, certs.KindClient, "noise")
		before := dropped("malformed")
		rng := rand.New(rand.NewPCG(3, 4))
		run(t, func(stop <-chan struct{}, started func()) {
			go drain(noise, stop)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := make([]byte, 1+rng.IntN(70000))
				for j := range p {
					p[j] = byte(rng.Uint32())
				}
				if i%2 == 0 && len(p) >= pdu.HeaderLen {
					p[0], p[1] = pdu.Version, byte(19+rng.IntN(4))
					binary.BigEndian.PutUint16(p[6:8], uint16(rng.Uint32()))
				}
				_ = noise.link.Send(p)
				if i == 10 {
					started()
				}
				for noise.routerSide.Queued() > 256 {
					time.Sleep(100 * time.Microsecond)
				}
			}
		})
		if got := dropped("malformed") - before; got < 10 {
			t.Fatalf("%v malformed PDUs counted, want ≥ 10", got)
		}
	})
}
