package router

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gdpnet/gdpnet/advert"
	"github.com/gdpnet/gdpnet/pdu"
)

// dropReason is why the router dropped a PDU; each is a value of the
// "reason" label of gdp_router_pdus_dropped_total.
type dropReason uint8

const (
	dropMalformed   dropReason = iota // failed to decode
	dropRateLimited                   // the ingress face is over its rate
	dropTTLExpired                    // arrived with TTL 0
	dropNoRoute                       // no FIB entry and the resolver had none
	dropDuplicate                     // seen within the dedup window
	dropSpoofed                       // an endpoint used a source name it does not hold
	dropForbidden                     // policy: control from a router face, NAK/ADVERTISE_RESULT from an endpoint, domain not allowed
	dropTooBig                        // larger than the configured maximum
	dropQueueFull                     // a face's egress queue or the resolver wait queue is full
	dropSendError                     // the egress link refused it
	dropLocal                         // addressed to the router but not something it answers
	dropUnknownFace                   // arrived on a link that is not (or no longer) a face
	dropDraining                      // the router is shutting down
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{
	"malformed", "rate_limited", "ttl_expired", "no_route", "duplicate", "spoofed_source",
	"forbidden", "too_big", "queue_full", "send_error", "local", "unknown_face", "draining",
}

func (d dropReason) String() string { return dropReasonNames[d] }

// quotaReason is a per-identity (or per-face) limit that bit; each is a
// value of the "reason" label of gdp_router_quota_refusals_total.
type quotaReason uint8

const (
	quotaNames          quotaReason = iota // an identity's local names (advertise.max_names_per_identity)
	quotaTunnels                           // an identity's faces (face.max_per_identity)
	quotaQueueBytes                        // bytes waiting on one face (face.queue_bytes)
	quotaPublish                           // an identity's pending publish jobs (resolver.publish_per_identity)
	quotaResolve                           // an identity's parked PDUs (resolver.max_waiting_per_identity)
	quotaPublishWaits                      // an identity's ADVERTISEs waiting for their records (advertise.max_publish_waits_per_identity)
	quotaDomainNames                       // another domain's local names, all its identities (advertise.max_names_per_domain)
	quotaDomainTunnels                     // another domain's faces, all its identities (face.max_per_domain)
	quotaDomainRate                        // another domain's names verified per second, all its identities (advertise.domain_rate)
	quotaResolveFull                       // the PDUs parked for lookups in all (resolver.max_waiting), none evictable
	quotaResolveEvicted                    // a largest holder's newest parked PDU dropped for another identity's
	quotaQueueShare                        // a sender's share of one face's egress queue (face.queue, face.queue_bytes)
	numQuotaReasons
)

var quotaReasonNames = [numQuotaReasons]string{
	"identity_quota", "tunnels_per_identity", "queue_bytes", "publish_queue", "resolve_queue",
	"publish_waits", "domain_quota", "tunnels_per_domain", "domain_rate", "resolve_full", "resolve_evicted",
	"queue_share",
}

func (q quotaReason) String() string { return quotaReasonNames[q] }

// metrics holds the router's Prometheus collectors. Hot-path counters are
// bound to their labels once, so counting is one atomic add.
type metrics struct {
	pdusIn    prometheus.Counter
	pdusOut   prometheus.Counter
	dropped   [numDropReasons]prometheus.Counter
	naks      [pdu.CodeMalformed + 1]prometheus.Counter
	adverts   *prometheus.CounterVec // result: accepted or a refusal reason
	withdrawn *prometheus.CounterVec // why: withdraw, disconnect, expiry
	lookups   *prometheus.CounterVec // result: found, not_found, forbidden, error
	// downstream counts location records downstream routers announced.
	downstream *prometheus.CounterVec
	latency    prometheus.Histogram
	quotas     [numQuotaReasons]prometheus.Counter
	// pubRetries counts resolver publish and withdraw jobs that failed
	// and were scheduled again.
	pubRetries prometheus.Counter
	// publishWaits counts ADVERTISEs that asked to wait for their location
	// records, by outcome (published, pending, no_resolver).
	publishWaits *prometheus.CounterVec
	// facesRefused counts tunnels refused a face (or closed on reload) by
	// the domain policy, and tunnels whose peer the tunnel never
	// classified.
	facesRefused *prometheus.CounterVec // reason: forbidden_domain, unclassified
	// faceEvents counts every face attached and detached: their log lines
	// are rate-limited per peer (a peer reconnecting in a loop).
	faceEvents *prometheus.CounterVec // event: attached, detached
	// negForgotten counts negative-cache entries dropped because a PDU
	// from the name arrived (it is back; ask the resolver again).
	negForgotten prometheus.Counter
}

// quota counts one refusal at a per-identity or per-face limit.
func (m *metrics) quota(q quotaReason) { m.quotas[q].Inc() }

func newMetrics(reg prometheus.Registerer, r *Router) *metrics {
	m := &metrics{
		pdusIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gdp_router_pdus_in_total", Help: "PDUs received on all faces.",
		}),
		pdusOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gdp_router_pdus_out_total", Help: "PDUs sent on all faces (forwarded, NAKs, replies).",
		}),
		adverts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gdp_router_advertisements_total",
			Help: "Advertised names by result: accepted, or the reason they were refused.",
		}, []string{"result"}),
		withdrawn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gdp_router_routes_removed_total", Help: "Local routes removed, by reason (withdraw, disconnect, expiry).",
		}, []string{"reason"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gdp_router_resolver_lookups_total", Help: "Resolver lookups after a FIB miss, by result.",
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gdp_router_resolver_lookup_seconds",
			Help:    "Latency of resolver lookups after a FIB miss.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		}),
	}
	m.facesRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gdp_router_faces_refused_total",
		Help: "Tunnels refused a face, or closed when the policy changed, by reason (forbidden_domain, unclassified).",
	}, []string{"reason"})
	for _, r := range []string{"forbidden_domain", "unclassified"} {
		m.facesRefused.WithLabelValues(r)
	}
	m.faceEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gdp_router_face_events_total",
		Help: "Faces attached and detached, by event; their log lines are rate-limited per peer, this counts each.",
	}, []string{"event"})
	for _, e := range []string{"attached", "detached"} {
		m.faceEvents.WithLabelValues(e)
	}
	m.downstream = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gdp_router_downstream_records_total",
		Help: "Location records announced by downstream routers (their upstream is this router), by result.",
	}, []string{"result"})
	for _, l := range []string{"stored", "refused", "not_holder", "malformed", "rate_limited", "busy", "peer_busy", "no_resolver"} {
		m.downstream.WithLabelValues(l)
	}
	m.pubRetries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gdp_router_publish_retries_total",
		Help: "Location record publications and withdrawals that failed and were scheduled again.",
	})
	m.publishWaits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gdp_router_publish_waits_total",
		Help: "ADVERTISEs that asked to wait for their location records (PROTOCOL.md 5.4), by outcome: published, pending (the wait ended first), no_resolver.",
	}, []string{"result"})
	for _, l := range []string{"published", "pending", "no_resolver"} {
		m.publishWaits.WithLabelValues(l)
	}
	m.negForgotten = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gdp_router_negative_forgotten_total",
		Help: "Negative resolver-cache entries forgotten because a PDU from that name arrived.",
	})
	pubPending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gdp_router_publish_pending", Help: "Location record jobs accepted and not yet done (waiting, backing off or in flight).",
	}, func() float64 { return float64(r.pubq.waiting()) })
	// Labelled series exist from the start at zero.
	for s := advert.Status(0); !strings.HasPrefix(s.String(), "status("); s++ {
		m.adverts.WithLabelValues(s.String())
	}
	for _, r := range []string{"withdraw", "disconnect", "expiry", "replaced"} {
		m.withdrawn.WithLabelValues(r)
	}
	for _, r := range []string{"found", "not_found", "error", "forbidden", "stale", "revived"} {
		m.lookups.WithLabelValues(r)
	}
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gdp_router_pdus_dropped_total", Help: "PDUs dropped, by reason.",
	}, []string{"reason"})
	for i := range m.dropped {
		m.dropped[i] = dropped.WithLabelValues(dropReason(i).String())
	}
	quotas := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gdp_router_quota_refusals_total",
		Help: "Work refused or dropped because one identity or face reached its share of a shared limit, by reason.",
	}, []string{"reason"})
	for i := range m.quotas {
		m.quotas[i] = quotas.WithLabelValues(quotaReason(i).String())
	}
	naks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gdp_router_naks_sent_total", Help: "NAKs sent, by code.",
	}, []string{"code"})
	for c := range m.naks {
		m.naks[c] = naks.WithLabelValues(pdu.Code(c).String())
	}
	fibSize := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gdp_router_fib_names", Help: "Names in the FIB.",
	}, func() float64 { return float64(r.fib.Len()) })
	faces := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gdp_router_faces", Help: "Attached faces (endpoints and peer routers).",
	}, func() float64 { return float64(r.faceCount()) })
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gdp_router_resolve_waiting_pdus", Help: "PDUs parked while the resolver is asked.",
	}, func() float64 { return float64(r.resolve.waiting()) })
	if reg != nil {
		reg.MustRegister(m.pdusIn, m.pdusOut, dropped, quotas, naks, m.adverts, m.withdrawn, m.lookups, m.latency,
			fibSize, faces, pending, m.pubRetries, pubPending, m.facesRefused, m.faceEvents, m.downstream, m.negForgotten, m.publishWaits)
	}
	return m
}
