package sim

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gdpnet/gdpnet/sim/linkem"
)

// Node kinds.
const (
	KindRouter = "router"
	KindServer = "server" // a capsule server (capsuled)
	KindClient = "client"
)

// Resolvers a topology may use.
const (
	ResolverStatic = "static" // one shared in-process static resolver
	// ResolverDHT ("dht", sim/dht.go): a kad-dht node per router.
)

// Topology is one experiment: the network and what happens on it. Build it
// with New and the Add/Link methods, or Parse a YAML file; Validate (which
// Parse runs) says what is wrong.
type Topology struct {
	Name string
	// Seed fixes every random choice (loss, jitter, Waxman placement).
	Seed uint64
	// Resolver is how routers find names: "static" (default) or "dht"
	// (a real kad-dht node per router, over the emulated links).
	Resolver string
	// Mode is how to run it: "inprocess" (default) or "netns" (real
	// router processes in network namespaces; root). Options.Mode wins.
	Mode string
	// Defaults are the link settings a link does not set itself.
	Defaults linkem.Config
	// Domains are the trust domains; default one, "default".
	Domains   []string
	Nodes     []*Node
	Links     []*Link
	Workloads []*Workload
	Failures  []*Failure
	Measure   Measure

	file string         // for error messages
	pos  map[any]fields // where each element came from in the YAML
}

// Node is one router, capsule server or client.
type Node struct {
	Name string
	Kind string
	// Domain is the node's trust domain (default: the first).
	Domain string
	// Attach is the router a server or client attaches to. A link to it
	// is added with the defaults when the topology has none.
	Attach string
}

// Link is an emulated link between two nodes, the same both ways.
type Link struct {
	A, B string
	linkem.Config
	set map[string]bool // fields the YAML or options set (the rest: Defaults)
}

// ID is the link's name, "a-b".
func (l *Link) ID() string { return l.A + "-" + l.B }

// Workload kinds.
const (
	WorkPing    = "ping"    // ECHO_REQUEST by name, one at a time
	WorkStream  = "stream"  // DATA PDUs at a fixed rate
	WorkCapsule = "capsule" // a capsule appended by a writer, read back by readers
	WorkUDP     = "udp"     // raw UDP datagrams between two nodes' addresses (iperf-style; no gdpnet)
)

// Workload is traffic to generate.
type Workload struct {
	Kind string
	// From is the sending client (ping, stream); To the destination node.
	From, To string
	// Count is how many pings (default 10) or capsule records (default
	// 100).
	Count int
	// Interval between pings (default 100ms).
	Interval time.Duration
	// Size of a ping's payload, a stream PDU's payload or a record
	// (default 64).
	Size int
	// Rate of a stream in PDUs per second (default 100).
	Rate float64
	// Start is when the workload begins, from the start of the experiment.
	Start time.Duration
	// Duration of a stream (default 1s).
	Duration time.Duration
	// Servers hold a capsule's replicas; W of them must store each record
	// (default a majority).
	Servers []string
	W       int
	// Readers read the capsule back after the writer is done.
	Readers []string
}

// Failure kinds.
const (
	FailLinkDown  = "link_down"
	FailLinkUp    = "link_up"
	FailCrash     = "crash"
	FailRestart   = "restart"
	FailPartition = "partition"
	FailHeal      = "heal"
)

// Failure is an event at a time.
type Failure struct {
	At   time.Duration
	Kind string
	// Node to crash or restart; Link ("a-b") to cut or restore.
	Node, Link string
	// Groups of a partition: links between different groups go down.
	Groups [][]string
}

// Measure says what to record beyond the defaults.
type Measure struct {
	// Duration bounds the experiment; default: until the workloads end
	// and the last failure is two seconds past.
	Duration time.Duration
	// Pcap lists node pairs ("a-b", one a router) whose PDUs — and, for
	// a link, whose datagrams — are written to pcap files.
	Pcap []string
	// Plots asks for PNG and SVG plots in the results directory.
	Plots bool
}

