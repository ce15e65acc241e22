package tunnel

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestCollector(t *testing.T) {
	a := newTestNode(t, true, nil)
	b := newTestNode(t, true, nil)
	la, _ := pair(t, a, b, KindRaw)
	la.Send([]byte("x"))
	b.sink.wait(t, 1, 3*time.Second)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(b.ep.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	series := map[string]int{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, lp := range m.GetLabel() {
				key += "/" + lp.GetValue()
			}
			series[mf.GetName()]++
			if c := m.GetCounter(); c != nil {
				got[key] = c.GetValue()
			} else if g := m.GetGauge(); g != nil {
				got[key] = g.GetValue()
			}
		}
	}
	for k, want := range map[string]float64{
		"gdp_tunnel_pdus_total/in":       1,
		"gdp_tunnel_pdus_total/out":      0,
		"gdp_tunnel_raw_frames_total/in": 1,
		"gdp_tunnel_links":               1,
		"gdp_tunnel_drops_total/auth":    0,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	// b received the frame with at least one receive call (its loop may
	// be in the next already).
	if got["gdp_tunnel_raw_syscalls_total/in"] < 1 || series["gdp_tunnel_raw_syscalls_total"] != 2 {
		t.Errorf("raw syscalls in %v (%d series), want ≥ 1 (2 series)", got["gdp_tunnel_raw_syscalls_total/in"], series["gdp_tunnel_raw_syscalls_total"])
	}
	if series["gdp_tunnel_drops_total"] != int(numDropReasons) {
		t.Errorf("%d drop series", series["gdp_tunnel_drops_total"])
	}
}
