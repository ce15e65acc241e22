package sim

import (
	"bytes"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ReportFile is the self-contained HTML report every results directory
// gets (docs/SIMULATOR.md, "The report").
const ReportFile = "report.html"

//go:embed report.tmpl
var reportTmpl string

// reportPlots are the plots Plots writes, in the order the report shows
// them, with their captions.
var reportPlots = []struct{ file, caption string }{
	{"latency-cdf.svg", "Ping RTT, cumulative distribution"},
	{"throughput.svg", "Stream throughput per 100 ms"},
	{"outages.svg", "Ping RTT over time (lost pings at 0, failure events dashed)"},
}

// Report writes dir/report.html: one file with nothing to fetch — the
// topology drawn as inline SVG (positions computed here by a force
// layout), the plots found in dir embedded as data: URIs, and tables of
// the workloads, capsules, links and events with the summary line. top
// is the topology that ran (validated). It returns the file's path.
func (r *Results) Report(top *Topology, dir string) (string, error) {
	data := reportData{R: r, Top: top, Generated: time.Now().UTC().Format(time.RFC3339)}
	data.Drawing = template.HTML(drawTopology(top, r))
	for _, p := range reportPlots {
		b, err := os.ReadFile(filepath.Join(dir, p.file))
		if err != nil {
			continue // not plotted (no such workload, or plots off)
		}
		data.Plots = append(data.Plots, reportPlot{
			Name: strings.TrimSuffix(p.file, ".svg"), Caption: p.caption,
			URI: template.URL("data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString(b)),
		})
	}
	for _, w := range r.Workloads {
		if w.Capsule != nil {
			data.Capsules = append(data.Capsules, w)
		}
	}
	for _, l := range top.Links {
		if len(data.LinkConf) == reportMaxRows {
			break
		}
		data.LinkConf = append(data.LinkConf, linkConf{ID: l.ID(), Text: linkText(l)})
	}
	data.LinkStats = r.LinkStats
	if len(data.LinkStats) > reportMaxRows {
		data.LinkStats = data.LinkStats[:reportMaxRows]
	}
	t, err := template.New("report").Funcs(template.FuncMap{
		"ms":      func(v float64) string { return fmt.Sprintf("%.2f", v) },
		"pct":     func(v float64) string { return fmt.Sprintf("%.1f", v) },
		"secs":    func(v float64) string { return fmt.Sprintf("%.3f", v) },
		"mbit":    func(v float64) string { return fmt.Sprintf("%.3f", v/1e6) },
		"keys":    sortedKeys[float64],
		"rkeys":   sortedKeys[CapsuleRead],
		"counter": func(m map[string]uint64, k string) uint64 { return m[k] },
		"line":    func(w WorkloadResult) string { return w.Line() },
	}).Parse(reportTmpl)
	if err != nil {
		return "", fmt.Errorf("report template: %w", err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	path := filepath.Join(dir, ReportFile)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return "", err
	}
	return path, nil
}

type reportData struct {
	R         *Results
	Top       *Topology
	Generated string
	Drawing   template.HTML
	Plots     []reportPlot
	Capsules  []WorkloadResult
	// LinkConf and LinkStats are the first reportMaxRows of each (the
	// CSV files beside the report have them all).
	LinkConf  []linkConf
	LinkStats []LinkResult
}

// Bounds that keep the report of a large topology a file a browser opens:
// table rows, links drawn, and links drawn with a tooltip.
const (
	reportMaxRows       = 1000
	reportMaxLinks      = 20000
	reportMaxLinkTitles = 2000
)

type reportPlot struct {
	Name, Caption string
	URI           template.URL
}

type linkConf struct{ ID, Text string }

// linkText is a link's configuration in a few words: "10ms ±1ms, 1% loss,
// 10 Mbit/s, mtu 1400".
func linkText(l *Link) string {
	var parts []string
	if l.Delay > 0 || l.Jitter > 0 {
		s := l.Delay.String()
		if l.Jitter > 0 {
			s += " ±" + l.Jitter.String()
		}
		parts = append(parts, s)
	}
	switch {
	case l.GE != nil:
		parts = append(parts, fmt.Sprintf("Gilbert–Elliott loss %.2g%%", l.GE.Rate()*100))
	case l.Loss > 0:
		parts = append(parts, fmt.Sprintf("%.2g%% loss", l.Loss*100))
	}
	if l.Bandwidth > 0 {
		parts = append(parts, fmt.Sprintf("%.3g Mbit/s", float64(l.Bandwidth)/1e6))
	}
	if l.MTU > 0 {
		parts = append(parts, fmt.Sprintf("mtu %d", l.MTU))
	}
	if l.Down {
		parts = append(parts, "down at start")
	}
	if len(parts) == 0 {
		return "unshaped"
	}
	return strings.Join(parts, ", ")
}

type point struct{ X, Y float64 }

// layoutFR places n nodes joined by edges with Fruchterman–Reingold: nodes
// repel each other, edges pull their ends together, and the step shrinks
// each round. The start is a circle, so the result is the same every run.
// Positions are in the unit square.
func layoutFR(n int, edges [][2]int, rounds int) []point {
	// Start on a circle in depth-first order, so paths, trees and rings
	// start uncrossed.
	adj := make([][]int, n)
	for _, e := range edges {
		adj[e[0]] = append(adj[e[0]], e[1])
		adj[e[1]] = append(adj[e[1]], e[0])
	}
	order := make([]int, 0, n)
	seen := make([]bool, n)
	for root := range n {
		if seen[root] {
			continue
		}
		stack := []int{root}
		for len(stack) > 0 {
			v := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen[v] {
				continue
			}
			seen[v] = true
			order = append(order, v)
			for k := len(adj[v]) - 1; k >= 0; k-- {
				if !seen[adj[v][k]] {
					stack = append(stack, adj[v][k])
				}
			}
		}
	}
	pos := make([]point, n)
	for slot, i := range order {
		a := 2 * math.Pi * float64(slot) / float64(max(n, 1))
		pos[i] = point{0.5 + 0.4*math.Cos(a), 0.5 + 0.4*math.Sin(a)}
	}
	if n < 2 {
		if n == 1 {
			pos[0] = point{0.5, 0.5}
		}
		return pos
	}
	k := math.Sqrt(1 / float64(n))
	disp := make([]point, n)
	for round := range rounds {
		temp := 0.1 * (1 - float64(round)/float64(rounds))
		for i := range disp {
			disp[i] = point{}
		}
		for i := range n {
			for j := i + 1; j < n; j++ {
				dx, dy := pos[i].X-pos[j].X, pos[i].Y-pos[j].Y
				d := math.Max(math.Hypot(dx, dy), 1e-4)
				f := k * k / d
				disp[i].X += dx / d * f
				disp[i].Y += dy / d * f
				disp[j].X -= dx / d * f
				disp[j].Y -= dy / d * f
			}
		}
		for _, e := range edges {
			i, j := e[0], e[1]
			dx, dy := pos[i].X-pos[j].X, pos[i].Y-pos[j].Y
			d := math.Max(math.Hypot(dx, dy), 1e-4)
			f := d * d / k
			disp[i].X -= dx / d * f
			disp[i].Y -= dy / d * f
			disp[j].X += dx / d * f
			disp[j].Y += dy / d * f
		}
		for i := range pos {
			d := math.Max(math.Hypot(disp[i].X, disp[i].Y), 1e-9)
			step := math.Min(d, temp)
			pos[i].X += disp[i].X / d * step
			pos[i].Y += disp[i].Y / d * step
		}
	}
	// Fit into the unit square.
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, p := range pos {
		minX, maxX = math.Min(minX, p.X), math.Max(maxX, p.X)
		minY, maxY = math.Min(minY, p.Y), math.Max(maxY, p.Y)
	}
	sx, sy := math.Max(maxX-minX, 1e-9), math.Max(maxY-minY, 1e-9)
	for i := range pos {
		pos[i] = point{(pos[i].X - minX) / sx, (pos[i].Y - minY) / sy}
	}
	return pos
}

// layoutRounds bounds the force layout's work (n² per round); beyond
// layoutMaxNodes nodes are placed on a circle.
const (
	layoutWork     = 40_000_000
	layoutMaxNodes = 2000
)

// drawTopology is the topology as an SVG element: routers as circles,
// servers as squares, clients as diamonds, each a <g class="node"
// data-name=… data-kind=…> with its name; links as lines whose width
// follows the bytes they delivered, dashed where a failure cut them.
func drawTopology(top *Topology, r *Results) string {
	idx := make(map[string]int, len(top.Nodes))
	for i, n := range top.Nodes {
		idx[n.Name] = i
	}
	type edge struct {
		a, b int
		id   string
		cfg  string
	}
	var edges []edge
	var pairs [][2]int
	seen := map[[2]int]bool{}
	for _, l := range top.Links {
		a, okA := idx[l.A]
		b, okB := idx[l.B]
		if !okA || !okB {
			continue
		}
		edges = append(edges, edge{a, b, l.ID(), linkText(l)})
		pairs = append(pairs, [2]int{a, b})
		seen[[2]int{a, b}], seen[[2]int{b, a}] = true, true
	}
	for _, n := range top.Nodes { // an attachment with no explicit link
		if a, ok := idx[n.Attach]; ok && n.Attach != "" && !seen[[2]int{idx[n.Name], a}] {
			edges = append(edges, edge{idx[n.Name], a, n.Name + "-" + n.Attach, "attachment"})
			pairs = append(pairs, [2]int{idx[n.Name], a})
		}
	}
	n := len(top.Nodes)
	var pos []point
	if n <= layoutMaxNodes {
		rounds := 300
		if n > 0 {
			rounds = max(20, min(300, layoutWork/(n*n)))
		}
		pos = layoutFR(n, pairs, rounds)
	} else {
		pos = layoutFR(n, nil, 0)
	}
	// Bytes delivered per link (both directions), and what failed.
	bytesOf := map[string]uint64{}
	for _, ls := range r.LinkStats {
		bytesOf[ls.Link] += ls.Bytes["delivered"]
	}
	var most uint64
	for _, b := range bytesOf {
		most = max(most, b)
	}
	cut, crashed := map[string]bool{}, map[string]bool{}
	for _, f := range top.Failures {
		switch f.Kind {
		case FailLinkDown:
			cut[f.Link] = true
		case FailCrash:
			crashed[f.Node] = true
		case FailPartition:
			group := map[string]int{}
			for gi, g := range f.Groups {
				for _, name := range g {
					group[name] = gi + 1
				}
			}
			for _, e := range edges {
				ga, gb := group[top.Nodes[e.a].Name], group[top.Nodes[e.b].Name]
				if ga != gb {
					cut[e.id] = true
				}
			}
		}
	}
	const w, h, margin = 1000.0, 620.0, 40.0
	xy := func(i int) (float64, float64) {
		return margin + pos[i].X*(w-2*margin), margin + pos[i].Y*(h-2*margin)
	}
	labels := n <= 150
	size := 9.0
	if n > 60 {
		size = 6
	}
	if n > 400 {
		size = 3
	}
	esc := template.HTMLEscapeString
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="topology" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" role="img" aria-label="topology: %d nodes, %d links">`, w, h, n, len(edges))
	b.WriteString(`<g class="links">`)
	if len(edges) > reportMaxLinks {
		edges = nil // too many to draw: the nodes alone (the links table and links.csv list them)
	}
	for _, e := range edges {
		x1, y1 := xy(e.a)
		x2, y2 := xy(e.b)
		width := 1.0
		if most > 0 {
			width += 4 * math.Sqrt(float64(bytesOf[e.id])/float64(most))
		}
		cls := "link"
		if cut[e.id] {
			cls += " cut"
		}
		fmt.Fprintf(&b, `<line class="%s" data-link="%s" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke-width="%.2f">`,
			cls, esc(e.id), x1, y1, x2, y2, width)
		if len(edges) <= reportMaxLinkTitles {
			fmt.Fprintf(&b, `<title>%s: %s; %d bytes delivered</title>`, esc(e.id), esc(e.cfg), bytesOf[e.id])
		}
		b.WriteString(`</line>`)
	}
	b.WriteString(`</g><g class="nodes">`)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool {
		return top.Nodes[order[i]].Kind == KindRouter && top.Nodes[order[j]].Kind != KindRouter
	})
	for _, i := range order {
		nd := top.Nodes[i]
		x, y := xy(i)
		cls := "node " + nd.Kind
		if crashed[nd.Name] {
			cls += " crashed"
		}
		fmt.Fprintf(&b, `<g class="%s" data-name="%s" data-kind="%s"><title>%s (%s%s)</title>`, esc(cls), esc(nd.Name), esc(nd.Kind), esc(nd.Name), esc(nd.Kind), esc(domainNote(nd)))
		switch nd.Kind {
		case KindRouter:
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="%.1f"/>`, x, y, size)
		case KindServer:
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f"/>`, x-size*0.8, y-size*0.8, size*1.6, size*1.6)
		default:
			fmt.Fprintf(&b, `<path d="M%.1f %.1fl%.1f %.1fl%.1f %.1fl%.1f %.1fz"/>`, x, y-size, size, size, -size, size, -size, -size)
		}
		if labels {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`, x, y+size+11, esc(nd.Name))
		}
		b.WriteString(`</g>`)
	}
	b.WriteString(`</g></svg>`)
	return b.String()
}

func domainNote(n *Node) string {
	s := ""
	if n.Domain != "" {
		s += ", domain " + n.Domain
	}
	if n.Attach != "" {
		s += ", at " + n.Attach
	}
	return s
}
