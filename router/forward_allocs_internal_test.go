package router

import (
	"encoding/binary"
	"sync/atomic"
	"testing"

	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router/routertest"
	"github.com/gdpnet/gdpnet/tunnel"
)

// countRaw is a raw tunnel link that counts what the router sends to it
// directly (TrySend) and never fails.
type countRaw struct {
	peer pdu.Name
	sent atomic.Int64
	done chan struct{}
}

func (l *countRaw) Peer() pdu.Name        { return l.peer }
func (l *countRaw) Kind() tunnel.Kind     { return tunnel.KindRaw }
func (l *countRaw) Send([]byte) error     { l.sent.Add(1); return nil }
func (l *countRaw) TrySend([]byte) error  { l.sent.Add(1); return nil }
func (l *countRaw) Done() <-chan struct{} { return l.done }
func (l *countRaw) Close() error          { return nil }

// TestForwardAllocs: forwarding a DATA PDU from an endpoint to a raw face
// (every check on the way: rate limit, decode, source, TTL, dedup, FIB)
// allocates nothing. A per-PDU allocation was a third of the router's
// non-cipher CPU in BenchmarkForward (the allocation, and the garbage
// collections it caused).
func TestForwardAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instruments allocations")
	}
	dom, err := routertest.NewDomain("allocs")
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := dom.NewRouter("allocs router")
	r, err := New(Config{Listen: "127.0.0.1:9", Face: FaceConfig{RatePPS: -1}}, Deps{Identity: rc.ID, Member: rc.Member, Domain: rc.Domain, Verifier: dom.Verifier})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	src := &countRaw{peer: pdu.Name{1}, done: make(chan struct{})}
	dst := &countRaw{peer: pdu.Name{2}, done: make(chan struct{})}
	if _, err := r.Attach(src, FaceEndpoint, pdu.Name{}, "src"); err != nil {
		t.Fatal(err)
	}
	out, err := r.Attach(dst, FaceEndpoint, pdu.Name{}, "dst")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.fib.Install(dst.peer, Hop{Face: out, Origin: OriginStatic}); err != nil {
		t.Fatal(err)
	}
	h := pdu.Header{Type: pdu.TypeData, TTL: pdu.DefaultTTL, Dst: dst.peer, Src: src.peer, Payload: make([]byte, 150)}
	p, err := h.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var seq uint32
	send := func() {
		seq++
		binary.BigEndian.PutUint32(p[8:12], seq) // not a duplicate
		p[3] = pdu.DefaultTTL
		r.HandlePDU(src, p)
	}
	for range 100 {
		send()
	}
	avg := testing.AllocsPerRun(1000, send)
	if got := dst.sent.Load(); got != 1101 {
		t.Fatalf("%d PDUs forwarded, want 1101", got)
	}
	if avg > 0 {
		t.Fatalf("%.2f allocations per forwarded PDU, want 0", avg)
	}
}
