package resolver

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/gdpnet/gdpnet/internal/fuzzseed"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
)

// goldenProof is the membership proof docs/PROTOCOL.md §6.3 shows.
func goldenProof(t testing.TB) (*MembershipProof, []byte) {
	w := newWorld(t, goldenBase)
	d := w.domain("golden")
	r := w.node(d, certs.KindResolver, "resolver golden")
	p := &MembershipProof{Meta: r.id.Meta, Member: r.member, Domain: d.Meta}
	b, err := p.marshal()
	if err != nil {
		t.Fatal(err)
	}
	return p, b
}

func TestProofGolden(t *testing.T) {
	_, b := goldenProof(t)
	path := filepath.Join("testdata", "proof.hex")
	if *update {
		if err := os.WriteFile(path, []byte(hex.EncodeToString(b)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(b); got != strings.TrimSpace(string(want)) {
		t.Fatalf("proof encoding changed:\n got %s\nwant %s", got, want)
	}
}

func TestGateCheck(t *testing.T) {
	w := newWorld(t, goldenBase)
	d1, d2, d3 := w.domain("one"), w.domain("two"), w.domain("three")
	now := goldenBase.Add(time.Minute)
	g := newGate(trust(now, d1, d2), d1.Name, time.Minute, 0)
	ok := w.node(d1, certs.KindResolver, "ok")
	other := w.node(d2, certs.KindRouter, "other domain")
	untrusted := w.node(d3, certs.KindRouter, "untrusted")
	server := w.node(d1, certs.KindServer, "a server")
	tests := []struct {
		name    string
		pub     []byte
		proof   *MembershipProof
		wantErr error
	}{
		{"member", ok.id.Meta.Key, &MembershipProof{ok.id.Meta, ok.member, d1.Meta}, nil},
		{"someone else's proof", other.id.Meta.Key, &MembershipProof{ok.id.Meta, ok.member, d1.Meta}, errNotAdmitted},
		{"member of another trusted domain", other.id.Meta.Key, &MembershipProof{other.id.Meta, other.member, d2.Meta}, errNotAdmitted},
		{"member of an untrusted domain", untrusted.id.Meta.Key, &MembershipProof{untrusted.id.Meta, untrusted.member, d3.Meta}, certs.ErrUntrustedDomain},
		{"not infrastructure", server.id.Meta.Key, &MembershipProof{server.id.Meta, server.member, d1.Meta}, errNotAdmitted},
		{"membership of another node", ok.id.Meta.Key, &MembershipProof{ok.id.Meta, other.member, d1.Meta}, errNotAdmitted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := g.check(tc.pub, tc.proof)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
		})
	}
	later := newGate(trust(goldenBase.Add(25*time.Hour), d1), d1.Name, time.Minute, 0)
	if _, err := later.check(ok.id.Meta.Key, &MembershipProof{ok.id.Meta, ok.member, d1.Meta}); !errors.Is(err, certs.ErrExpired) {
		t.Fatalf("expired membership: %v", err)
	}
}

func FuzzParseProof(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "proof.hex"))
	if err != nil {
		f.Fatal(err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		f.Fatal(err)
	}
	fuzzseed.Add(f, seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseProof(b)
		if err != nil {
			return
		}
		out, err := p.marshal()
		if err != nil {
			t.Fatalf("marshal parsed proof: %v", err)
		}
		back, err := parseProof(out)
		if err != nil || !bytes.Equal(back.Meta.Marshal(), p.Meta.Marshal()) || !bytes.Equal(back.Member.Marshal(), p.Member.Marshal()) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// TestGateDeniedPeers: the refused peers the member sweep looks up in the
// routing table are those whose refusal still lasts: not one whose
// refusal ran out, nor one admitted since.
func TestGateDeniedPeers(t *testing.T) {
	now := goldenBase
	g := newGate(&certs.Verifier{Now: func() time.Time { return now }}, pdu.Name{}, time.Minute, 0)
	a, b, c := peer.ID("a"), peer.ID("b"), peer.ID("c")
	g.deny(a, 0) // the gate's DenyFor: a minute
	g.deny(b, 10*time.Second)
	g.deny(c, 0)
	g.admit(c, admitted{until: now.Add(time.Hour)})
	got := g.deniedPeers()
	if len(got) != 2 || !slices.Contains(got, a) || !slices.Contains(got, b) {
		t.Fatalf("refused now: %v, want a and b", got)
	}
	now = now.Add(30 * time.Second)
	if got := g.deniedPeers(); len(got) != 1 || got[0] != a {
		t.Fatalf("30 s later: %v, want a only (b's refusal ran out)", got)
	}
	if g.isDenied(b) {
		t.Error("b still refused after its refusal ran out")
	}
}

// TestGateDeniedBounded: a flood of fresh peer ids that fail the
// handshake keeps at most maxDenied refusals (one forgotten early per
// newcomer, reported for the metric); ended refusals are swept first, so
// while they free room nothing still refused is forgotten; a peer refused
// again takes no new place.
func TestGateDeniedBounded(t *testing.T) {
	now := goldenBase
	g := newGate(&certs.Verifier{Now: func() time.Time { return now }}, pdu.Name{}, time.Minute, 100)
	id := func(i int) peer.ID { return peer.ID(fmt.Sprintf("flood-%d", i)) }
	evicted := 0
	for i := range 100 {
		if g.deny(id(i), 0) {
			evicted++
		}
	}
	if evicted != 0 || len(g.deniedPeers()) != 100 {
		t.Fatalf("100 refusals under a bound of 100: %d evicted, %d kept; want 0, 100", evicted, len(g.deniedPeers()))
	}
	if g.deny(id(5), 0) {
		t.Fatal("a peer refused again evicted another")
	}
	for i := 100; i < 10_100; i++ {
		if g.deny(id(i), 0) {
			evicted++
		}
	}
	if n := len(g.deniedPeers()); n != 100 || evicted != 10_000 {
		t.Fatalf("after 10,000 more: %d kept, %d evicted; want 100 kept, 10000 evicted", n, evicted)
	}
	if !g.isDenied(id(10_099)) {
		t.Fatal("the newest refusal was not kept")
	}
	// Refusals that ended make room without evicting live ones.
	now = now.Add(2 * time.Minute)
	for i := 20_000; i < 20_100; i++ {
		if g.deny(id(i), 0) {
			t.Fatalf("refusal %d evicted a live one while 100 had ended", i)
		}
	}
}
