package sim

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gdpnet/gdpnet/sim/linkem"
)

// Load reads and validates a topology file.
func Load(path string) (*Topology, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	return Parse(path, b)
}

// Parse decodes a topology from YAML and validates it. file names the
// source in errors. Every problem found is reported at once, each with its
// line and field (a *ValidationError); unknown keys are problems too.
func Parse(file string, data []byte) (*Topology, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		if bytes.Contains(data, []byte("\n\t")) || bytes.HasPrefix(data, []byte("\t")) {
			// yaml.v3 says "found character that cannot start any token".
			return nil, fmt.Errorf("%s: %w (the file indents with a tab: YAML indents with spaces)", file, err)
		}
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: %w", file, errNoTopology)
	}
	p := &parser{t: &Topology{file: file, pos: map[any]fields{}}}
	p.topology(doc.Content[0])
	t := p.t
	verr := t.Validate()
	if len(p.probs) > 0 {
		var ve *ValidationError
		if verr != nil {
			ve = verr.(*ValidationError)
		} else {
			ve = &ValidationError{}
		}
		// Decoding problems first: a value that did not parse also shows
		// up as a zero value in validation.
		ve.Problems = append(p.probs, ve.Problems...)
		sort.SliceStable(ve.Problems, func(i, j int) bool { return ve.Problems[i].Line < ve.Problems[j].Line })
		return nil, ve
	}
	if verr != nil {
		return nil, verr
	}
	return t, nil
}

type parser struct {
	t     *Topology
	probs []Problem
}

func (p *parser) bad(n *yaml.Node, path, format string, a ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.probs = append(p.probs, Problem{File: p.t.file, Line: line, Field: path, Msg: fmt.Sprintf(format, a...)})
}

// ymap is one YAML mapping being read into an element.
type ymap struct {
	p    *parser
	path string
	keys map[string]*yaml.Node
}

// mapping checks n is a mapping with only allowed keys and records where
// elem and each of its fields are.
func (p *parser) mapping(n *yaml.Node, path string, elem any, allowed ...string) *ymap {
	m := &ymap{p: p, path: path, keys: map[string]*yaml.Node{}}
	f := fields{"": n.Line}
	p.t.pos[elem] = f
	if n.Kind != yaml.MappingNode {
		p.bad(n, path, "want a mapping (key: value), got %s", kindName(n))
		return m
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !contains(allowed, k.Value) {
			p.bad(k, path+"."+k.Value, "unknown field (known: %s)", strings.Join(allowed, ", "))
			continue
		}
		if _, dup := m.keys[k.Value]; dup {
			p.bad(k, path+"."+k.Value, "given twice")
		}
		m.keys[k.Value] = v
		f[k.Value] = k.Line
	}
	return m
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.AliasNode:
		return "an alias"
	}
	return fmt.Sprintf("%q", n.Value)
}

func (m *ymap) scalar(key string) (*yaml.Node, bool) {
	n, ok := m.keys[key]
	if !ok {
		return nil, false
	}
	if n.Kind != yaml.ScalarNode {
		m.p.bad(n, m.path+"."+key, "want a single value, got %s", kindName(n))
		return nil, false
	}
	return n, true
}

func (m *ymap) str(key string, dst *string) {
	if n, ok := m.scalar(key); ok {
		*dst = n.Value
	}
}

