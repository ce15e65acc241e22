package capsuled

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/store"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// peerNet is a capsule server's face to its router with the peers behind
// it played by the test: serve sees every capsule request the server
// sends (as an on-path observer would) and returns the answers to
// deliver, each from the source name it chooses.
type peerNet struct {
	self  pdu.Name
	c     *client.Client
	mu    sync.Mutex
	serve func(h pdu.Header, m *wire.Message) []peerAnswer
	// nak, when set, may have the router refuse the PDU: it returns the
	// NAK code, and whether the NAK echoes the PDU as sent (else a forged
	// one with another payload).
	nak func(h pdu.Header) (code pdu.Code, genuine, ok bool)
	// control, when set, answers the server's ADVERTISE and WITHDRAW (as
	// its router): the PDU to hand back, or nil for none.
	control func(p []byte, h pdu.Header) []byte
	done    chan struct{}
	once    sync.Once
}

type peerAnswer struct {
	from  pdu.Name
	msg   *wire.Message
	delay time.Duration
	after <-chan struct{} // when set, delivered once it is closed (then delay)
}

func (f *peerNet) Peer() pdu.Name        { return pdu.Name{0xee} }
func (f *peerNet) Done() <-chan struct{} { return f.done }
func (f *peerNet) Close() error          { f.once.Do(func() { close(f.done) }); return nil }

// set installs the peers' behaviour (the server is running already).
func (f *peerNet) set(serve func(pdu.Header, *wire.Message) []peerAnswer, nak func(pdu.Header) (pdu.Code, bool, bool)) {
	f.mu.Lock()
	f.serve, f.nak = serve, nak
	f.mu.Unlock()
}

func (f *peerNet) Send(p []byte) error {
	f.mu.Lock()
	serve, nak, control := f.serve, f.nak, f.control
	f.mu.Unlock()
	var h pdu.Header
	if err := pdu.Decode(p, &h); err == nil && control != nil && (h.Type == pdu.TypeAdvertise || h.Type == pdu.TypeWithdraw) {
		if out := control(append([]byte(nil), p...), h); out != nil {
			go f.c.HandlePDU(out)
		}
		return nil
	}
	if err := pdu.Decode(p, &h); err != nil || h.Type != pdu.TypeData || serve == nil {
		return nil
	}
	m, err := wire.Unmarshal(h.Payload)
	if err != nil {
		return nil
	}
	if nak != nil {
		if code, genuine, ok := nak(h); ok {
			orig := p
			if !genuine {
				orig = append([]byte(nil), p...)
				for i := pdu.HeaderLen; i < len(orig); i++ {
					orig[i] ^= 0x55
				}
			}
			if nh, ok := pdu.NAK(orig, code, pdu.Name{0xee}); ok {
				if nb, err := nh.Marshal(); err == nil {
					go f.c.HandlePDU(nb)
				}
			}
			return nil
		}
	}
	for _, a := range serve(h, m) {
		go func(a peerAnswer) {
			if a.after != nil {
				<-a.after
			}
			time.Sleep(a.delay)
			b, err := a.msg.Marshal()
			if err != nil {
				panic(err)
			}
			out := pdu.Header{Type: pdu.TypeData, TTL: 32, Src: a.from, Dst: f.self, Payload: b}
			if pb, err := out.Marshal(); err == nil {
				f.c.HandlePDU(pb)
			}
		}(a)
	}
	return nil
}

// syncWorld is server s holding capsule c (empty) with two peer replicas:
// p, honest, which holds three entries, and m, malicious, which holds
// nothing and sees every request s sends.
type syncWorld struct {
	s       *Server
	reg     *prometheus.Registry
	net     *peerNet
	c       pdu.Name
	p, m    *certs.Identity
	writer  *certs.Identity
	owner   *certs.Identity
	self    *certs.Identity // s
	meta    *certs.Metadata
	segment wire.Segment
}

