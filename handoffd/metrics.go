package handoffd

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the agent's Prometheus collectors; a nil *Metrics counts nothing.
type Metrics struct {
	Handoffs *prometheus.CounterVec // result: committed|failed
	Bytes    prometheus.Counter     // stream bytes received
	Blobs    prometheus.Counter
	Records  *prometheus.CounterVec // kind
	BadInput *prometheus.CounterVec // what: blob|record|digest
	Active   prometheus.Gauge
	Refused  *prometheus.CounterVec // reason: busy, peer_busy, not_allowed, disk_full, peer_bytes
}

// NewMetrics registers the collectors with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Handoffs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gdp_handoff_received_total", Help: "Incoming handoffs by result."}, []string{"result"}),
		Bytes:    prometheus.NewCounter(prometheus.CounterOpts{Name: "gdp_handoff_received_bytes_total", Help: "Handoff stream bytes received."}),
		Blobs:    prometheus.NewCounter(prometheus.CounterOpts{Name: "gdp_handoff_blobs_total", Help: "Blobs received and applied."}),
		Records:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gdp_handoff_blocks_total", Help: "Blocks rebuilt, by how they were sent."}, []string{"kind"}),
		BadInput: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gdp_handoff_bad_input_total", Help: "Handoffs dropped for malformed or unverifiable input."}, []string{"what"}),
		Active:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "gdp_handoff_active", Help: "Handoffs in progress."}),
		Refused:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gdp_handoff_refused_total", Help: "Incoming handoffs refused: at accept (busy, peer_busy, not_allowed) or for space (disk_full, peer_bytes: at the hello or while staging)."}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.Handoffs, m.Bytes, m.Blobs, m.Records, m.BadInput, m.Active, m.Refused)
	}
	return m
}

var kindNames = map[byte]string{recZero: "zero", recBase: "base", recDup: "dup", recData: "data", recXOR: "xor"}

func (m *Metrics) blob(n int, recs []record) {
	if m == nil {
		return
	}
	m.Bytes.Add(float64(n))
	m.Blobs.Inc()
	var c [6]int
	for i := range recs {
		c[recs[i].Kind]++
	}
	for k, name := range kindNames {
		if c[k] > 0 {
			m.Records.WithLabelValues(name).Add(float64(c[k]))
		}
	}
}

func (m *Metrics) badInput(what string) {
	if m != nil {
		m.BadInput.WithLabelValues(what).Inc()
	}
}

func (m *Metrics) failed(error) {
	if m != nil {
		m.Handoffs.WithLabelValues("failed").Inc()
	}
}

func (m *Metrics) committed(int64) {
	if m != nil {
		m.Handoffs.WithLabelValues("committed").Inc()
	}
}
