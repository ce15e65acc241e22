package client

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go/qlog"
	"github.com/quic-go/quic-go/qlogwriter"
)

// Reasons a packet for QUIC over names is dropped (label "reason" of
// gdp_client_quic_dropped_total).
const (
	dropQUICNoListener  = iota // no connection or listener on the destination name
	dropQUICNotQUIC            // empty, longer than a QUIC packet, or not QUIC's first byte
	dropQUICQueueFull          // the receive queue was full
	dropQUICClosed             // arrived while closing
	dropQUICUndecodable        // quic-go could not parse or decrypt it, or knew no connection for it
	dropQUICNAK                // a NAK about one of our QUIC packets (consumed, not delivered)
	numQUICDrops
)

var quicDropNames = [numQUICDrops]string{"no_listener", "not_quic", "queue_full", "closed", "undecodable", "nak"}

// quicStats counts what QUIC over names drops and refuses.
type quicStats struct {
	drops      [numQUICDrops]atomic.Uint64
	sendErrors atomic.Uint64 // packets the link would not take
	refused    atomic.Uint64 // connections over the per-peer limit (MaxConnsPerPeer)
	refusedAll atomic.Uint64 // connections over the total limit (MaxConns)
	// refusedDomain: connections over another domain's limit
	// (MaxConnsPerDomain)
	refusedDomain atomic.Uint64
	// withdrawn: accepted connections closed because their peer's
	// credentials no longer verify under reloaded trust (Session 17).
	withdrawn atomic.Uint64
	// withdrawnDialed: dialled connections closed because their
	// listener's credentials no longer verify under reloaded trust
	// (Session 18).
	withdrawnDialed atomic.Uint64
	accepted        atomic.Uint64
	dialed          atomic.Uint64
}

func (s *quicStats) drop(reason int) { s.drops[reason].Add(1) }

// QUICStats is a snapshot of the counters of QUIC over names.
type QUICStats struct {
	// Dropped packets by reason: no_listener, not_quic, queue_full,
	// closed, undecodable, nak.
	Dropped map[string]uint64
	// SendErrors: packets the tunnel refused (lost, as on any path).
	SendErrors uint64
	// RefusedPeerLimit and RefusedTotalLimit: incoming connections closed
	// because the peer already had MaxConnsPerPeer, or MaxConns were open.
	RefusedPeerLimit, RefusedTotalLimit uint64
	// RefusedDomainLimit: closed because the peer's domain (another than
	// the listener's) had MaxConnsPerDomain open.
	RefusedDomainLimit uint64
	// Withdrawn: accepted connections closed because a reload stopped
	// trusting their peer's domain (Session 17).
	Withdrawn uint64
	// WithdrawnDialed: connections this client dialled, closed because a
	// reload stopped trusting their listener's domain (Session 18).
	WithdrawnDialed uint64
	// Accepted and Dialed connections, since the client started.
	Accepted, Dialed uint64
}

// QUICStats returns the counters of QUIC over names on this client.
func (c *Client) QUICStats() QUICStats {
	s := &c.quic.stats
	out := QUICStats{Dropped: map[string]uint64{}, SendErrors: s.sendErrors.Load(),
		RefusedPeerLimit: s.refused.Load(), RefusedTotalLimit: s.refusedAll.Load(), RefusedDomainLimit: s.refusedDomain.Load(), Withdrawn: s.withdrawn.Load(),
		WithdrawnDialed: s.withdrawnDialed.Load(),
		Accepted:        s.accepted.Load(), Dialed: s.dialed.Load()}
	for i, n := range quicDropNames {
		out.Dropped[n] = s.drops[i].Load()
	}
	return out
}

var (
	quicDroppedDesc = prometheus.NewDesc("gdp_client_quic_dropped_total",
		"Packets of QUIC over names dropped, by reason.", []string{"reason"}, nil)
	quicRefusedDesc = prometheus.NewDesc("gdp_client_quic_refused_total",
		"Incoming QUIC connections over names refused, by limit (peer: max_conns_per_peer, domain: max_conns_per_domain, total: max_conns; withdrawn, Session 17: accepted connections closed because a reload stopped trusting their peer's domain; withdrawn_dialed, Session 18: dialled connections closed for the same reason).", []string{"limit"}, nil)
	quicConnsDesc = prometheus.NewDesc("gdp_client_quic_connections_total",
		"QUIC connections over names established, by direction.", []string{"direction"}, nil)
	quicSendErrDesc = prometheus.NewDesc("gdp_client_quic_send_errors_total",
		"Packets of QUIC over names the tunnel to the router did not take.", nil, nil)
)

// QUICCollector exposes the counters of QUIC over names
// (gdp_client_quic_*) to Prometheus.
func (c *Client) QUICCollector() prometheus.Collector { return quicCollector{&c.quic.stats} }

type quicCollector struct{ s *quicStats }

func (q quicCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- quicDroppedDesc
	ch <- quicRefusedDesc
	ch <- quicConnsDesc
	ch <- quicSendErrDesc
}

func (q quicCollector) Collect(ch chan<- prometheus.Metric) {
	for i, n := range quicDropNames {
		ch <- prometheus.MustNewConstMetric(quicDroppedDesc, prometheus.CounterValue, float64(q.s.drops[i].Load()), n)
	}
	ch <- prometheus.MustNewConstMetric(quicRefusedDesc, prometheus.CounterValue, float64(q.s.refused.Load()), "peer")
	ch <- prometheus.MustNewConstMetric(quicRefusedDesc, prometheus.CounterValue, float64(q.s.refusedDomain.Load()), "domain")
	ch <- prometheus.MustNewConstMetric(quicRefusedDesc, prometheus.CounterValue, float64(q.s.refusedAll.Load()), "total")
	ch <- prometheus.MustNewConstMetric(quicRefusedDesc, prometheus.CounterValue, float64(q.s.withdrawn.Load()), "withdrawn")
	ch <- prometheus.MustNewConstMetric(quicRefusedDesc, prometheus.CounterValue, float64(q.s.withdrawnDialed.Load()), "withdrawn_dialed")
	ch <- prometheus.MustNewConstMetric(quicConnsDesc, prometheus.CounterValue, float64(q.s.accepted.Load()), "accepted")
	ch <- prometheus.MustNewConstMetric(quicConnsDesc, prometheus.CounterValue, float64(q.s.dialed.Load()), "dialed")
	ch <- prometheus.MustNewConstMetric(quicSendErrDesc, prometheus.CounterValue, float64(q.s.sendErrors.Load()))
}

// dropRecorder is a quic-go tracer that counts the packets quic-go drops
// (garbage, unknown connection, failed decryption) as "undecodable".
type dropRecorder struct{ s *quicStats }

func (r dropRecorder) RecordEvent(ev qlogwriter.Event) {
	if _, ok := ev.(qlog.PacketDropped); ok {
		r.s.drop(dropQUICUndecodable)
	}
}

func (dropRecorder) Close() error { return nil }