func (m *ymap) dur(key string, dst *time.Duration) bool {
	n, ok := m.scalar(key)
	if !ok {
		return false
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil || d < 0 {
		if n.Value == "0" {
			*dst = 0
			return true
		}
		m.p.bad(n, m.path+"."+key, "want a duration like 10ms or 1.5s, got %q", n.Value)
		return false
	}
	*dst = d
	return true
}

func (m *ymap) integer(key string, dst *int) bool {
	n, ok := m.scalar(key)
	if !ok {
		return false
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil || v < 0 {
		m.p.bad(n, m.path+"."+key, "want a whole number ≥ 0, got %q", n.Value)
		return false
	}
	*dst = v
	return true
}

func (m *ymap) float(key string, dst *float64) bool {
	n, ok := m.scalar(key)
	if !ok {
		return false
	}
	v, err := strconv.ParseFloat(n.Value, 64)
	if err != nil || v < 0 {
		m.p.bad(n, m.path+"."+key, "want a number ≥ 0, got %q", n.Value)
		return false
	}
	*dst = v
	return true
}

func (m *ymap) boolean(key string, dst *bool) bool {
	n, ok := m.scalar(key)
	if !ok {
		return false
	}
	v, err := strconv.ParseBool(n.Value)
	if err != nil {
		m.p.bad(n, m.path+"."+key, "want true or false, got %q", n.Value)
		return false
	}
	*dst = v
	return true
}

// prob reads a probability: 0.01 or "1%".
func (m *ymap) prob(key string, dst *float64) bool {
	n, ok := m.scalar(key)
	if !ok {
		return false
	}
	v, err := ParseProbability(n.Value)
	if err != nil {
		m.p.bad(n, m.path+"."+key, "%v", err)
		return false
	}
	*dst = v
	return true
}

// ParseProbability reads 0.01 or "1%".
func ParseProbability(in string) (float64, error) {
	s := strings.TrimSpace(in)
	scale := 1.0
	if t, ok := strings.CutSuffix(s, "%"); ok {
		s, scale = strings.TrimSpace(t), 100
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v/scale < 0 || v/scale > 1 {
		return 0, fmt.Errorf("want a probability like 0.01 or 1%%, got %q", in)
	}
	return v / scale, nil
}

// ParseBandwidth reads bits per second: 10Mbit, 1.5Gbit, 500kbit, 64000
// (bits), also with "bps" or "bit/s".
func ParseBandwidth(s string) (int64, error) {
	t := strings.TrimSpace(s)
	for _, suf := range []string{"bit/s", "bps", "bit"} {
		if u, ok := strings.CutSuffix(t, suf); ok {
			t = u
			break
		}
	}
	scale := 1.0
	if len(t) > 0 {
		switch t[len(t)-1] {
		case 'k', 'K':
			scale, t = 1e3, t[:len(t)-1]
		case 'M':
			scale, t = 1e6, t[:len(t)-1]
		case 'G':
			scale, t = 1e9, t[:len(t)-1]
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || v < 0 || v*scale > 1e12 {
		return 0, fmt.Errorf("want a bandwidth like 10Mbit, 1Gbit or 500kbit, got %q", s)
	}
	return int64(v * scale), nil
}

// FormatBandwidth writes bits per second the way ParseBandwidth reads them.
func FormatBandwidth(bps int64) string {
	switch {
	case bps >= 1e9 && bps%1e9 == 0:
		return fmt.Sprintf("%dGbit", bps/1e9)
	case bps >= 1e6 && bps%1e6 == 0:
		return fmt.Sprintf("%dMbit", bps/1e6)
	case bps >= 1e3 && bps%1e3 == 0:
		return fmt.Sprintf("%dkbit", bps/1e3)
	}
	return fmt.Sprintf("%dbit", bps)
}

func (m *ymap) bandwidth(key string, dst *int64) bool {
	n, ok := m.scalar(key)
	if !ok {
		return false
	}
	v, err := ParseBandwidth(n.Value)
	if err != nil {
		m.p.bad(n, m.path+"."+key, "%v", err)
		return false
	}
	*dst = v
	return true
}

func (m *ymap) strs(key string, dst *[]string) {
	n, ok := m.keys[key]
	if !ok {
		return
	}
	if n.Kind == yaml.ScalarNode {
		*dst = []string{n.Value}
		return
	}
	if n.Kind != yaml.SequenceNode {
		m.p.bad(n, m.path+"."+key, "want a list of names, got %s", kindName(n))
		return
	}
	for i, c := range n.Content {
		if c.Kind != yaml.ScalarNode {
			m.p.bad(c, fmt.Sprintf("%s.%s[%d]", m.path, key, i), "want a name, got %s", kindName(c))
			continue
		}
		*dst = append(*dst, c.Value)
	}
}

func (m *ymap) list(key string) []*yaml.Node {
	n, ok := m.keys[key]
	if !ok {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		m.p.bad(n, m.path+"."+key, "want a list, got %s", kindName(n))
		return nil
	}
	return n.Content
}

var linkKeys = []string{"delay", "jitter", "loss", "gilbert", "bandwidth", "mtu", "queue", "down"}

// linkConfig reads the link settings of m into c, noting which were set.
func (m *ymap) linkConfig(c *linkem.Config, set map[string]bool) {
	mark := func(k string, ok bool) {
		if ok {
			set[k] = true
		}
	}
	mark("delay", m.dur("delay", &c.Delay))
	mark("jitter", m.dur("jitter", &c.Jitter))
	mark("loss", m.prob("loss", &c.Loss))
	mark("bandwidth", m.bandwidth("bandwidth", &c.Bandwidth))
	mark("mtu", m.integer("mtu", &c.MTU))
	mark("queue", m.dur("queue", &c.QueueLimit))
	mark("down", m.boolean("down", &c.Down))
	if g, ok := m.keys["gilbert"]; ok {
		ge := &linkem.GilbertElliott{LossBad: 1}
		gm := m.p.mapping(g, m.path+".gilbert", ge, "p", "r", "loss_good", "loss_bad")
		gm.prob("p", &ge.P)
		gm.prob("r", &ge.R)
		gm.prob("loss_good", &ge.LossGood)
		gm.prob("loss_bad", &ge.LossBad)
		c.GE = ge
		set["gilbert"] = true
	}
}

func (p *parser) topology(n *yaml.Node) {
	t := p.t
	m := p.mapping(n, "topology", t, "name", "seed", "resolver", "mode", "defaults", "domains", "nodes", "links", "workloads", "failures", "measure")
	m.str("name", &t.Name)
	var seed int
	if m.integer("seed", &seed) {
		t.Seed = uint64(seed)
	}
	m.str("resolver", &t.Resolver)
	m.str("mode", &t.Mode)
	if d, ok := m.keys["defaults"]; ok {
		dm := p.mapping(d, "defaults", &t.Defaults, linkKeys...)
		dm.linkConfig(&t.Defaults, map[string]bool{})
	}
	m.strs("domains", &t.Domains)
	for i, c := range m.list("nodes") {
		nd := &Node{}
		nm := p.mapping(c, fmt.Sprintf("nodes[%d]", i), nd, "name", "kind", "domain", "attach")
		nm.str("name", &nd.Name)
		nm.str("kind", &nd.Kind)
		nm.str("domain", &nd.Domain)
		nm.str("attach", &nd.Attach)
		t.Nodes = append(t.Nodes, nd)
	}
	for i, c := range m.list("links") {
		l := &Link{set: map[string]bool{}}
		lm := p.mapping(c, fmt.Sprintf("links[%d]", i), l, append([]string{"a", "b"}, linkKeys...)...)
		lm.str("a", &l.A)
		lm.str("b", &l.B)
		lm.linkConfig(&l.Config, l.set)
		t.Links = append(t.Links, l)
	}
	for i, c := range m.list("workloads") {
		w := &Workload{}
		wm := p.mapping(c, fmt.Sprintf("workloads[%d]", i), w, "kind", "from", "to", "count", "interval", "size", "rate",
			"start", "duration", "servers", "w", "readers")
		wm.str("kind", &w.Kind)
		wm.str("from", &w.From)
		wm.str("to", &w.To)
		wm.integer("count", &w.Count)
		wm.dur("interval", &w.Interval)
		wm.integer("size", &w.Size)
		wm.float("rate", &w.Rate)
		wm.dur("start", &w.Start)
		wm.dur("duration", &w.Duration)
		wm.strs("servers", &w.Servers)
		wm.integer("w", &w.W)
		wm.strs("readers", &w.Readers)
		t.Workloads = append(t.Workloads, w)
	}
	for i, c := range m.list("failures") {
		f := &Failure{}
		fm := p.mapping(c, fmt.Sprintf("failures[%d]", i), f, "at", "kind", "node", "link", "groups")
		fm.dur("at", &f.At)
		fm.str("kind", &f.Kind)
		fm.str("node", &f.Node)
		fm.str("link", &f.Link)
		for j, g := range fm.list("groups") {
			var grp []string
			gm := &ymap{p: p, path: fmt.Sprintf("failures[%d].groups", i), keys: map[string]*yaml.Node{fmt.Sprint(j): g}}
			gm.strs(fmt.Sprint(j), &grp)
			f.Groups = append(f.Groups, grp)
		}
		t.Failures = append(t.Failures, f)
	}
	if ms, ok := m.keys["measure"]; ok {
		mm := p.mapping(ms, "measure", &t.Measure, "duration", "pcap", "plots")
		mm.dur("duration", &t.Measure.Duration)
		mm.strs("pcap", &t.Measure.Pcap)
		mm.boolean("plots", &t.Measure.Plots)
	}
}

// Marshal writes the topology as YAML that Parse reads back to the same
// topology: one line per node, link, workload and failure.
func (t *Topology) Marshal() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# gdpnet simulator topology (docs/SIMULATOR.md)\nname: %s\n", q(t.Name))
	if t.Seed != 0 {
		fmt.Fprintf(&b, "seed: %d\n", t.Seed)
	}
	if t.Resolver != "" && t.Resolver != ResolverStatic {
		fmt.Fprintf(&b, "resolver: %s\n", t.Resolver)
	}
	if t.Mode != "" {
		fmt.Fprintf(&b, "mode: %s\n", t.Mode)
	}
	if d := linkFields(t.Defaults, nil); d != "" {
		fmt.Fprintf(&b, "defaults: {%s}\n", d)
	}
	if len(t.Domains) > 0 {
		fmt.Fprintf(&b, "domains: [%s]\n", strings.Join(qs(t.Domains), ", "))
	}
	b.WriteString("nodes:\n")
	for _, n := range t.Nodes {
		fmt.Fprintf(&b, "  - {name: %s, kind: %s", q(n.Name), n.Kind)
		if n.Domain != "" {
			fmt.Fprintf(&b, ", domain: %s", q(n.Domain))
		}
		if n.Attach != "" {
			fmt.Fprintf(&b, ", attach: %s", q(n.Attach))
		}
		b.WriteString("}\n")
	}
	if len(t.Links) > 0 {
		b.WriteString("links:\n")
	}
	for _, l := range t.Links {
		fmt.Fprintf(&b, "  - {a: %s, b: %s", q(l.A), q(l.B))
		if f := linkFields(l.Config, l.set); f != "" {
			b.WriteString(", " + f)
		}
		b.WriteString("}\n")
	}
	if len(t.Workloads) > 0 {
		b.WriteString("workloads:\n")
	}
	for _, w := range t.Workloads {
		var f []string
		add := func(k, v string) { f = append(f, k+": "+v) }
		add("kind", w.Kind)
		if w.From != "" {
			add("from", q(w.From))
		}
		if w.To != "" {
			add("to", q(w.To))
		}
		if w.Count != 0 {
			add("count", strconv.Itoa(w.Count))
		}
		if w.Interval != 0 {
			add("interval", w.Interval.String())
		}
		if w.Size != 0 {
			add("size", strconv.Itoa(w.Size))
		}
		if w.Rate != 0 {
			add("rate", strconv.FormatFloat(w.Rate, 'g', -1, 64))
		}
		if w.Start != 0 {
			add("start", w.Start.String())
		}
		if w.Duration != 0 {
			add("duration", w.Duration.String())
		}
		if len(w.Servers) > 0 {
			add("servers", "["+strings.Join(qs(w.Servers), ", ")+"]")
		}
		if w.W != 0 {
			add("w", strconv.Itoa(w.W))
		}
		if len(w.Readers) > 0 {
			add("readers", "["+strings.Join(qs(w.Readers), ", ")+"]")
		}
		fmt.Fprintf(&b, "  - {%s}\n", strings.Join(f, ", "))
	}
	if len(t.Failures) > 0 {
		b.WriteString("failures:\n")
	}
	for _, fl := range t.Failures {
		fmt.Fprintf(&b, "  - {at: %s, kind: %s", fl.At, fl.Kind)
		if fl.Node != "" {
			fmt.Fprintf(&b, ", node: %s", q(fl.Node))
		}
		if fl.Link != "" {
			fmt.Fprintf(&b, ", link: %s", q(fl.Link))
		}
		if len(fl.Groups) > 0 {
			gs := make([]string, len(fl.Groups))
			for i, g := range fl.Groups {
				gs[i] = "[" + strings.Join(qs(g), ", ") + "]"
			}
			fmt.Fprintf(&b, ", groups: [%s]", strings.Join(gs, ", "))
		}
		b.WriteString("}\n")
	}
	ms := t.Measure
	if ms.Duration != 0 || len(ms.Pcap) > 0 || ms.Plots {
		var f []string
		if ms.Duration != 0 {
			f = append(f, "duration: "+ms.Duration.String())
		}
		if len(ms.Pcap) > 0 {
			f = append(f, "pcap: ["+strings.Join(qs(ms.Pcap), ", ")+"]")
		}
		if ms.Plots {
			f = append(f, "plots: true")
		}
		fmt.Fprintf(&b, "measure: {%s}\n", strings.Join(f, ", "))
	}
	return b.Bytes()
}

// linkFields writes a link configuration's non-zero (or, with set, set)
// fields in flow style.
func linkFields(c linkem.Config, set map[string]bool) string {
	var f []string
	has := func(k string, nonzero bool) bool {
		if set != nil {
			return set[k]
		}
		return nonzero
	}
	if has("delay", c.Delay != 0) {
		f = append(f, "delay: "+c.Delay.String())
	}
	if has("jitter", c.Jitter != 0) {
		f = append(f, "jitter: "+c.Jitter.String())
	}
	if has("loss", c.Loss != 0) {
		f = append(f, "loss: "+strconv.FormatFloat(c.Loss, 'g', -1, 64))
	}
	if has("gilbert", c.GE != nil) && c.GE != nil {
		g := c.GE
		f = append(f, fmt.Sprintf("gilbert: {p: %g, r: %g, loss_good: %g, loss_bad: %g}", g.P, g.R, g.LossGood, g.LossBad))
	}
	if has("bandwidth", c.Bandwidth != 0) {
		f = append(f, "bandwidth: "+FormatBandwidth(c.Bandwidth))
	}
	if has("mtu", c.MTU != 0) {
		f = append(f, "mtu: "+strconv.Itoa(c.MTU))
	}
	if has("queue", c.QueueLimit != 0) {
		f = append(f, "queue: "+c.QueueLimit.String())
	}
	if has("down", c.Down) {
		f = append(f, "down: "+strconv.FormatBool(c.Down))
	}
	return strings.Join(f, ", ")
}

// q quotes a name when YAML would read it as something else.
func q(s string) string {
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err == nil {
		if str, ok := v.(string); ok && str == s && !strings.ContainsAny(s, ",[]{}:#") {
			return s
		}
	}
	return strconv.Quote(s)
}

func qs(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = q(v)
	}
	return out
}
