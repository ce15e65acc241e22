//go:build linux

package sim

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/sim/linkem"
)

// TestNetnsIngress: the hub parses what a node's veth carries and injects
// only well-formed UDP from the node's own address into the emulator
// (which carries it over the link to a socket at the destination); every
// other frame is counted by reason, and nothing panics on short or
// truncated frames. The frames the hub writes (frame) parse back to the
// same datagram, with a valid IPv4 header checksum. No root needed.
func TestNetnsIngress(t *testing.T) {
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	net := linkem.NewNetwork(1)
	defer net.Close()
	if _, err := net.AddNode("a", a); err != nil {
		t.Fatal(err)
	}
	if _, err := net.AddNode("b", b); err != nil {
		t.Fatal(err)
	}
	if _, err := net.AddLink("a", "b", linkem.Config{Delay: time.Millisecond}, linkem.Config{Delay: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	rx, err := net.Listen(netip.AddrPortFrom(b, 9), 16)
	if err != nil {
		t.Fatal(err)
	}
	s := &Sim{net: net}
	na := &nsNode{n: &simNode{spec: &Node{Name: "a"}, addr: a}, hubMAC: mac(0x68, 0), nodeMAC: mac(0x6e, 0)}
	r := &nsRun{s: s, byAddr: map[netip.Addr]*nsNode{a: na}}
	src, dst := netip.AddrPortFrom(a, 4000), netip.AddrPortFrom(b, 9)
	payload := []byte("a datagram across the hub")
	good := frame(na.hubMAC, na.nodeMAC, src, dst, 7, payload)
	if ipChecksum(good[14:34]) != uint16(good[24])<<8|uint16(good[25]) {
		t.Fatal("the IPv4 header checksum does not check")
	}
	r.ingress(na, good)
	buf := make([]byte, 100)
	_ = rx.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err := rx.ReadFrom(buf)
	if err != nil || !bytes.Equal(buf[:n], payload) || from.String() != src.String() {
		t.Fatalf("injected datagram: %q from %v, %v", buf[:n], from, err)
	}
	if p, _ := net.Links()[0].Dirs[0].Delivered(); p != 1 {
		t.Fatalf("the link a→b delivered %d packets, want 1 (the datagram must cross the link)", p)
	}

	mutate := func(f func([]byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := []struct {
		name  string
		frame []byte
	}{
		{"short", good[:20]},
		{"truncated IP", good[:40]},
		{"not IPv4 ethertype", mutate(func(f []byte) []byte { f[12] = 0x86; f[13] = 0xdd; return f })},
		{"fragment", mutate(func(f []byte) []byte { f[14+6] |= 0x20; return f })},
		{"TCP", mutate(func(f []byte) []byte { f[14+9] = 6; return f })},
		{"spoofed source", mutate(func(f []byte) []byte { f[14+15] = 9; return f })},
		{"no such destination", mutate(func(f []byte) []byte { f[14+19] = 77; return f })},
		{"UDP length beyond", mutate(func(f []byte) []byte { f[34+4] = 0xff; return f })},
	}
	for _, c := range cases {
		before := r.Drops.Malformed.Load() + r.Drops.NotUDP.Load() + r.Drops.Fragment.Load() + r.Drops.Spoofed.Load() + r.Drops.NoDest.Load()
		r.ingress(na, c.frame)
		after := r.Drops.Malformed.Load() + r.Drops.NotUDP.Load() + r.Drops.Fragment.Load() + r.Drops.Spoofed.Load() + r.Drops.NoDest.Load()
		if after != before+1 {
			t.Errorf("%s: not counted as a drop", c.name)
		}
	}
	if r.Drops.Fragment.Load() != 1 || r.Drops.NotUDP.Load() != 1 || r.Drops.Spoofed.Load() != 1 || r.Drops.NoDest.Load() != 1 || r.Drops.Malformed.Load() != 4 {
		t.Errorf("drops by reason: fragment %d, not UDP %d, spoofed %d, no destination %d, malformed %d",
			r.Drops.Fragment.Load(), r.Drops.NotUDP.Load(), r.Drops.Spoofed.Load(), r.Drops.NoDest.Load(), r.Drops.Malformed.Load())
	}
	_ = rx.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _, err := rx.ReadFrom(buf); err == nil {
		t.Fatalf("a dropped frame reached the socket: %q", buf[:n])
	}
}

// TestPickBoot: a joining router's bootstrap peers are distinct routers
// already up, nsBootPeers of them when that many are up, and spread: over
// many joins every router up is picked, not only the first.
func TestPickBoot(t *testing.T) {
	var up []*nsNode
	for i := range 10 {
		up = append(up, &nsNode{alias: fmt.Sprintf("n%d", i)})
	}
	if got := pickBoot(up[:1], nsBootPeers); len(got) != 1 || got[0] != up[0] {
		t.Fatalf("one router up: picked %v", got)
	}
	seen := map[*nsNode]int{}
	for range 200 {
		got := pickBoot(up, nsBootPeers)
		if len(got) != nsBootPeers {
			t.Fatalf("picked %d, want %d", len(got), nsBootPeers)
		}
		dup := map[*nsNode]bool{}
		for _, nd := range got {
			if dup[nd] || !slices.Contains(up, nd) {
				t.Fatalf("picked %v: a repeat or a router not up", got)
			}
			dup[nd] = true
			seen[nd]++
		}
	}
	if len(seen) != len(up) {
		t.Errorf("over 200 joins only %d of %d routers were picked", len(seen), len(up))
	}
}
