package main

import (
	"fmt"
	"image/color"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// forwardSub splits BenchmarkForward's sub-benchmark names: "router-raw-200B".
var forwardSub = regexp.MustCompile(`^router/BenchmarkForward/(.+)-(\d+)B$`)

// Plots writes the PNGs the report links, each only when the run has
// its data, and returns them.
func Plots(dir string, run *Run, rows []Row) ([]Plot, error) {
	var out []Plot
	for _, mk := range []func(*Run, []Row) (*plot.Plot, Plot, vg.Length, vg.Length, error){forwardingPlot, latencyPlot, targetsPlot} {
		p, meta, w, h, err := mk(run, rows)
		if err != nil {
			return out, err
		}
		if p == nil {
			continue
		}
		if err := p.Save(w, h, filepath.Join(dir, meta.File)); err != nil {
			return out, fmt.Errorf("plot %s: %w", meta.File, err)
		}
		out = append(out, meta)
	}
	return out, nil
}

// forwardFigures collects BenchmarkForward's unit per (variant, size).
func forwardFigures(run *Run, unit string, only func(variant string) bool) (variants []string, sizes []int, v map[string]map[int]float64) {
	v = map[string]map[int]float64{}
	for _, r := range run.Results {
		m := forwardSub.FindStringSubmatch(r.Key())
		if m == nil || !only(m[1]) {
			continue
		}
		x, ok := r.Value(unit)
		if !ok {
			continue
		}
		size, _ := strconv.Atoi(m[2])
		if v[m[1]] == nil {
			v[m[1]] = map[int]float64{}
			variants = append(variants, m[1])
		}
		v[m[1]][size] = x
		if !slices.Contains(sizes, size) {
			sizes = append(sizes, size)
		}
	}
	slices.Sort(sizes)
	return variants, sizes, v
}

func groupedBars(p *plot.Plot, series []string, sizes []int, v map[string]map[int]float64) error {
	w := vg.Points(min(40, 220/float64(max(1, len(series)))))
	top := 0.0
	for _, s := range series {
		for _, x := range v[s] {
			top = max(top, x)
		}
	}
	// Headroom for the legend, top right, above the tallest bar.
	p.Y.Max = top * (1.1 + 0.08*float64(len(series)))
	for i, s := range series {
		vals := make(plotter.Values, len(sizes))
		for j, size := range sizes {
			vals[j] = v[s][size]
		}
		bc, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		bc.LineStyle.Width = 0
		bc.Color = plotutil.Color(i)
		bc.Offset = w * vg.Length(float64(i)-float64(len(series)-1)/2)
		p.Add(bc)
		p.Legend.Add(s, bc)
	}
	names := make([]string, len(sizes))
	for i, s := range sizes {
		names[i] = fmt.Sprintf("%d B PDUs", s)
	}
	p.NominalX(names...)
	p.Legend.Top = true
	p.Legend.Left = false
	return nil
}

func forwardingPlot(run *Run, _ []Row) (*plot.Plot, Plot, vg.Length, vg.Length, error) {
	meta := Plot{File: "forwarding.png", Title: "Forwarding rate beside its baselines, per PDU size"}
	series, sizes, v := forwardFigures(run, "pdus/s", func(string) bool { return true })
	if len(series) == 0 {
		return nil, meta, 0, 0, nil
	}
	p := plot.New()
	p.Title.Text = "BenchmarkForward: PDUs/s delivered (same run)"
	p.Y.Label.Text = "PDUs/s"
	p.Y.Tick.Marker = humanTicks{}
	if err := groupedBars(p, series, sizes, v); err != nil {
		return nil, meta, 0, 0, err
	}
	return p, meta, 8 * vg.Inch, 4.5 * vg.Inch, nil
}

func latencyPlot(run *Run, _ []Row) (*plot.Plot, Plot, vg.Length, vg.Length, error) {
	meta := Plot{File: "latency.png", Title: "One-way latency at half load (p50, p99)"}
	half := func(s string) bool { return strings.Contains(s, "half") }
	_, sizes50, v50 := forwardFigures(run, "p50-µs", half)
	_, sizes99, v99 := forwardFigures(run, "p99-µs", half)
	if len(sizes50)+len(sizes99) == 0 {
		return nil, meta, 0, 0, nil
	}
	v := map[string]map[int]float64{"p50": {}, "p99": {}}
	for _, m := range v50 {
		for s, x := range m {
			v["p50"][s] = x
		}
	}
	for _, m := range v99 {
		for s, x := range m {
			v["p99"][s] = x
		}
	}
	sizes := slices.Compact(slices.Sorted(slices.Values(append(sizes50, sizes99...))))
	p := plot.New()
	p.Title.Text = "BenchmarkForward router-raw-half: sender's Send to the sink's handler"
	p.Y.Label.Text = "µs"
	p.Y.Tick.Marker = humanTicks{}
	if err := groupedBars(p, []string{"p50", "p99"}, sizes, v); err != nil {
		return nil, meta, 0, 0, err
	}
	return p, meta, 7 * vg.Inch, 4 * vg.Inch, nil
}

// targetsPlot: every row with a target and a figure, as its score (1 =
// the target exactly, more is better whichever the direction), capped.
func targetsPlot(_ *Run, rows []Row) (*plot.Plot, Plot, vg.Length, vg.Length, error) {
	meta := Plot{File: "targets.png", Title: "Each figure against its target (1 = on target, longer is better)"}
	names, met, notMet := targetBars(rows)
	if len(names) == 0 {
		return nil, meta, 0, 0, nil
	}
	p := plot.New()
	p.Title.Text = "score = achieved / target (≥) or target / achieved (≤)"
	p.X.Label.Text = "score (1 = target)"
	p.X.Min = 0
	w := vg.Points(10)
	for i, vals := range []plotter.Values{met, notMet} {
		bc, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return nil, meta, 0, 0, err
		}
		bc.Horizontal = true
		bc.LineStyle.Width = 0
		bc.Color = []color.Color{color.RGBA{G: 150, A: 255}, color.RGBA{R: 200, A: 255}}[i]
		p.Add(bc)
		p.Legend.Add([]string{"met", "not met"}[i], bc)
	}
	const capAt = barCap
	one, err := plotter.NewLine(plotter.XYs{{X: 1, Y: -0.5}, {X: 1, Y: float64(len(names)) - 0.5}})
	if err != nil {
		return nil, meta, 0, 0, err
	}
	one.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(one)
	p.NominalY(names...)
	p.X.Max = capAt + 0.7 // room for the legend
	p.Legend.Top = true
	return p, meta, 9 * vg.Inch, vg.Length(1.2+0.28*float64(len(names))) * vg.Inch, nil
}

