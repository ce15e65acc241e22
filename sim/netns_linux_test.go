//go:build linux

package sim

import (
	"bytes"
	"context"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/vishvananda/netns"

	"github.com/gdpnet/gdpnet/internal/config"
	"github.com/gdpnet/gdpnet/resolver"
	"github.com/gdpnet/gdpnet/router"
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

// TestSeedBoot: a joining router's bootstrap peers (join: seeded) are
// distinct routers already up: the dhtClose nearest to it by XOR distance
// of their Kademlia keys, and one at every distance (common prefix
// length) the routers up cover; with one router up, that one.
func TestSeedBoot(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	mk := func(i int) *nsNode {
		return &nsNode{alias: fmt.Sprintf("n%d", i), n: &simNode{peer: peer.ID(fmt.Sprintf("peer %d", i))}}
	}
	var up []*nsNode
	for i := range 60 {
		up = append(up, mk(i))
	}
	nd := mk(1000)
	if got := seedBoot(nd, up[:1], rng); len(got) != 1 || got[0] != up[0] {
		t.Fatalf("one router up: %v", got)
	}
	got := seedBoot(nd, up, rng)
	me := kadKey(nd.n)
	dist := func(u *nsNode) []byte {
		k := kadKey(u.n)
		d := make([]byte, 32)
		for b := range d {
			d[b] = k[b] ^ me[b]
		}
		return d
	}
	byDist := slices.Clone(up)
	slices.SortFunc(byDist, func(a, b *nsNode) int { return bytes.Compare(dist(a), dist(b)) })
	for _, want := range byDist[:dhtClose] {
		if !slices.Contains(got, want) {
			t.Errorf("%s, one of the %d nearest, is not a seed", want.alias, dhtClose)
		}
	}
	cpls := map[int]bool{}
	for _, u := range up {
		k := kadKey(u.n)
		cpls[cpl(&me, &k)] = true
	}
	seen := map[*nsNode]bool{}
	for _, u := range got {
		if seen[u] || !slices.Contains(up, u) {
			t.Fatalf("seeds %v: a repeat or a router not up", got)
		}
		seen[u] = true
		k := kadKey(u.n)
		delete(cpls, cpl(&me, &k))
	}
	if len(cpls) > 0 {
		t.Errorf("no seed at distances (common prefix lengths) %v", cpls)
	}
	if len(got) >= len(up)/2 {
		t.Errorf("%d seeds of %d routers up: not a seeded join", len(got), len(up))
	}
	t.Logf("%d seeds among %d routers up", len(got), len(up))
}

// TestWriteConfigSeeded: a joining router's generated config loads and
// validates as a router's, joins seeded through exactly the routers it
// was given, and keeps retrying them; the first router's has no
// bootstrap and so no join to seed.
func TestWriteConfigSeeded(t *testing.T) {
	r := &nsRun{dir: t.TempDir(), domPath: "domain.meta"}
	mk := func(i int) *nsNode {
		return &nsNode{alias: fmt.Sprintf("n%d", i), member: "m", cfg: filepath.Join(r.dir, fmt.Sprintf("n%d.yaml", i)),
			dhtAddr: fmt.Sprintf("/ip4/10.0.0.%d/udp/8011/quic-v1/p2p/12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsN%d", i, i),
			n:       &simNode{spec: &Node{Name: fmt.Sprintf("r%d", i)}, addr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})}}
	}
	r.s = &Sim{top: &Topology{}, routers: 3}
	a, b, c := mk(1), mk(2), mk(3)
	load := func(nd *nsNode) router.Config {
		t.Helper()
		var cfg router.Config
		if err := config.Load(nd.cfg, &cfg); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	if err := r.writeConfig(a, nil); err != nil {
		t.Fatal(err)
	}
	if got := load(a).Resolver; len(got.Bootstrap) != 0 || got.Mode != "dht" {
		t.Fatalf("first router: %+v", got)
	}
	if err := r.writeConfig(c, []*nsNode{a, b}); err != nil {
		t.Fatal(err)
	}
	got := load(c).Resolver
	if got.Join != resolver.JoinSeeded || !slices.Equal(got.Bootstrap, []string{a.dhtAddr, b.dhtAddr}) || got.BootstrapTimeout.Std() != 2*time.Minute ||
		load(c).Resolver.Timeout.Std() != 30*time.Second || got.PutTimeout.Std() != 20*time.Second {
		t.Fatalf("joining router: join %q, bootstrap %v, bootstrap_timeout %s", got.Join, got.Bootstrap, got.BootstrapTimeout)
	}
	if tick := load(c).WithDefaults().Tick.Std(); tick != router.DefaultTick {
		t.Errorf("3 routers: tick %s, want the default", tick)
	}
	r.s.routers = coarseTickRouters + 1
	if err := r.writeConfig(c, []*nsNode{a, b}); err != nil {
		t.Fatal(err)
	}
	if tick := load(c).WithDefaults().Tick.Std(); tick != 500*time.Millisecond {
		t.Errorf("%d routers: tick %s, want 500ms", r.s.routers, tick)
	}
}

