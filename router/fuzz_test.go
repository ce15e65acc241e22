package router

import (
	"encoding/hex"
	"github.com/gdpnet/gdpnet/internal/fuzzseed"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/router/routertest"
)

// discardLink counts what the router sends and never fails.
type discardLink struct {
	peer pdu.Name
	sent atomic.Int64
	done chan struct{}
}

func (l *discardLink) Peer() pdu.Name        { return l.peer }
func (l *discardLink) Send([]byte) error     { l.sent.Add(1); return nil }
func (l *discardLink) Done() <-chan struct{} { return l.done }
func (l *discardLink) Close() error          { return nil }

// FuzzReceive feeds arbitrary bytes to the forwarding pipeline from an
// endpoint face and from a router face: nothing may panic, and every input
// is either forwarded, answered or counted as dropped.
func FuzzReceive(f *testing.F) {
	dom, err := routertest.NewDomain("fuzz")
	if err != nil {
		f.Fatal(err)
	}
	rc, _ := dom.NewRouter("fuzz router")
	r, err := New(Config{Listen: "127.0.0.1:9"}, Deps{Identity: rc.ID, Member: rc.Member, Domain: rc.Domain, Verifier: dom.Verifier})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = r.Close() })
	epLink := &discardLink{peer: pdu.Name{1}, done: make(chan struct{})}
	rtLink := &discardLink{peer: pdu.Name{2}, done: make(chan struct{})}
	ep, _ := r.Attach(epLink, FaceEndpoint, pdu.Name{}, "fuzz")
	rt, _ := r.Attach(rtLink, FaceRouter, dom.ID.Name, "fuzz")
	_ = r.fib.Install(pdu.Name{3}, Hop{Face: rt, Cost: 1, Origin: OriginStatic})

	seed := func(h pdu.Header) {
		b, err := h.Marshal()
		if err == nil {
			fuzzseed.Add(f, b)
		}
	}
	seed(pdu.Header{Type: pdu.TypeData, TTL: 5, Dst: pdu.Name{3}, Src: pdu.Name{1}, Payload: []byte("x")})
	seed(pdu.Header{Type: pdu.TypeEchoRequest, TTL: 5, Dst: rc.ID.Name, Src: pdu.Name{1}})
	seed(pdu.Header{Type: pdu.TypeNAK, Code: pdu.CodeNoRoute, TTL: 5, Dst: pdu.Name{3}, Src: pdu.Name{1}, Payload: make([]byte, 80)})
	for _, v := range mustVectors(f) {
		seed(pdu.Header{Type: pdu.TypeAdvertise, TTL: 1, Dst: rc.ID.Name, Src: pdu.Name{1}, Payload: v})
		seed(pdu.Header{Type: pdu.TypeWithdraw, TTL: 1, Dst: rc.ID.Name, Src: pdu.Name{1}, Payload: v})
	}
	fuzzseed.Add(f, []byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, face := range []*Face{ep, rt} {
			p := append([]byte(nil), b...)
			r.receive(face, p)
		}
	})
}

// mustVectors returns the ADVERTISE/WITHDRAW/RESULT payload vectors of
// package advert, as fuzz seeds.
func mustVectors(f *testing.F) [][]byte {
	data, err := os.ReadFile("../advert/testdata/control_vectors.txt")
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, line := range strings.Split(string(data), "\n") {
		if kind, hx, ok := strings.Cut(strings.TrimSpace(line), " "); ok && !strings.HasPrefix(kind, "#") {
			if b, err := hex.DecodeString(hx); err == nil {
				out = append(out, b)
			}
		}
	}
	return out
}
