package capsuled

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gdpnet/gdpnet/pdu"
)

// TestBulkStreamsPerPeer: one reader identity gets at most its share of
// bulk streams at once, counted when refused; another identity is not
// affected; a stream ended frees its place.
func TestBulkStreamsPerPeer(t *testing.T) {
	b := &bulkState{
		streams: prometheus.NewGauge(prometheus.GaugeOpts{Name: "s"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "r"})}
	a, o := pdu.Name{1}, pdu.Name{2}
	if !b.admit(a, 2) || !b.admit(a, 2) {
		t.Fatal("the first two streams refused")
	}
	if b.admit(a, 2) {
		t.Fatal("a third stream from one identity admitted")
	}
	if !b.admit(o, 2) {
		t.Fatal("another identity refused")
	}
	if got := value(b.refused); got != 1 {
		t.Fatalf("refused counted %v, want 1", got)
	}
	if got := value(b.streams); got != 3 {
		t.Fatalf("streams gauge %v, want 3", got)
	}
	b.release(a)
	if !b.admit(a, 2) {
		t.Fatal("a stream refused after one ended")
	}
	b.release(a)
	b.release(a)
	b.release(o)
	if len(b.perPeer.n) != 0 || value(b.streams) != 0 {
		t.Fatalf("after every stream ended: %v, gauge %v", b.perPeer.n, value(b.streams))
	}
}

func value(c prometheus.Metric) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}
