package resolver

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// dhtMetrics are one DHT node's counters. They exist even when nobody
// registers them, so the code never checks for nil.
type dhtMetrics struct {
	puts       *prometheus.CounterVec // result: ok, failed
	refused    *prometheus.CounterVec // reason: why the validator refused a record
	admissions *prometheus.CounterVec // result: admitted, refused, timeout
	// deniedEvicted: refused peers forgotten early, the list full
	// (DHTConfig.MaxDenied).
	deniedEvicted prometheus.Counter
	rejectedRq    prometheus.Counter     // DHT streams of peers that had not proved membership
	republish     *prometheus.CounterVec // result: ok, renewed, expired, failed
	stored        prometheus.Gauge       // record sets (names) in this node's store
	swept         *prometheus.CounterVec // reason: age (set deleted), expired (entries dropped)
	conns         *prometheus.CounterVec // direction: in, out (libp2p connections opened)
	// bootstrapLost counts connections to a bootstrap peer found lost;
	// bootstrapDials the redials that followed, by result: ok, failed.
	bootstrapLost  prometheus.Counter
	bootstrapDials *prometheus.CounterVec
}

func newDHTMetrics(reg prometheus.Registerer, tier string) (*dhtMetrics, error) {
	cl := prometheus.Labels{"tier": tier}
	m := &dhtMetrics{
		puts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "resolver",
			Name: "dht_puts_total", Help: "Remote record puts by result.", ConstLabels: cl}, []string{"result"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "resolver",
			Name: "records_refused_total", Help: "Records the validator refused, by reason.", ConstLabels: cl}, []string{"reason"}),
		admissions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "resolver",
			Name: "peer_admissions_total", Help: "Membership handshakes by result.", ConstLabels: cl}, []string{"result"}),
		deniedEvicted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "resolver",
			Name: "denied_evicted_total", Help: "Refused peers (a failed membership handshake) forgotten before their refusal ended because the list of refused peers was full (max_denied, 4096): a flood of fresh peer ids; a forgotten peer may retry the handshake early.", ConstLabels: cl}),
		rejectedRq: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "resolver",
			Name: "dht_requests_refused_total", Help: "DHT streams reset, unread, because the peer had not proved membership (or it expired).", ConstLabels: cl}),
		republish: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "resolver",
			Name: "republish_total", Help: "Republish outcomes per record.", ConstLabels: cl}, []string{"result"}),
		stored: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "gdp", Subsystem: "resolver",
			Name: "dht_stored_names", Help: "Names (record sets) held in this node's DHT store.", ConstLabels: cl}),
		swept: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "resolver",
			Name: "dht_swept_total", Help: "Stored records removed by the sweep: age (whole set older than record_age), expired (entries).", ConstLabels: cl}, []string{"reason"}),
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "resolver",
			Name: "dht_connections_total", Help: "libp2p connections opened (each a QUIC/TLS handshake, then identify and the membership proof), by direction: in, out.", ConstLabels: cl}, []string{"direction"}),
		bootstrapLost: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "resolver",
			Name: "dht_bootstrap_lost_total", Help: "Connections to a bootstrap peer found lost (it restarted or went away); each is redialled.", ConstLabels: cl}),
		bootstrapDials: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "resolver",
			Name: "dht_bootstrap_redials_total", Help: "Redials of a lost bootstrap peer, by result: ok, failed.", ConstLabels: cl}, []string{"result"}),
	}
	// Every series exists from the start at zero, so a rate() or an alert
	// on a reason that has not happened yet finds it.
	for _, r := range []string{"ok", "failed"} {
		m.puts.WithLabelValues(r)
	}
	for _, r := range []string{"wrong_key", "too_large", "malformed", "bad_signature", "wrong_kind", "not_member", "expired", "bad_chain", "router_quota", "domain_quota", "other"} {
		m.refused.WithLabelValues(r)
	}
	for _, r := range []string{"age", "expired"} {
		m.swept.WithLabelValues(r)
	}
	for _, r := range []string{"admitted", "refused", "timeout"} {
		m.admissions.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "renewed", "expired", "failed"} {
		m.republish.WithLabelValues(r)
	}
	for _, r := range []string{"in", "out"} {
		m.conns.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "failed"} {
		m.bootstrapDials.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.puts, m.refused, m.admissions, m.deniedEvicted, m.rejectedRq, m.republish, m.stored, m.swept, m.conns, m.bootstrapLost, m.bootstrapDials} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return nil, err
				}
			}
		}
	}
	return m, nil
}

// cacheMetrics are the cache's hit rate and lookup latency.
type cacheMetrics struct {
	lookups *prometheus.CounterVec // result: hit, negative_hit, miss
	latency *prometheus.HistogramVec
}

func newCacheMetrics(reg prometheus.Registerer) (*cacheMetrics, error) {
	m := &cacheMetrics{
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "resolver",
			Name: "cache_lookups_total", Help: "Lookups by cache result (hit, negative_hit, miss)."}, []string{"result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "gdp", Subsystem: "resolver",
			Name: "lookup_seconds", Help: "Lookup latency by cache result.",
			Buckets: []float64{1e-6, 1e-5, 1e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.5, 1, 5}},
			[]string{"result"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.lookups, m.latency} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
