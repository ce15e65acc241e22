package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"
)

// Params are a built-in topology's arguments; zero fields take each
// built-in's default.
type Params struct {
	N       int     // routers (linear, star leaves, ring, waxman)
	Depth   int     // tree
	Fanout  int     // tree
	Rows    int     // grid
	Cols    int     // grid
	Alpha   float64 // waxman: how fast link probability falls with distance (default 0.4)
	Beta    float64 // waxman: link density (default 0.4)
	Sites   int     // edgecloud: edge sites, each its own domain
	Clients int     // edgecloud: clients per site
	Delay   time.Duration
	Seed    uint64
}

// Builtins are the built-in topology names with what they take.
var Builtins = map[string]string{
	"linear":    "--n routers in a line (default 4); a client at each end pings the other",
	"star":      "--n leaf routers around a hub (default 4); a client per leaf, the first pings every other",
	"tree":      "--depth, --fanout (default 2, 2): a router tree, a client per leaf; first leaf pings last",
	"ring":      "--n routers in a ring (default 6); clients at opposite sides",
	"grid":      "--rows, --cols (default 3, 3): routers in a mesh; clients at opposite corners",
	"waxman":    "--n routers (default 20), --alpha, --beta, --seed: Waxman random graph, delay by distance",
	"edgecloud": "--sites, --clients (default 3, 2): edge domains on a two-router cloud holding three capsule servers",
}

// BuiltinSettings are the settings (gdp sim topo flags) each built-in
// reads besides --delay and --seed; CheckBuiltinSettings refuses others,
// which it would ignore (Session 19: `grid --n 25` printed a 3×3 grid).
var BuiltinSettings = map[string][]string{
	"linear":    {"n"},
	"star":      {"n"},
	"ring":      {"n"},
	"tree":      {"depth", "fanout"},
	"grid":      {"rows", "cols"},
	"waxman":    {"n", "alpha", "beta"},
	"edgecloud": {"sites", "clients"},
}

