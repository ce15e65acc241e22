package dashboard

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metrics is one gathering of a registry, from which several counters are
// read.
type Metrics map[string]*dto.MetricFamily

// Gather reads g once. A gatherer that fails still yields what it
// gathered (a dashboard shows what it can).
func Gather(g prometheus.Gatherer) Metrics {
	m := Metrics{}
	if g == nil {
		return m
	}
	fams, _ := g.Gather()
	for _, f := range fams {
		m[f.GetName()] = f
	}
	return m
}

// Total is metric's value summed over all its series (counters and
// gauges; 0 when absent).
func (m Metrics) Total(metric string) float64 {
	f := m[metric]
	if f == nil {
		return 0
	}
	var sum float64
	for _, s := range f.GetMetric() {
		sum += value(s)
	}
	return sum
}

// Counter is metric's total as a Counter in group, labelled label.
func (m Metrics) Counter(group, label, metric string) Counter {
	return Counter{ID: metric, Group: group, Label: label, Value: m.Total(metric)}
}

// By is metric's series summed per value of label (the other labels
// summed over), as Counters in group sorted by label value; values in
// skip are left out. A metric with no such label yields nothing.
func (m Metrics) By(group, metric, label string, skip ...string) []Counter {
	f := m[metric]
	if f == nil {
		return nil
	}
	sums := map[string]float64{}
	for _, s := range f.GetMetric() {
		for _, lp := range s.GetLabel() {
			if lp.GetName() == label {
				sums[lp.GetValue()] += value(s)
			}
		}
	}
	for _, v := range skip {
		delete(sums, v)
	}
	out := make([]Counter, 0, len(sums))
	for v, sum := range sums {
		out = append(out, Counter{ID: metric + "/" + v, Group: group, Label: v, Value: sum})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Label < out[j].Label })
	return out
}

func value(s *dto.Metric) float64 {
	switch {
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	case s.Untyped != nil:
		return s.Untyped.GetValue()
	}
	return 0
}
