package handoffd

import (
	"fmt"
	"image/color"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Plot writes the report's timeline to path (.png or .svg): the bytes on
// the wire and the changed bytes taken in per second, the bandwidth
// estimate, and a labelled mark at every mode switch.
func (r *Report) Plot(path string) error {
	ext := strings.ToLower(filepath.Ext(path))
	if ext != ".png" && ext != ".svg" {
		return fmt.Errorf("plot %s: want a .png or .svg file", path)
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("handoff %s: %.1f MB changed, %.2f MB on the wire, %.1fs", r.ID,
		float64(r.ChangedBytes)/1e6, float64(r.WireBytes)/1e6, r.TotalSec)
	p.X.Label.Text = "time (s)"
	p.Y.Label.Text = "Mbit/s"
	var wire, in, bw plotter.XYs
	top := 1.0
	for _, s := range r.Samples {
		wire = append(wire, plotter.XY{X: s.AtSec, Y: s.WireBps * 8 / 1e6})
		in = append(in, plotter.XY{X: s.AtSec, Y: s.InputBps * 8 / 1e6})
		bw = append(bw, plotter.XY{X: s.AtSec, Y: s.BwEst * 8 / 1e6})
		top = max(top, s.WireBps*8/1e6, s.BwEst*8/1e6)
	}
	for _, l := range []struct {
		name string
		xy   plotter.XYs
		c    color.RGBA
		dash bool
	}{{"on the wire", wire, color.RGBA{R: 200, A: 255}, false}, {"changed data in", in, color.RGBA{B: 200, A: 255}, false},
		{"bandwidth estimate", bw, color.RGBA{G: 140, A: 255}, true}} {
		if len(l.xy) == 0 {
			continue
		}
		line, err := plotter.NewLine(l.xy)
		if err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		line.Color = l.c
		if l.dash {
			line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(line)
		p.Legend.Add(l.name, line)
	}
	// Mode switches: a vertical mark and the mode's name.
	var labels plotter.XYLabels
	for i, m := range r.Modes {
		x := m.AtSec
		mark, _ := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: top}})
		mark.Color = color.RGBA{A: 120}
		mark.Dashes = []vg.Length{vg.Points(1), vg.Points(2)}
		p.Add(mark)
		labels.XYs = append(labels.XYs, plotter.XY{X: x, Y: top * (0.95 - 0.07*float64(i%4))})
		labels.Labels = append(labels.Labels, " "+m.Mode)
	}
	if len(labels.XYs) > 0 {
		lb, err := plotter.NewLabels(labels)
		if err == nil {
			p.Add(lb)
		}
	}
	p.Legend.Top = true
	if err := p.Save(8*vg.Inch, 4*vg.Inch, path); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return nil
}