// humanTicks labels an axis 1k, 2.5M, ... .
type humanTicks struct{}

func (humanTicks) Ticks(min, max float64) []plot.Tick {
	t := plot.DefaultTicks{}.Ticks(min, max)
	for i := range t {
		if t[i].Label != "" {
			t[i].Label = human(t[i].Value)
		}
	}
	return t
}

func human(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// barCap caps a score's bar in targets.png (its label gives the value).
const barCap = 3.0

// targetBars gives targets.png's rows, bottom first (NominalY counts from
// the bottom; the chart reads top to bottom in the targets' order): each
// row with a target and a figure, its score under met or notMet (0 under
// the other).
func targetBars(rows []Row) (names []string, met, notMet plotter.Values) {
	for _, r := range rows {
		s, ok := r.Score()
		if !ok {
			continue
		}
		label := r.Figure
		if s > barCap {
			label += fmt.Sprintf(" (%.1f, capped)", s)
			s = barCap
		}
		names = append(names, label)
		if r.Status == Met {
			met, notMet = append(met, s), append(notMet, 0)
		} else {
			met, notMet = append(met, 0), append(notMet, s)
		}
	}
	slices.Reverse(names)
	slices.Reverse(met)
	slices.Reverse(notMet)
	return names, met, notMet
}
