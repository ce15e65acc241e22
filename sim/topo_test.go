package sim

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/sim/linkem"
)

const badTopo = `name: broken
defaults: {delay: 2ms}
nodes:
  - {name: r1, kind: router}
  - {name: r2, kind: routr}
  - {name: c1, kind: client, attach: r9}
links:
  - {a: r1, b: r2, delay: 10 ms}
  - {a: r1, b: r3, dealy: 5ms}
  - {a: r2, b: r1, loss: 120%}
workloads:
  - {kind: ping, from: c1, to: r2, count: many}
  - {kind: capsule, from: c1, servers: [s9], readers: [c1, c7], start: 2s}
failures:
  - {at: 1s, kind: link_down, link: r1-r5}
  - {at: 2s, kind: partition, groups: [[r1, zz], [r1, r2]]}
measure: {duration: 1500ms}
`

// TestParseErrors: every mistake is reported at once, each with its line
// and field.
func TestParseErrors(t *testing.T) {
	_, err := Parse("bad.yaml", []byte(badTopo))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want a ValidationError, got %v", err)
	}
	t.Logf("%v", err)
	want := []string{
		`bad.yaml:5: nodes[1].kind: unknown kind "routr"`,
		`bad.yaml:6: nodes[2].attach: "r9" is not a router`,
		`bad.yaml:8: links[0].delay: want a duration like 10ms or 1.5s, got "10 ms"`,
		`bad.yaml:9: links[1].dealy: unknown field`,
		`bad.yaml:9: links[1].b: no node called "r3"`,
		`bad.yaml:10: links[2]: a second link between r2 and r1`,
		`bad.yaml:10: links[2].loss: want a probability like 0.01 or 1%, got "120%"`,
		`bad.yaml:12: workloads[0].count: want a whole number ≥ 0, got "many"`,
		`bad.yaml:15: failures[0].link: no link "r1-r5"`,
		// A list's problem is named at its key, once (Session 19: before,
		// "workloads[1].servers[0].servers", "failures[1].groups.groups").
		`bad.yaml:13: workloads[1].servers: no node called "s9"`,
		`bad.yaml:13: workloads[1].readers: no node called "c7"`,
		`bad.yaml:16: failures[1].groups: no node called "zz"`,
		`bad.yaml:16: failures[1].groups: "r1" is in two groups`,
		// After the run's end: it would never happen (Session 19).
		`bad.yaml:16: failures[1].at: at 2s, not before the run's end (measure.duration 1.5s)`,
		`bad.yaml:13: workloads[1].start: starts at 2s, not before the run's end (measure.duration 1.5s)`,
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("missing %q", w)
		}
	}
}

// TestParseTab: a tab in the indentation (yaml.v3: "found character
// that cannot start any token") is named as what it is.
func TestParseTab(t *testing.T) {
	_, err := Parse("tab.yaml", []byte("name: x\nnodes:\n\t- {name: r1, kind: router}\n"))
	if err == nil || !strings.Contains(err.Error(), "tab.yaml: ") || !strings.Contains(err.Error(), "indents with a tab") {
		t.Fatalf("got %v, want the tab named", err)
	}
}

// TestBuiltinSettings: a setting the built-in does not read, or a
// negative one, is refused, not silently replaced by the default (Session
// 19: `gdp sim topo grid --n 25` printed a 3×3 grid, `--rows -3` too).
func TestBuiltinSettings(t *testing.T) {
	if err := CheckBuiltinSettings("grid", []string{"n", "rows", "seed"}); err == nil || !strings.Contains(err.Error(), "grid does not read --n (its settings: --rows, --cols, --delay, --seed)") {
		t.Fatalf("grid --n: %v", err)
	}
	for name, own := range BuiltinSettings {
		if err := CheckBuiltinSettings(name, append(own, "delay", "seed")); err != nil {
			t.Fatalf("%s with its own settings: %v", name, err)
		}
	}
	if _, err := Builtin("grid", Params{Rows: -3}); err == nil || !strings.Contains(err.Error(), "--rows is negative") {
		t.Fatalf("grid rows -3: %v", err)
	}
	if top, err := Builtin("grid", Params{Rows: 2, Cols: 5}); err != nil || len(top.Nodes) != 2*5+2 {
		t.Fatalf("grid 2×5: %v", err)
	}
}

// TestBuiltinsRoundTrip: every built-in validates, and its YAML parses
// back to the same YAML.
func TestBuiltinsRoundTrip(t *testing.T) {
	sizes := map[string][2]int{ // routers, router-router links
		"linear": {4, 3}, "star": {5, 4}, "tree": {7, 6}, "ring": {6, 6}, "grid": {9, 12}, "waxman": {20, -1}, "edgecloud": {5, 4},
	}
	for _, name := range BuiltinNames() {
		top, err := Builtin(name, Params{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		routers, rlinks := 0, 0
		for _, n := range top.Nodes {
			if n.Kind == KindRouter {
				routers++
			}
		}
		for _, l := range top.Links {
			if top.Node(l.A).Kind == KindRouter && top.Node(l.B).Kind == KindRouter {
				rlinks++
			}
		}
		if s := sizes[name]; routers != s[0] || (s[1] >= 0 && rlinks != s[1]) {
			t.Errorf("%s: %d routers and %d router links, want %v", name, routers, rlinks, s)
		}
		y := top.Marshal()
		back, err := Parse(name+".yaml", y)
		if err != nil {
			t.Fatalf("%s: own YAML does not parse: %v\n%s", name, err, y)
		}
		if y2 := back.Marshal(); !bytes.Equal(y, y2) {
			t.Errorf("%s: YAML changed on a round trip:\n%s\n---\n%s", name, y, y2)
		}
		if name == "waxman" {
			n := buildUnderlay(t, back)
			for _, a := range back.Nodes {
				if p := n.Path(n.Node(back.Nodes[0].Name), n.Node(a.Name)); p == nil && a != back.Nodes[0] {
					t.Fatalf("waxman: %s unreachable", a.Name)
				}
			}
		}
	}
}

func buildUnderlay(t *testing.T, top *Topology) *linkem.Network {
	n, err := top.underlay()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestGoAPI: the same topology from Go, with defaults applied to what a
// link does not set.
func TestGoAPI(t *testing.T) {
	top := New("api")
	top.Defaults = linkem.Config{Delay: 3 * time.Millisecond, Bandwidth: 100e6}
	top.AddRouter("r1", "")
	top.AddRouter("r2", "")
	top.AddClient("c1", "r1")
	top.Link("r1", "r2", Delay(10*time.Millisecond), Loss(0.01))
	if err := top.Validate(); err != nil {
		t.Fatal(err)
	}
	l := top.FindLink("r1", "r2")
	if l.Delay != 10*time.Millisecond || l.Bandwidth != 100e6 || l.Loss != 0.01 {
		t.Fatalf("link config %+v", l.Config)
	}
	if c := top.FindLink("c1", "r1"); c == nil || c.Delay != 3*time.Millisecond {
		t.Fatalf("attached client's link missing or without defaults: %+v", c)
	}
	if top.Node("c1").Domain != "default" {
		t.Fatalf("client domain %q", top.Node("c1").Domain)
	}
}