// TestEndpointsStartEarly: the routers endpoints attach to start right
// after the first router; the endpoints start once four fifths of the
// routers are up (epGo), each once its own router is up, and not at all
// when the routers' start failed (epStop).
func TestEndpointsStartEarly(t *testing.T) {
	for n, want := range map[int]int{1: 1, 4: 4, 12: 10, 56: 45, 100: 80} {
		if got := endpointsAt(n); got != want {
			t.Errorf("endpointsAt(%d) = %d, want %d", n, got, want)
		}
	}
	top := &Topology{Nodes: []*Node{{Name: "r1", Kind: KindRouter}, {Name: "r2", Kind: KindRouter}, {Name: "r3", Kind: KindRouter},
		{Name: "r4", Kind: KindRouter}, {Name: "c1", Kind: KindClient, Attach: "r4"}, {Name: "c2", Kind: KindClient, Attach: "r2"}}}
	s := &Sim{top: top, nodes: map[string]*simNode{}, opts: Options{Parallel: 4}}
	r := &nsRun{s: s}
	for _, spec := range top.Nodes {
		n := &simNode{spec: spec}
		nd := &nsNode{n: n}
		if spec.Kind == KindRouter {
			nd.joined = make(chan struct{})
		}
		n.ns = nd
		s.nodes[spec.Name], s.order = n, append(s.order, n)
		r.nodes = append(r.nodes, nd)
	}
	var order []string
	for _, nd := range endpointRoutersFirst(r.routers(), top.Nodes) {
		order = append(order, nd.n.spec.Name)
	}
	if !slices.Equal(order, []string{"r1", "r2", "r4", "r3"}) {
		t.Errorf("start order %v, want r1, then the endpoints' routers r2 and r4, then r3", order)
	}

	run := func(stop bool) []string {
		r.epGo, r.epStop = make(chan struct{}), make(chan struct{})
		for _, nd := range r.routers() {
			nd.joined = make(chan struct{})
		}
		started := make(chan string, 2)
		r.startEp = func(_ context.Context, n *simNode) error { started <- n.spec.Name; return nil }
		done := make(chan error, 1)
		go func() { done <- r.startEndpoints(context.Background(), time.Now()) }()
		close(s.nodes["r2"].ns.joined)
		select {
		case name := <-started:
			t.Fatalf("%s started before epGo", name)
		case <-time.After(50 * time.Millisecond):
		}
		if stop {
			close(r.epStop)
		} else {
			close(r.epGo)
			if name := <-started; name != "c2" {
				t.Fatalf("%s started, want c2 (its router r2 is up)", name)
			}
			select {
			case name := <-started:
				t.Fatalf("%s started before its router r4 was up", name)
			case <-time.After(50 * time.Millisecond):
			}
			close(s.nodes["r4"].ns.joined)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		close(started)
		var got []string
		for name := range started {
			got = append(got, name)
		}
		return got
	}
	if got := run(false); !slices.Equal(got, []string{"c1"}) {
		t.Errorf("after r4 was up: started %v, want c1", got)
	}
	if got := run(true); len(got) != 0 {
		t.Errorf("after epStop: started %v, want none", got)
	}
}

// TestRouterProcessSettings: a router process starts with the simulator's
// runtime settings (one P, GOGC 200) and its timer slack
// (NetnsTimerSlack, or Options.RouterTimerSlack), inherited by what it
// starts; the simulator's own threads keep theirs. A shell script stands
// in for gdp and prints what it got. Needs root (it enters a namespace:
// this one).
func TestRouterProcessSettings(t *testing.T) {
	if err := NetnsAvailable(); err != nil {
		t.Skipf("netns mode unavailable here: %v", err)
	}
	h, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	dir := t.TempDir()
	bin := filepath.Join(dir, "gdp")
	script := "#!/bin/sh\nsh -c 'cat /proc/self/timerslack_ns'\necho \"GOMAXPROCS=$GOMAXPROCS GOGC=$GOGC $1 $2\"\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	own := func() map[string]string {
		out := map[string]string{}
		tasks, _ := filepath.Glob("/proc/self/task/*/timerslack_ns")
		for _, f := range tasks {
			b, _ := os.ReadFile(f)
			out[f] = strings.TrimSpace(string(b))
		}
		return out
	}
	base, err := os.ReadFile("/proc/self/timerslack_ns")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		opt  time.Duration
		want string
	}{
		{0, fmt.Sprint(NetnsTimerSlack.Nanoseconds())},
		{2 * time.Millisecond, "2000000"}, // not the default: the option is taken
		// The kernel's default is what this process has (50µs unless
		// whatever started the tests set its own, e.g. systemd's
		// TimerSlackNSec): the child inherits it unchanged.
		{-1, strings.TrimSpace(string(base))},
	} {
		r := &nsRun{s: &Sim{opts: Options{RouterTimerSlack: tc.opt, RouterEnv: []string{"GOGC=150"}}}, bin: bin, id: "t"}
		nd := &nsNode{cfg: "r.yaml"}
		logf, err := os.Create(filepath.Join(dir, "log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := r.routerCmd(nd, logf)
		if err := r.spawn(h, cmd); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		logf.Close()
		b, _ := os.ReadFile(filepath.Join(dir, "log"))
		want := tc.want + "\nGOMAXPROCS=1 GOGC=150 router --config\n"
		if string(b) != want {
			t.Errorf("slack option %s: the router got %q, want %q", tc.opt, b, want)
		}
	}
	for f, v := range own() {
		if w := strings.TrimSpace(string(base)); v != w {
			t.Errorf("the simulator's thread %s: timer slack %s after starting routers, %s before", f, v, w)
		}
	}
}