// CheckBuiltinSettings says which of the settings given (flag names) the
// built-in name does not read.
func CheckBuiltinSettings(name string, given []string) error {
	own, ok := BuiltinSettings[name]
	if !ok {
		return nil // Builtin names the unknown built-in
	}
	var bad []string
	for _, g := range given {
		if g != "delay" && g != "seed" && !slices.Contains(own, g) {
			bad = append(bad, "--"+g)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%s does not read %s (its settings: --%s, --delay, --seed)", name, strings.Join(bad, ", "), strings.Join(own, ", --"))
}

// BuiltinNames lists the built-ins in order.
func BuiltinNames() []string {
	var names []string
	for n := range Builtins {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Builtin makes a built-in topology.
func Builtin(name string, p Params) (*Topology, error) {
	for _, v := range []struct {
		flag string
		v    float64
	}{{"n", float64(p.N)}, {"depth", float64(p.Depth)}, {"fanout", float64(p.Fanout)}, {"rows", float64(p.Rows)},
		{"cols", float64(p.Cols)}, {"alpha", p.Alpha}, {"beta", p.Beta}, {"sites", float64(p.Sites)},
		{"clients", float64(p.Clients)}, {"delay", float64(p.Delay)}} {
		if v.v < 0 {
			// Before Session 19 a negative value silently took the default.
			return nil, fmt.Errorf("%s: --%s is negative (0 or unset: the default)", name, v.flag)
		}
	}
	if p.Delay == 0 {
		p.Delay = 5 * time.Millisecond
	}
	var t *Topology
	switch name {
	case "linear":
		t = linear(def(p.N, 4), p.Delay)
	case "star":
		t = star(def(p.N, 4), p.Delay)
	case "tree":
		t = tree(def(p.Depth, 2), def(p.Fanout, 2), p.Delay)
	case "ring":
		t = ring(def(p.N, 6), p.Delay)
	case "grid":
		t = grid(def(p.Rows, 3), def(p.Cols, 3), p.Delay)
	case "waxman":
		t = waxman(def(p.N, 20), deff(p.Alpha, 0.4), deff(p.Beta, 0.4), p.Seed, p.Delay)
	case "edgecloud":
		t = edgeCloud(def(p.Sites, 3), def(p.Clients, 2), p.Delay)
	default:
		return nil, fmt.Errorf("no built-in topology %q (known: %s)", name, strings.Join(BuiltinNames(), ", "))
	}
	t.Seed = p.Seed
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

func def(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

func deff(v, d float64) float64 {
	if v <= 0 {
		return d
	}
	return v
}

func rname(i int) string { return fmt.Sprintf("r%d", i) }

func linear(n int, d time.Duration) *Topology {
	t := New(fmt.Sprintf("linear-%d", n))
	t.Defaults.Delay = d
	for i := 1; i <= n; i++ {
		t.AddRouter(rname(i), "")
		if i > 1 {
			t.Link(rname(i-1), rname(i))
		}
	}
	t.AddClient("c1", rname(1))
	t.AddClient("c2", rname(n))
	t.Ping("c1", "c2", 20, 100*time.Millisecond)
	return t
}

func star(n int, d time.Duration) *Topology {
	t := New(fmt.Sprintf("star-%d", n))
	t.Defaults.Delay = d
	t.AddRouter("hub", "")
	for i := 1; i <= n; i++ {
		t.AddRouter(rname(i), "")
		t.Link("hub", rname(i))
		t.AddClient(fmt.Sprintf("c%d", i), rname(i))
	}
	for i := 2; i <= n; i++ {
		t.Ping("c1", fmt.Sprintf("c%d", i), 10, 100*time.Millisecond)
	}
	return t
}

func tree(depth, fanout int, d time.Duration) *Topology {
	t := New(fmt.Sprintf("tree-%d-%d", depth, fanout))
	t.Defaults.Delay = d
	t.AddRouter("r1", "")
	level, next := []string{"r1"}, 2
	for range depth {
		var nl []string
		for _, parent := range level {
			for range fanout {
				r := rname(next)
				next++
				t.AddRouter(r, "")
				t.Link(parent, r)
				nl = append(nl, r)
			}
		}
		level = nl
	}
	for i, leaf := range level {
		t.AddClient(fmt.Sprintf("c%d", i+1), leaf)
	}
	if len(level) > 1 {
		t.Ping("c1", fmt.Sprintf("c%d", len(level)), 20, 100*time.Millisecond)
	}
	return t
}

func ring(n int, d time.Duration) *Topology {
	t := New(fmt.Sprintf("ring-%d", n))
	t.Defaults.Delay = d
	for i := 1; i <= n; i++ {
		t.AddRouter(rname(i), "")
	}
	for i := 1; i <= n; i++ {
		t.Link(rname(i), rname(i%n+1))
	}
	t.AddClient("c1", rname(1))
	t.AddClient("c2", rname(n/2+1))
	t.Ping("c1", "c2", 20, 100*time.Millisecond)
	return t
}

func grid(rows, cols int, d time.Duration) *Topology {
	t := New(fmt.Sprintf("grid-%dx%d", rows, cols))
	t.Defaults.Delay = d
	at := func(r, c int) string { return fmt.Sprintf("r%d_%d", r, c) }
	for r := range rows {
		for c := range cols {
			t.AddRouter(at(r, c), "")
			if c > 0 {
				t.Link(at(r, c-1), at(r, c))
			}
			if r > 0 {
				t.Link(at(r-1, c), at(r, c))
			}
		}
	}
	t.AddClient("c1", at(0, 0))
	t.AddClient("c2", at(rows-1, cols-1))
	t.Ping("c1", "c2", 20, 100*time.Millisecond)
	return t
}

// waxman places n routers uniformly in the unit square and links u, v with
// probability beta·exp(-dist/(alpha·L)), L = √2; components are then joined
// by their closest pair. A link's delay is its length times 10·d.
func waxman(n int, alpha, beta float64, seed uint64, d time.Duration) *Topology {
	t := New(fmt.Sprintf("waxman-%d", n))
	rng := rand.New(rand.NewPCG(seed, 0x5157))
	xs, ys := make([]float64, n), make([]float64, n)
	for i := range n {
		xs[i], ys[i] = rng.Float64(), rng.Float64()
		t.AddRouter(rname(i+1), "")
	}
	dist := func(i, j int) float64 { return math.Hypot(xs[i]-xs[j], ys[i]-ys[j]) }
	delay := func(i, j int) time.Duration {
		return max(time.Duration(dist(i, j)*10*float64(d)).Round(100*time.Microsecond), 100*time.Microsecond)
	}
	parent := make([]int, n)
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		if parent[i] != i {
			parent[i] = find(parent[i])
		}
		return parent[i]
	}
	L := math.Sqrt2
	for i := range n {
		for j := i + 1; j < n; j++ {
			if rng.Float64() < beta*math.Exp(-dist(i, j)/(alpha*L)) {
				t.Link(rname(i+1), rname(j+1), Delay(delay(i, j)))
				parent[find(i)] = find(j)
			}
		}
	}
	for {
		best, bi, bj := math.Inf(1), -1, -1
		for i := range n {
			for j := range n {
				if find(i) != find(j) && dist(i, j) < best {
					best, bi, bj = dist(i, j), i, j
				}
			}
		}
		if bi < 0 {
			break
		}
		t.Link(rname(bi+1), rname(bj+1), Delay(delay(bi, bj)))
		parent[find(bi)] = find(bj)
	}
	t.AddClient("c1", rname(1))
	t.AddClient("c2", rname(n))
	t.Ping("c1", "c2", 20, 100*time.Millisecond)
	return t
}

// edgeCloud is the GDP papers' shape: a cloud domain (two core routers,
// three capsule servers) and edge sites, each its own trust domain with an
// edge router behind a slow, lossy uplink and clients on fast local links.
// The first client writes a capsule replicated on the cloud servers
// (W = 2), the last client of the last site reads it back, and pings cross
// the cloud.
func edgeCloud(sites, clients int, d time.Duration) *Topology {
	t := New(fmt.Sprintf("edgecloud-%d-%d", sites, clients))
	t.Domains = []string{"cloud"}
	t.AddRouter("core1", "cloud")
	t.AddRouter("core2", "cloud")
	t.Link("core1", "core2", Delay(d/5), Bandwidth(1e9))
	servers := []string{"s1", "s2", "s3"}
	for i, s := range servers {
		core := []string{"core1", "core2"}[i%2]
		t.AddServer(s, core)
		t.Link(core, s, Delay(d/10), Bandwidth(1e9))
	}
	var first, last string
	for s := 1; s <= sites; s++ {
		dom := fmt.Sprintf("edge%d", s)
		t.Domains = append(t.Domains, dom)
		er := fmt.Sprintf("e%d", s)
		t.AddRouter(er, dom)
		t.Link(er, []string{"core1", "core2"}[s%2], Delay(4*d), Bandwidth(20e6), Loss(0.001))
		for c := 1; c <= clients; c++ {
			cn := fmt.Sprintf("c%d_%d", s, c)
			t.AddClient(cn, er)
			t.Link(er, cn, Delay(d/5), Bandwidth(100e6))
			if first == "" {
				first = cn
			}
			last = cn
		}
	}
	t.Workloads = append(t.Workloads, &Workload{Kind: WorkCapsule, From: first, Servers: servers, W: 2, Count: 50, Size: 200,
		Readers: []string{last}})
	t.Ping(first, last, 10, 100*time.Millisecond)
	return t
}
