package gateway

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests   *prometheus.CounterVec
	rejected   *prometheus.CounterVec
	appended   prometheus.Counter
	sent       prometheus.Counter
	subs       prometheus.Gauge
	reattached prometheus.Counter
	outage     prometheus.Gauge
	sealed     *prometheus.CounterVec
	// readers and readerEvictions are the reader cache (MaxReaders).
	readers         prometheus.Gauge
	readerEvictions prometheus.Counter
	// writers, writerEvictions, kvStores and kvEvictions are the open
	// writers and KV stores (MaxWriters, MaxKVStores, IdleClose).
	writers         prometheus.Gauge
	writerEvictions *prometheus.CounterVec
	kvStores        prometheus.Gauge
	kvEvictions     *prometheus.CounterVec
	// filesSkipped counts the records the files reader passed over
	// (fs.FS.Stats.Skipped) on each read of a files capsule's tree.
	filesSkipped prometheus.Counter
}

// rejectReasons are the reasons of gdp_gateway_rejected_total, present at
// zero from the start (docs/GATEWAY.md lists them).
var rejectReasons = []string{"unauthorized", "malformed_json", "too_large", "unknown_capsule", "bad_request",
	"no_such_endpoint", "no_such_record", "no_such_key", "no_such_file", "no_key", "too_many_subscriptions", "writer_conflict",
	"not_a_reader", "not_sealed", "sealed_capsule"}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gdp_gateway_requests_total",
			Help: "HTTP requests served, by endpoint and status code."}, []string{"endpoint", "code"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gdp_gateway_rejected_total",
			Help: "Requests refused with a 4xx before anything was written, by reason."}, []string{"reason"}),
		appended: prometheus.NewCounter(prometheus.CounterOpts{Name: "gdp_gateway_records_appended_total",
			Help: "Records appended through the gateway and acknowledged by a replica."}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{Name: "gdp_gateway_subscription_records_total",
			Help: "Records sent to WebSocket subscribers."}),
		subs: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gdp_gateway_subscriptions",
			Help: "WebSocket subscriptions open."}),
		reattached: prometheus.NewCounter(prometheus.CounterOpts{Name: "gdp_gateway_uplink_reattachments_total",
			Help: "Times the uplink re-attached after its router was lost."}),
		outage: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gdp_gateway_uplink_last_outage_seconds",
			Help: "How long the uplink was down before its last re-attachment."}),
		sealed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gdp_gateway_sealed_records_total",
			Help: "Encrypted-capsule work: records sealed and appended (sealed), records opened for a read (opened), reader-set changes (rotated), writers of plain records opened above seqno 0, or of KV or files, on a capsule that looked empty, its first record then asked of each replica (rechecked, Session 16)."}, []string{"op"}),
		readers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gdp_gateway_readers",
			Help: "Capsule readers cached between requests (at most max_readers)."}),
		readerEvictions: prometheus.NewCounter(prometheus.CounterOpts{Name: "gdp_gateway_reader_evictions_total",
			Help: "Cached capsule readers dropped, least recently used first, to stay within max_readers."}),
		writers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gdp_gateway_writers",
			Help: "Capsule writers open, each holding its capsule's writer lock (at most max_writers between requests)."}),
		writerEvictions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gdp_gateway_writer_evictions_total",
			Help: "Open capsule writers closed (flushed, lock released) by the gateway: reason max_writers (least recently used, to make room) or idle (unused for idle_close)."}, []string{"reason"}),
		kvStores: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gdp_gateway_kv_stores",
			Help: "KV stores kept between requests, each following its capsule (at most max_kv_stores)."}),
		kvEvictions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gdp_gateway_kv_store_evictions_total",
			Help: "KV stores closed by the gateway: reason max_kv_stores (least recently used, to make room) or idle (unused for idle_close)."}, []string{"reason"}),
		filesSkipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "gdp_gateway_files_records_skipped_total",
			Help: "Records a read of a files capsule passed over because they are not files records (another program's KV puts or plain records in the capsule), summed over the reads: each read counts those it passed."}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.rejected, m.appended, m.sent, m.subs, m.reattached, m.outage, m.sealed,
		m.readers, m.readerEvictions, m.writers, m.writerEvictions, m.kvStores, m.kvEvictions, m.filesSkipped} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("gateway metrics: %w", err)
		}
	}
	for _, r := range rejectReasons {
		m.rejected.WithLabelValues(r)
	}
	for _, r := range []string{"max_writers", "idle"} {
		m.writerEvictions.WithLabelValues(r)
	}
	for _, r := range []string{"max_kv_stores", "idle"} {
		m.kvEvictions.WithLabelValues(r)
	}
	return m, nil
}
