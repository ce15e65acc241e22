package sim

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/internal/browsertest"
)

// TestReport runs a small experiment with a link cut and checks its
// report.html: every node drawn, the plots embedded, the tables holding
// the run's figures, nothing fetched from elsewhere; then (subtest
// chromium) opens it from file:// in headless Chromium with the network
// off and checks what a reader sees.
func TestReport(t *testing.T) {
	top, err := Builtin("linear", Params{N: 3, Delay: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	top.Name = "report <check> & co" // escaped, not markup
	top.Workloads[0].Count, top.Workloads[0].Interval = 40, 50*time.Millisecond
	top.At(700*time.Millisecond, Failure{Kind: FailLinkDown, Link: "r2-r3"})
	top.At(1200*time.Millisecond, Failure{Kind: FailLinkUp, Link: "r2-r3"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := t.TempDir()
	res, err := Run(ctx, top, Options{Out: out, Plots: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Text())
	b, err := os.ReadFile(filepath.Join(out, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	for _, n := range top.Nodes {
		if !strings.Contains(html, fmt.Sprintf(`data-name="%s"`, n.Name)) {
			t.Errorf("node %s not drawn", n.Name)
		}
	}
	for _, l := range top.Links {
		if !strings.Contains(html, fmt.Sprintf(`data-link="%s"`, l.ID())) {
			t.Errorf("link %s not drawn", l.ID())
		}
	}
	if !strings.Contains(html, `class="link cut" data-link="r2-r3"`) {
		t.Error("the cut link is not marked")
	}
	// What it takes to run it again (Session 19).
	if want := fmt.Sprintf("seed %d, resolver %s, mode %s, started %s", res.Seed, res.Resolver, res.Mode, res.Started); !strings.Contains(html, want) {
		t.Fatalf("report lacks %q", want)
	}
	if !strings.Contains(html, res.Summary) || !strings.Contains(html, "report &lt;check&gt; &amp; co") || strings.Contains(html, "<check>") {
		t.Error("summary or escaped name missing")
	}
	if n := strings.Count(html, `<img src="data:image/svg`); n != 2 {
		t.Errorf("%d plots embedded, want 2 (latency CDF, outages)", n)
	}
	// The outage plot names each failure's dashed line (Session 19).
	if svg, err := os.ReadFile(filepath.Join(out, "outages.svg")); err != nil || !strings.Contains(string(svg), "link_down r2-r3") || !strings.Contains(string(svg), "link_up r2-r3") {
		t.Errorf("outages.svg does not name the events: %v", err)
	}
	// Nothing to fetch: no URL that is not data: in src, href, url() or
	// @import (the SVG namespace is an identifier, not a fetch).
	if m := regexp.MustCompile(`(?i)(src|href)\s*=\s*"(?:[a-z]+:)?//|url\(|@import`).FindString(html); m != "" {
		t.Errorf("report.html refers to something outside: %q", m)
	}
	w := res.Workloads[0]
	row := fmt.Sprintf(`<td class="n">%d</td><td class="n">%d</td>`, w.Sent, w.Received)
	if !strings.Contains(html, row) {
		t.Errorf("workloads table lacks sent/received %d/%d", w.Sent, w.Received)
	}
	if w.Received == w.Sent {
		t.Errorf("no ping lost across the cut (%d/%d): the experiment did not exercise the failure", w.Received, w.Sent)
	}

	t.Run("chromium", func(t *testing.T) { reportInChromium(t, out, top, res) })
}

func reportInChromium(t *testing.T, dir string, top *Topology, res *Results) {
	b := browsertest.New(t, browsertest.Options{Offline: true, Width: 1300, Height: 900})
	url := "file://" + filepath.Join(dir, ReportFile)
	b.Navigate(url)
	b.WaitFor("the plots to load", `[...document.images].length > 0 && [...document.images].every(i => i.complete)`, 10*time.Second)
	// Every node of the topology, drawn with a visible size.
	names := browsertest.MustEval[[]string](b, `[...document.querySelectorAll("#topology .node")].filter(g => {
		const shape = g.querySelector("circle, rect, path");
		if (!shape) return false;
		const r = shape.getBoundingClientRect();
		return r.width > 0 && r.height > 0 && getComputedStyle(shape).fill !== "none";
	}).map(g => g.dataset.name)`)
	if len(names) != len(top.Nodes) {
		t.Errorf("%d nodes drawn visibly, want %d: %v", len(names), len(top.Nodes), names)
	}
	for _, n := range top.Nodes {
		found := false
		for _, m := range names {
			found = found || m == n.Name
		}
		if !found {
			t.Errorf("node %s not in the drawing", n.Name)
		}
	}
	if n := browsertest.MustEval[int](b, `document.querySelectorAll("#topology line.link").length`); n != len(top.Links) {
		t.Errorf("%d links drawn, want %d", n, len(top.Links))
	}
	// The plots rendered: decoded images of a real size.
	sizes := browsertest.MustEval[[][2]int](b, `[...document.querySelectorAll("#plots img")].map(i => [i.naturalWidth, i.naturalHeight])`)
	if len(sizes) != 2 {
		t.Errorf("%d plots, want 2", len(sizes))
	}
	for i, s := range sizes {
		if s[0] < 100 || s[1] < 100 {
			t.Errorf("plot %d is %dx%d", i, s[0], s[1])
		}
	}
	// The tables hold the experiment's figures.
	if got := browsertest.MustEval[string](b, `document.querySelector("#summary .line").textContent`); got != res.Summary {
		t.Errorf("summary %q, want %q", got, res.Summary)
	}
	w := res.Workloads[0]
	cells := browsertest.MustEval[[]string](b, `[...document.querySelectorAll("#workloads tr")[1].cells].map(c => c.textContent.trim())`)
	if len(cells) < 8 || cells[1] != "ping" || cells[2] != w.From || cells[3] != w.To || cells[4] != fmt.Sprint(w.Sent) ||
		cells[5] != fmt.Sprint(w.Received) || cells[6] != fmt.Sprintf("%.1f", w.LossPct) || !strings.Contains(cells[7], fmt.Sprintf("%.2f", w.RTT.P50)) {
		t.Errorf("workload row %q, want %+v", cells, w)
	}
	events := browsertest.MustEval[string](b, `document.querySelector("#events").innerText`)
	if !strings.Contains(events, "link_down") || !strings.Contains(events, "r2-r3") {
		t.Errorf("events table: %q", events)
	}
	links := browsertest.MustEval[string](b, `document.querySelector("#links").innerText`)
	for _, l := range res.LinkStats {
		if !strings.Contains(links, fmt.Sprint(l.Bytes["delivered"])) {
			t.Errorf("links table lacks %s's %d delivered bytes", l.Link, l.Bytes["delivered"])
		}
	}
	// Opened with the network off, it asked for nothing but itself and its
	// data: images, and ran without errors.
	for _, u := range b.Requests() {
		if !strings.HasPrefix(u, "file://") && !strings.HasPrefix(u, "data:") {
			t.Errorf("the report requested %s", u)
		}
	}
	if errs := b.Errors(); len(errs) > 0 {
		t.Errorf("page errors: %v", errs)
	}
	art := browsertest.ArtifactDir(t)
	b.Screenshot(filepath.Join(art, "report.png"))
	if data, err := os.ReadFile(filepath.Join(dir, ReportFile)); err == nil {
		_ = os.WriteFile(filepath.Join(art, ReportFile), data, 0o644)
	}
}

// TestDrawTopologyFailures: links a partition cuts and links cut by
// link_down are dashed, crashed nodes ringed; the others are not.
func TestDrawTopologyFailures(t *testing.T) {
	top, err := Builtin("linear", Params{N: 3})
	if err != nil {
		t.Fatal(err)
	}
	top.At(time.Second, Failure{Kind: FailPartition, Groups: [][]string{{"r1", "c1"}, {"r2", "r3", "c2"}}})
	top.At(2*time.Second, Failure{Kind: FailLinkDown, Link: "r3-c2"})
	top.At(3*time.Second, Failure{Kind: FailCrash, Node: "r2"})
	svg := drawTopology(top, &Results{})
	for link, cut := range map[string]bool{"r1-r2": true, "r3-c2": true, "r2-r3": false, "r1-c1": false} {
		marked := strings.Contains(svg, fmt.Sprintf(`class="link cut" data-link="%s"`, link))
		if marked != cut {
			t.Errorf("link %s marked cut: %v, want %v", link, marked, cut)
		}
	}
	for node, crashed := range map[string]bool{"r2": true, "r1": false, "c2": false} {
		marked := strings.Contains(svg, fmt.Sprintf(`class="node router crashed" data-name="%s"`, node)) ||
			strings.Contains(svg, fmt.Sprintf(`class="node client crashed" data-name="%s"`, node))
		if marked != crashed {
			t.Errorf("node %s marked crashed: %v, want %v", node, marked, crashed)
		}
	}
}

// TestLayoutFR: the same graph gets the same drawing; positions fill the
// unit square; joined nodes end up closer than the average pair.
func TestLayoutFR(t *testing.T) {
	top, err := Builtin("grid", Params{Rows: 4, Cols: 4})
	if err != nil {
		t.Fatal(err)
	}
	idx := map[string]int{}
	for i, n := range top.Nodes {
		idx[n.Name] = i
	}
	var edges [][2]int
	for _, l := range top.Links {
		edges = append(edges, [2]int{idx[l.A], idx[l.B]})
	}
	n := len(top.Nodes)
	p1 := layoutFR(n, edges, 300)
	p2 := layoutFR(n, edges, 300)
	var all, joined float64
	for i := range p1 {
		if p1[i] != p2[i] {
			t.Fatal("layout differs between runs")
		}
		if p1[i].X < 0 || p1[i].X > 1 || p1[i].Y < 0 || p1[i].Y > 1 || math.IsNaN(p1[i].X) {
			t.Fatalf("position %v outside the unit square", p1[i])
		}
		for j := i + 1; j < n; j++ {
			all += math.Hypot(p1[i].X-p1[j].X, p1[i].Y-p1[j].Y)
		}
	}
	all /= float64(n * (n - 1) / 2)
	for _, e := range edges {
		joined += math.Hypot(p1[e[0]].X-p1[e[1]].X, p1[e[0]].Y-p1[e[1]].Y)
	}
	joined /= float64(len(edges))
	if joined > all/2 {
		t.Errorf("joined nodes %.3f apart on average, all pairs %.3f: the layout does not pull edges together", joined, all)
	}
	if got := layoutFR(1, nil, 10); got[0] != (point{0.5, 0.5}) {
		t.Errorf("one node at %v", got[0])
	}
	if got := layoutFR(0, nil, 10); len(got) != 0 {
		t.Errorf("no nodes: %v", got)
	}
}

// TestReportLargeTopology: a dense 1,000-router topology still gives a
// report a browser opens — every node drawn, links beyond the drawing
// bound left out of the drawing, tables cut at their bound with a note.
func TestReportLargeTopology(t *testing.T) {
	top, err := Builtin("waxman", Params{N: 1000, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Links) <= reportMaxLinks {
		t.Fatalf("only %d links: the test wants more than %d", len(top.Links), reportMaxLinks)
	}
	res := &Results{Name: "large", Nodes: len(top.Nodes), Links: len(top.Links)}
	for i := range 3000 {
		res.LinkStats = append(res.LinkStats, LinkResult{Link: fmt.Sprintf("l%d", i), Packets: map[string]uint64{"delivered": 1}})
	}
	dir := t.TempDir()
	path, err := res.Report(top, dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	if len(b) > 2<<20 {
		t.Errorf("report of %d bytes", len(b))
	}
	for _, n := range top.Nodes {
		if !strings.Contains(html, fmt.Sprintf(`data-name="%s"`, n.Name)) {
			t.Fatalf("node %s not drawn", n.Name)
		}
	}
	if strings.Contains(html, "<line") || !strings.Contains(html, "too many to draw") {
		t.Error("links drawn beyond the bound, or no note")
	}
	if n := len(regexp.MustCompile(`<td>l[0-9]+</td>`).FindAllString(html, -1)); n != reportMaxRows {
		t.Errorf("%d link rows, want %d", n, reportMaxRows)
	}
	if !strings.Contains(html, "links.csv has them all") {
		t.Error("no note that the table is cut")
	}
}