func newSyncWorld(t *testing.T, cfg Config) *syncWorld {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ids := map[string]*certs.Identity{}
	for _, d := range []string{"s", "p", "m", "owner", "writer"} {
		kind := certs.KindServer
		if d == "owner" || d == "writer" {
			kind = certs.KindClient
		}
		id, err := certs.NewIdentity(kind, d)
		must(err)
		ids[d] = id
	}
	meta, err := certs.NewCapsule(ids["owner"].Key, ids["writer"].Public(), "synced")
	must(err)
	c := meta.Name()
	now := time.Now()
	ad, err := certs.IssueAdCert(ids["owner"].Key, c, ids["s"].Name, now.Add(-time.Minute), now.Add(time.Hour))
	must(err)
	rec, err := capsule.SignPlacement(ids["owner"].Key, meta, []pdu.Name{ids["s"].Name, ids["p"].Name, ids["m"].Name}, 2, now)
	must(err)
	// The placement and the empty capsule, as a CREATE would leave them.
	cfg.Dir = t.TempDir()
	places, err := openPlacements(filepath.Join(cfg.Dir, "placements"))
	must(err)
	pl, err := parsePlacement(&wire.Message{Op: wire.OpCreate, Capsule: c[:], Metadata: meta.Marshal(), AdCert: ad.Marshal(), Placement: rec.Marshal()}, ids["s"].Name, true)
	must(err)
	must(places.put(pl))
	st, err := store.Open(filepath.Join(cfg.Dir, "store"), store.Options{})
	must(err)
	must(st.Create(context.Background(), c, meta.Marshal()))
	must(st.Close())

	w := capsule.NewWriter(c, ids["writer"].Key)
	for i := range 3 {
		w.Append([]byte{byte(i)})
	}
	recs, hb := w.Flush()
	seg := wire.Segment{Heartbeat: hb.Marshal()}
	for _, r := range recs {
		seg.Records = append(seg.Records, r.Marshal())
	}

	sw := &syncWorld{reg: prometheus.NewRegistry(), c: c, p: ids["p"], m: ids["m"], owner: ids["owner"], self: ids["s"], writer: ids["writer"], meta: meta, segment: seg}
	sw.net = &peerNet{self: ids["s"].Name, done: make(chan struct{})}
	sw.net.c = client.New(ids["s"], sw.net, client.Options{RequestTimeout: 20 * time.Millisecond, Attempts: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sw.s, err = New(ctx, cfg, Deps{Identity: ids["s"], Client: sw.net.c, Registry: sw.reg})
	must(err)
	t.Cleanup(func() { _ = sw.s.Close(); _ = sw.net.Close() })
	return sw
}

// syncAnswer is an honest SYNC answer: the segment when asked from 1.
func (sw *syncWorld) syncAnswer(req *wire.Message, withData bool) *wire.Message {
	resp := req.Reply(wire.StatusOK)
	if withData {
		resp.Head = 3
		if req.From == 1 {
			resp.From, resp.To, resp.Segments = 1, 3, []wire.Segment{sw.segment}
		}
	}
	return resp
}

// TestSyncAnswersOnlyFromThePeerAsked: a malicious replica sees the SYNC
// the server sends to an honest peer and answers it at once, with that
// request's id, "nothing more" (and tries the ids after its own request's,
// as a counter would give them). Answers are taken only from the peer
// asked, so the honest peer's later answer still counts and the server
// catches up.
func TestSyncAnswersOnlyFromThePeerAsked(t *testing.T) {
	var sw *syncWorld
	var ready atomic.Bool
	serve := func(h pdu.Header, m *wire.Message) []peerAnswer {
		if m.Op != wire.OpSync || !ready.Load() {
			return nil
		}
		switch h.Dst {
		case sw.p.Name:
			return []peerAnswer{
				{from: sw.m.Name, msg: sw.syncAnswer(m, false)},
				{from: sw.p.Name, msg: sw.syncAnswer(m, true), delay: 100 * time.Millisecond},
			}
		case sw.m.Name:
			out := []peerAnswer{{from: sw.m.Name, msg: sw.syncAnswer(m, false)}}
			for k := uint64(1); k <= 4; k++ {
				g := sw.syncAnswer(m, false)
				g.ID = m.ID + k
				out = append(out, peerAnswer{from: sw.m.Name, msg: g})
			}
			return out
		}
		return nil
	}
	sw = newSyncWorld(t, Config{SyncInterval: 100 * time.Millisecond, PeerTimeout: time.Second})
	sw.net.set(serve, nil)
	ready.Store(true)
	deadline := time.Now().Add(15 * time.Second)
	for {
		h, err := sw.s.st.Head(sw.c)
		if err == nil && h.Seqno == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server never caught up from the honest peer (head %d, %v); wrong_source drops %v", h.Seqno, err,
				counterValue(sw.s.met.dropped.WithLabelValues("wrong_source")))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := counterValue(sw.s.met.dropped.WithLabelValues("wrong_source")); n < 1 {
		t.Fatalf("forged answers dropped as wrong_source: %v", n)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// TestSyncCutShortByNAK: a NAK (NO_ROUTE) that echoes the SYNC request
// ends the wait for that peer at once, and the peer is left alone for a
// while; a NAK whose echo is not the request (forged by someone who did
// not see it) does not.
func TestSyncCutShortByNAK(t *testing.T) {
	sw := newSyncWorld(t, Config{SyncInterval: time.Hour, PeerTimeout: 3 * time.Second})
	var genuine atomic.Bool
	sw.net.set(func(pdu.Header, *wire.Message) []peerAnswer { return nil }, func(h pdu.Header) (pdu.Code, bool, bool) {
		return pdu.CodeNoRoute, genuine.Load(), h.Dst == sw.p.Name
	})
	ctx := context.Background()
	ask := func() (time.Duration, error) {
		start := time.Now()
		_, err := sw.s.ask(ctx, sw.p.Name, &wire.Message{Op: wire.OpSync, Capsule: sw.c[:], From: 1})
		return time.Since(start), err
	}
	genuine.Store(true)
	took, err := ask()
	if !errors.Is(err, errNAK) || took > time.Second {
		t.Fatalf("genuine NAK: %v after %s (peer timeout 3s)", err, took)
	}
	genuine.Store(false)
	took, err = ask()
	if errors.Is(err, errNAK) || took < 3*time.Second {
		t.Fatalf("forged NAK: %v after %s, want the full peer timeout", err, took)
	}
	// The anti-entropy path backs off from the peer after the NAK.
	genuine.Store(true)
	before := counterValue(sw.s.met.syncSkipped)
	sw.s.syncCapsule(ctx, sw.c, false)
	if sw.s.sync.due(sw.p.Name, time.Now()) {
		t.Fatal("a peer that NAKed is asked again at once")
	}
	sw.s.syncCapsule(ctx, sw.c, false)
	if counterValue(sw.s.met.syncSkipped) <= before {
		t.Fatal("the peer backing off was asked")
	}
}