// New starts an empty topology.
func New(name string) *Topology { return &Topology{Name: name} }

// AddRouter adds a router in domain ("" is the first domain).
func (t *Topology) AddRouter(name, domain string) *Node {
	return t.add(&Node{Name: name, Kind: KindRouter, Domain: domain})
}

// AddServer adds a capsule server attached to router.
func (t *Topology) AddServer(name, router string) *Node {
	return t.add(&Node{Name: name, Kind: KindServer, Attach: router})
}

// AddClient adds a client attached to router.
func (t *Topology) AddClient(name, router string) *Node {
	return t.add(&Node{Name: name, Kind: KindClient, Attach: router})
}

func (t *Topology) add(n *Node) *Node {
	t.Nodes = append(t.Nodes, n)
	return n
}

// LinkOption sets one property of a link.
type LinkOption func(*Link)

func opt(field string, f func(*linkem.Config)) LinkOption {
	return func(l *Link) {
		f(&l.Config)
		if l.set == nil {
			l.set = map[string]bool{}
		}
		l.set[field] = true
	}
}

// Delay is the one-way propagation delay.
func Delay(d time.Duration) LinkOption { return opt("delay", func(c *linkem.Config) { c.Delay = d }) }

// Jitter adds a uniform random delay in [0, d).
func Jitter(d time.Duration) LinkOption {
	return opt("jitter", func(c *linkem.Config) { c.Jitter = d })
}

// Loss drops each packet with probability p.
func Loss(p float64) LinkOption { return opt("loss", func(c *linkem.Config) { c.Loss = p }) }

// Gilbert makes loss bursty (linkem.GilbertElliott).
func Gilbert(g linkem.GilbertElliott) LinkOption {
	return opt("gilbert", func(c *linkem.Config) { c.GE = &g })
}

// Bandwidth in bits per second.
func Bandwidth(bps int64) LinkOption {
	return opt("bandwidth", func(c *linkem.Config) { c.Bandwidth = bps })
}

// MTU is the largest packet payload the link carries.
func MTU(n int) LinkOption { return opt("mtu", func(c *linkem.Config) { c.MTU = n }) }

// Queue is the longest a packet waits for the wire.
func Queue(d time.Duration) LinkOption {
	return opt("queue", func(c *linkem.Config) { c.QueueLimit = d })
}

// Link joins a and b.
func (t *Topology) Link(a, b string, opts ...LinkOption) *Link {
	l := &Link{A: a, B: b, set: map[string]bool{}}
	for _, o := range opts {
		o(l)
	}
	t.Links = append(t.Links, l)
	return l
}

// Ping adds a ping workload.
func (t *Topology) Ping(from, to string, count int, interval time.Duration) *Workload {
	w := &Workload{Kind: WorkPing, From: from, To: to, Count: count, Interval: interval}
	t.Workloads = append(t.Workloads, w)
	return w
}

// At adds a failure event.
func (t *Topology) At(at time.Duration, f Failure) *Failure {
	f.At = at
	t.Failures = append(t.Failures, &f)
	return &f
}

