package sim

import (
	"fmt"
	"image/color"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Plots writes, in PNG and SVG: latency-cdf (the RTT CDF of every ping
// workload), throughput (every stream and udp workload's rate per 100 ms)
// and, when pings were lost, outages (each ping's RTT over time, lost
// ones at zero, with the failure events marked). It returns the files
// written.
func (r *Results) Plots(dir string) ([]string, error) {
	var files []string
	save := func(p *plot.Plot, name string) error {
		for _, ext := range []string{".png", ".svg"} {
			f := filepath.Join(dir, name+ext)
			if err := p.Save(7*vg.Inch, 4*vg.Inch, f); err != nil {
				return fmt.Errorf("plot %s: %w", name, err)
			}
			files = append(files, f)
		}
		return nil
	}
	cdf := plot.New()
	cdf.Title.Text = r.Name + ": ping RTT CDF"
	cdf.X.Label.Text = "RTT (ms)"
	cdf.Y.Label.Text = "fraction of answered pings"
	tp := plot.New()
	tp.Title.Text = r.Name + ": throughput"
	tp.X.Label.Text = "time (s)"
	tp.Y.Label.Text = "Mbit/s"
	ts := plot.New()
	ts.Title.Text = r.Name + ": ping RTT over time (lost at 0)"
	ts.X.Label.Text = "time (s)"
	ts.Y.Label.Text = "RTT (ms)"
	var nCDF, nTP, lost int
	for i, w := range r.Workloads {
		label := fmt.Sprintf("[%d] %s→%s", w.Index, w.From, w.To)
		switch w.Kind {
		case WorkPing:
			var v []float64
			var pts plotter.XYs
			for _, s := range w.Samples {
				if s.OK {
					v = append(v, s.Value)
				} else {
					lost++
				}
				pts = append(pts, plotter.XY{X: s.T, Y: s.Value})
			}
			if len(v) == 0 {
				continue
			}
			slices.Sort(v)
			xy := make(plotter.XYs, len(v))
			for k, x := range v {
				xy[k] = plotter.XY{X: x, Y: float64(k+1) / float64(len(v))}
			}
			l, err := plotter.NewLine(xy)
			if err != nil {
				return nil, err
			}
			l.Color = plotutil.Color(i)
			cdf.Add(l)
			cdf.Legend.Add(label, l)
			sc, err := plotter.NewScatter(pts)
			if err != nil {
				return nil, err
			}
			sc.Color = plotutil.Color(i)
			ts.Add(sc)
			ts.Legend.Add(label, sc)
			nCDF++
		case WorkStream, WorkUDP:
			if len(w.Samples) == 0 {
				continue
			}
			xy := make(plotter.XYs, len(w.Samples))
			for k, s := range w.Samples {
				xy[k] = plotter.XY{X: s.T, Y: s.Value / 1e6}
			}
			l, err := plotter.NewLine(xy)
			if err != nil {
				return nil, err
			}
			l.Color = plotutil.Color(i)
			tp.Add(l)
			tp.Legend.Add(label+" "+w.Kind, l)
			nTP++
		}
	}
	if nCDF > 0 {
		if err := save(cdf, "latency-cdf"); err != nil {
			return nil, err
		}
	}
	if nTP > 0 {
		if err := save(tp, "throughput"); err != nil {
			return nil, err
		}
	}
	if nCDF > 0 && lost > 0 {
		for _, e := range r.Events {
			l, err := plotter.NewLine(plotter.XYs{{X: e.At, Y: 0}, {X: e.At, Y: ts.Y.Max}})
			if err != nil {
				return nil, err
			}
			l.Color = color.Gray{Y: 128}
			l.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
			ts.Add(l)
		}
		// Name each dashed line at its top (Session 19: with a partition,
		// a heal, a crash and a restart, four unnamed lines), staggered
		// so that events close together do not print over each other.
		if len(r.Events) > 0 {
			xyl := plotter.XYLabels{}
			for k, e := range r.Events {
				xyl.XYs = append(xyl.XYs, plotter.XY{X: e.At, Y: ts.Y.Max * (1 - 0.06*float64(k%3))})
				xyl.Labels = append(xyl.Labels, " "+strings.TrimSpace(e.Kind+" "+eventTarget(e)))
			}
			lb, err := plotter.NewLabels(xyl)
			if err != nil {
				return nil, err
			}
			ts.Add(lb)
		}
		if err := save(ts, "outages"); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// eventTarget is an event's target as a plot label shows it: a link or a
// node; a partition's groups are too long for a label.
func eventTarget(e Event) string {
	if e.Kind == FailPartition || len(e.Target) > 24 {
		return ""
	}
	return e.Target
}