// Node returns the node called name, or nil.
func (t *Topology) Node(name string) *Node {
	for _, n := range t.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// FindLink returns the link between a and b (either way round), or nil.
func (t *Topology) FindLink(a, b string) *Link {
	for _, l := range t.Links {
		if (l.A == a && l.B == b) || (l.A == b && l.B == a) {
			return l
		}
	}
	return nil
}

// linkByID finds "a-b" (either order).
func (t *Topology) linkByID(id string) *Link {
	for _, l := range t.Links {
		if l.ID() == id || l.B+"-"+l.A == id {
			return l
		}
	}
	return nil
}

// ValidationError lists everything wrong with a topology, each with its
// place in the file when it came from one.
type ValidationError struct {
	Problems []Problem
}

// Problem is one thing wrong: where, which field, what.
type Problem struct {
	File  string
	Line  int
	Field string // e.g. links[2].delay
	Msg   string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteString(":")
	}
	if p.Line > 0 {
		fmt.Fprintf(&b, "%d: ", p.Line)
	} else if p.File != "" {
		b.WriteString(" ")
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "invalid topology:\n  " + strings.Join(lines, "\n  ")
}

// fields maps an element's field names to their line ("" is the element).
type fields map[string]int

type checker struct {
	t     *Topology
	probs []Problem
}

func (c *checker) bad(elem any, field, path, format string, a ...any) {
	line := 0
	if f, ok := c.t.pos[elem]; ok {
		if l, ok := f[field]; ok {
			line = l
		} else {
			line = f[""]
		}
	}
	if field != "" {
		path += "." + field
	}
	c.probs = append(c.probs, Problem{File: c.t.file, Line: line, Field: path, Msg: fmt.Sprintf(format, a...)})
}

// Validate fills defaults (domains, links to attached routers, each link's
// unset fields from Defaults) and checks every reference and value; the
// error is a *ValidationError naming each problem's line and field.
func (t *Topology) Validate() error {
	c := &checker{t: t}
	if t.Resolver == "" {
		t.Resolver = ResolverStatic
	}
	if t.Resolver != ResolverStatic && t.Resolver != ResolverDHT {
		c.bad(t, "resolver", "topology", "unknown resolver %q (known: %s, %s)", t.Resolver, ResolverStatic, ResolverDHT)
	}
	if t.Mode != "" && t.Mode != ModeInProcess && t.Mode != ModeNetns {
		c.bad(t, "mode", "topology", "unknown mode %q (known: %s, %s)", t.Mode, ModeInProcess, ModeNetns)
	}
	if err := t.Defaults.Validate(); err != nil {
		c.bad(t, "defaults", "topology", "%v", err)
	}
	if len(t.Domains) == 0 {
		t.Domains = []string{"default"}
	}
	if t.Resolver == ResolverDHT && len(t.Domains) > 1 {
		// Each domain's routers would form their own DHT, and a name of
		// one domain would not resolve in another: the federation's
		// global tier (border routers) is not built in the simulator.
		c.bad(t, "resolver", "topology", "resolver dht runs one domain (got %d: %v); use resolver static across domains", len(t.Domains), t.Domains)
	}
	doms := map[string]bool{}
	for i, d := range t.Domains {
		if d == "" || doms[d] {
			c.bad(t, "domains", fmt.Sprintf("domains[%d]", i), "empty or repeated domain %q", d)
		}
		doms[d] = true
	}
	if len(t.Nodes) == 0 {
		c.bad(t, "nodes", "topology", "no nodes")
	}
	byName := map[string]*Node{}
	for i, n := range t.Nodes {
		p := fmt.Sprintf("nodes[%d]", i)
		switch {
		case n.Name == "":
			c.bad(n, "name", p, "a node needs a name")
		case strings.ContainsAny(n.Name, "- \t/"):
			c.bad(n, "name", p, "name %q may not contain '-', '/' or spaces (links are named a-b)", n.Name)
		case byName[n.Name] != nil:
			c.bad(n, "name", p, "node %q is defined twice", n.Name)
		}
		byName[n.Name] = n
		switch n.Kind {
		case KindRouter, KindServer, KindClient:
		default:
			c.bad(n, "kind", p, "unknown kind %q (router, server or client)", n.Kind)
		}
		if n.Domain == "" {
			n.Domain = t.Domains[0]
		} else if !doms[n.Domain] {
			c.bad(n, "domain", p, "domain %q is not in domains %v", n.Domain, t.Domains)
		}
	}
	for i, n := range t.Nodes {
		p := fmt.Sprintf("nodes[%d]", i)
		switch {
		case n.Kind == KindRouter && n.Attach != "":
			c.bad(n, "attach", p, "a router attaches to nothing (routers are joined by links)")
		case (n.Kind == KindServer || n.Kind == KindClient) && n.Attach == "":
			c.bad(n, "attach", p, "a %s must attach to a router", n.Kind)
		case n.Attach != "" && (byName[n.Attach] == nil || byName[n.Attach].Kind != KindRouter):
			c.bad(n, "attach", p, "%q is not a router of this topology", n.Attach)
		case n.Attach != "":
			if r := byName[n.Attach]; r.Domain != n.Domain && t.pos[n]["domain"] == 0 {
				n.Domain = r.Domain // an endpoint is in its router's domain unless it says otherwise
			}
			if t.FindLink(n.Name, n.Attach) == nil {
				t.Links = append(t.Links, &Link{A: n.Attach, B: n.Name, set: map[string]bool{}})
			}
		}
	}
	seen := map[[2]string]bool{}
	for i, l := range t.Links {
		p := fmt.Sprintf("links[%d]", i)
		for _, end := range []struct{ f, n string }{{"a", l.A}, {"b", l.B}} {
			if byName[end.n] == nil {
				c.bad(l, end.f, p, "no node called %q", end.n)
			}
		}
		if l.A == l.B {
			c.bad(l, "b", p, "a link joins two different nodes")
		}
		k := [2]string{min(l.A, l.B), max(l.A, l.B)}
		if seen[k] {
			c.bad(l, "", p, "a second link between %s and %s", l.A, l.B)
		}
		seen[k] = true
		l.applyDefaults(t.Defaults)
		if err := l.Config.Validate(); err != nil {
			c.bad(l, "", p, "%v", err)
		}
	}
	for i, w := range t.Workloads {
		c.workload(i, w, byName)
	}
	for i, f := range t.Failures {
		c.failure(i, f, byName)
	}
	if t.Measure.Duration < 0 {
		c.bad(&t.Measure, "duration", "measure", "negative duration")
	}
	// measure.duration is how long the run lasts at least (workloads
	// still running then finish); something scheduled at or after it
	// would start after the researcher meant the run to end.
	if d := t.Measure.Duration; d > 0 {
		for i, w := range t.Workloads {
			if w.Start >= d {
				c.bad(w, "start", fmt.Sprintf("workloads[%d]", i), "starts at %s, not before the run's end (measure.duration %s)", w.Start, d)
			}
		}
		for i, f := range t.Failures {
			if f.At >= d {
				c.bad(f, "at", fmt.Sprintf("failures[%d]", i), "at %s, not before the run's end (measure.duration %s)", f.At, d)
			}
		}
	}
	for i, id := range t.Measure.Pcap {
		a, b, _ := strings.Cut(id, "-")
		na, nb := byName[a], byName[b]
		if na == nil || nb == nil || na == nb || (na.Kind != KindRouter && nb.Kind != KindRouter) {
			c.bad(&t.Measure, "pcap", fmt.Sprintf("measure.pcap[%d]", i), "%q is not a pair a-b of two nodes, one a router", id)
		}
	}
	if len(c.probs) == 0 {
		return nil
	}
	sort.SliceStable(c.probs, func(i, j int) bool { return c.probs[i].Line < c.probs[j].Line })
	return &ValidationError{Problems: c.probs}
}

func (l *Link) applyDefaults(d linkem.Config) {
	s := func(f string) bool { return !l.set[f] }
	if s("delay") {
		l.Delay = d.Delay
	}
	if s("jitter") {
		l.Jitter = d.Jitter
	}
	if s("loss") {
		l.Loss = d.Loss
	}
	if s("gilbert") {
		l.GE = d.GE
	}
	if s("bandwidth") {
		l.Bandwidth = d.Bandwidth
	}
	if s("mtu") {
		l.MTU = d.MTU
	}
	if s("queue") {
		l.QueueLimit = d.QueueLimit
	}
	if s("down") {
		l.Down = d.Down
	}
}

func (c *checker) node(elem any, field, path, name string, byName map[string]*Node, kinds ...string) {
	n := byName[name]
	switch {
	case name == "":
		c.bad(elem, field, path, "missing")
	case n == nil:
		c.bad(elem, field, path, "no node called %q", name)
	case len(kinds) > 0 && !slices.Contains(kinds, n.Kind):
		c.bad(elem, field, path, "%q is a %s; want %s", name, n.Kind, strings.Join(kinds, " or "))
	}
}

func (c *checker) workload(i int, w *Workload, byName map[string]*Node) {
	p := fmt.Sprintf("workloads[%d]", i)
	if w.Start < 0 || w.Interval < 0 || w.Duration < 0 || w.Count < 0 || w.Size < 0 || w.Rate < 0 {
		c.bad(w, "", p, "negative start, interval, duration, count, size or rate")
	}
	if w.Size > 60000 {
		c.bad(w, "size", p, "size %d is above 60,000 bytes", w.Size)
	}
	switch w.Kind {
	case WorkPing, WorkStream:
		c.node(w, "from", p, w.From, byName, KindClient)
		c.node(w, "to", p, w.To, byName)
		if w.Count == 0 && w.Kind == WorkPing {
			w.Count = 10
		}
		if w.Interval == 0 && w.Kind == WorkPing {
			w.Interval = 100 * time.Millisecond
		}
		if w.Rate == 0 && w.Kind == WorkStream {
			w.Rate = 100
		}
		if w.Duration == 0 && w.Kind == WorkStream {
			w.Duration = time.Second
		}
	case WorkUDP:
		c.node(w, "from", p, w.From, byName)
		c.node(w, "to", p, w.To, byName)
		if w.Rate == 0 {
			w.Rate = 100
		}
		if w.Duration == 0 {
			w.Duration = time.Second
		}
		if w.Size == 0 {
			w.Size = 1200
		}
	case WorkCapsule:
		c.node(w, "from", p, w.From, byName, KindClient)
		if len(w.Servers) == 0 {
			c.bad(w, "servers", p, "a capsule needs at least one server")
		}
		for _, s := range w.Servers {
			c.node(w, "servers", p, s, byName, KindServer) // the message names it; the path is the key's
		}
		for _, r := range w.Readers {
			c.node(w, "readers", p, r, byName, KindClient)
		}
		if w.W == 0 {
			w.W = len(w.Servers)/2 + 1
		}
		if w.W < 1 || w.W > len(w.Servers) {
			c.bad(w, "w", p, "w %d must be between 1 and the %d servers", w.W, len(w.Servers))
		}
		if w.Count == 0 {
			w.Count = 100
		}
	default:
		c.bad(w, "kind", p, "unknown workload %q (ping, stream, udp or capsule)", w.Kind)
	}
	if w.Size == 0 {
		w.Size = 64
	}
}

func (c *checker) failure(i int, f *Failure, byName map[string]*Node) {
	p := fmt.Sprintf("failures[%d]", i)
	if f.At < 0 {
		c.bad(f, "at", p, "negative time")
	}
	switch f.Kind {
	case FailLinkDown, FailLinkUp:
		if c.t.linkByID(f.Link) == nil {
			c.bad(f, "link", p, "no link %q (links are named a-b)", f.Link)
		}
	case FailCrash, FailRestart:
		c.node(f, "node", p, f.Node, byName)
	case FailPartition:
		if len(f.Groups) < 2 {
			c.bad(f, "groups", p, "a partition needs at least two groups")
		}
		in := map[string]bool{}
		for _, g := range f.Groups {
			for _, n := range g {
				c.node(f, "groups", p, n, byName)
				if in[n] {
					c.bad(f, "groups", p, "%q is in two groups", n)
				}
				in[n] = true
			}
		}
	case FailHeal:
	default:
		c.bad(f, "kind", p, "unknown failure %q (%s)", f.Kind,
			strings.Join([]string{FailLinkDown, FailLinkUp, FailCrash, FailRestart, FailPartition, FailHeal}, ", "))
	}
}

// errNoTopology is returned for an empty file.
var errNoTopology = errors.New("empty topology file")
