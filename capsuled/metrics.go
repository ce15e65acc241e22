package capsuled

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gdpnet/gdpnet/capsuled/wire"
)

type metrics struct {
	requests      *prometheus.CounterVec // op, status
	appended      prometheus.Counter
	synced        prometheus.Counter
	syncErrors    *prometheus.CounterVec // reason
	equivocations prometheus.Counter
	dropped       *prometheus.CounterVec // reason
	subscriptions prometheus.Gauge
	pushes        prometheus.Counter
	subQuota      *prometheus.CounterVec // reason

	placementsRefused *prometheus.CounterVec // reason
	syncSkipped       prometheus.Counter
	syncFed           prometheus.Counter
	syncInflight      prometheus.Gauge
	// syncRefused counts SYNCs answered 503 because their peer had
	// sync_answers_per_peer being answered.
	syncRefused *prometheus.CounterVec // share
	// appendWaitsLimited counts reordered APPENDs that waited on a worker
	// because their requester's share of off-worker waits was taken
	// (Session 17).
	appendWaitsLimited *prometheus.CounterVec // share
	// adcertExpiry is each placed capsule's AdCert NotAfter (unix seconds).
	adcertExpiry *prometheus.GaugeVec // capsule
	// writerConflicts counts APPENDs refused because they did not extend
	// the head (another writer with the same key).
	writerConflicts prometheus.Counter
	// possessionChecks counts the possession tags of peers' SYNC answers
	// this server checked against its own entries, by result (ok, failed).
	possessionChecks *prometheus.CounterVec
	// samplesClamped counts SYNCs that asked for a possession tag over
	// more than wire.MaxPossessionSamples entries (answered with that many).
	samplesClamped prometheus.Counter
	// possessionRefused counts SYNCs with a possession challenge from a
	// requester that is not one of the capsule's other replicas in this
	// server's placement: answered without a tag, no entry read for it.
	possessionRefused prometheus.Counter
	// queueRefused counts requests answered 503 because the request queue
	// was full: "full" (the newcomer refused), "evicted" (the newest
	// request of the requester holding the most answered 503 to make room).
	queueRefused *prometheus.CounterVec
	// storageRefused counts writes not stored because the capsule's
	// creator holds max_bytes_per_requester here, by op (append: a
	// writer's APPEND answered 503; sync: an anti-entropy round that did
	// not pull the capsule).
	storageRefused *prometheus.CounterVec
	// requesterProofs counts new capsules' CREATEs by what their
	// requester proved (requester.go).
	requesterProofs *prometheus.CounterVec
	// requesterCache counts requests by what their requester proved
	// (requestercache.go), and the cache's drops.
	requesterCache *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
			Name: "requests_total", Help: "Capsule requests served, by operation and status."}, []string{"op", "status"}),
		appended: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
			Name: "appended_records_total", Help: "Records stored from writers' APPENDs."}),
		synced: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
			Name: "synced_records_total", Help: "Records pulled from peer replicas by anti-entropy."}),
		syncErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
			Name: "sync_errors_total", Help: "Anti-entropy rounds that failed, by reason."}, []string{"reason"}),
		equivocations: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
			Name: "equivocations_total", Help: "Writer equivocations detected (evidence stored)."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
			Name: "dropped_total", Help: "PDUs dropped without an answer, by reason."}, []string{"reason"}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "gdp", Subsystem: "capsuled",
			Name: "subscriptions", Help: "Live subscriptions."}),
		pushes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
			Name: "pushes_total", Help: "EVENT messages pushed to subscribers."}),
		subQuota: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
			Name: "subscription_quota_total", Help: "Subscriptions refused or evicted to share them fairly among subscribers, by reason (trust_withdrawn, Session 18: ended by a reload that stopped trusting the subscriber's domain)."}, []string{"reason"}),
		adcertExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "gdp", Subsystem: "capsuled",
			Name: "adcert_expiry_timestamp_seconds", Help: "When each placed capsule's AdCert for this server expires (unix seconds)."}, []string{"capsule"}),
		writerConflicts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
			Name: "writer_conflicts_total", Help: "APPENDs refused because they did not extend the head (another writer is active)."}),
	}
	m.placementsRefused = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
		Name: "placements_refused_total", Help: "CREATEs the placement policy refused, by reason (owner_not_allowed, owner_quota, requester_quota, domain_quota, unproven_quota, too_many_replicas, server_full, disk_full, not_published, creates_per_peer, creates_unproven)."}, []string{"reason"})
	m.syncSkipped = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
		Name: "sync_skipped_total", Help: "Anti-entropy requests not sent because the peer is backing off after a timeout or a NAK."})
	m.syncFed = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
		Name: "sync_fed_total", Help: "Periodic anti-entropy comparisons not started because a writer's batch extended the capsule within the last sync_interval."})
	m.syncInflight = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "gdp", Subsystem: "capsuled",
		Name: "sync_inflight", Help: "Capsules being compared with their peers now (at most sync_parallel)."})
	m.syncRefused = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
		Name: "sync_refused_total", Help: "SYNCs answered 503 because their peer had sync_answers_per_peer SYNCs being answered, by share (Session 16): identity (a proven identity, over all its names), unproven (every asker that proved nothing, together)."}, []string{"share"})
	m.syncRefused.WithLabelValues("identity")
	m.syncRefused.WithLabelValues("unproven")
	m.appendWaitsLimited = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
		Name: "append_waits_limited_total", Help: "APPENDs starting beyond the capsule's head that waited for their predecessors on a worker, not on their own goroutine, because their requester had 8 such APPENDs waiting already, by share (Session 17): identity (a proven identity, over all its names), unproven (every requester that proved nothing, together)."}, []string{"share"})
	m.appendWaitsLimited.WithLabelValues("identity")
	m.appendWaitsLimited.WithLabelValues("unproven")
	m.possessionChecks = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
		Name: "possession_checks_total", Help: "Peers' possession tags (proofs that a peer replica holds the head it claims) checked against this server's entries, by result (ok, failed); one is asked for only when a check is due (possession_interval)."}, []string{"result"})
	m.queueRefused = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
		Name: "queue_refused_total", Help: "Requests answered 503 because the request queue was full, by reason: full (the newcomer refused; every requester holds about as many), evicted (the newest request of the requester holding the most, to make room for one holding fewer)."}, []string{"reason"})
	m.queueRefused.WithLabelValues("full")
	m.queueRefused.WithLabelValues("evicted")
	m.possessionChecks.WithLabelValues("ok")
	m.possessionChecks.WithLabelValues("failed")
	m.samplesClamped = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
		Name: "possession_samples_clamped_total", Help: "Peers' SYNCs that asked for a possession tag over more sampled entries than 64 (wire.MaxPossessionSamples): answered with a tag over 64, stated in the answer."})
	m.possessionRefused = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
		Name: "possession_refused_total", Help: "SYNCs asking for a possession tag (a nonce) from a requester that is not one of the capsule's other replicas in this server's placement: answered without a tag, no entry read for one."})
	m.storageRefused = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
		Name: "storage_refused_total", Help: "Writes not stored because the capsule's creator (the requester that placed it) holds placement.max_bytes_per_requester of records here (share=requester), or its domain or the unproven requesters' pool placement.max_bytes_per_domain (share=domain, unproven), by op (append: an APPEND answered 503; sync: an anti-entropy round that did not pull the capsule)."}, []string{"op", "share"})
	for _, op := range []string{"append", "sync"} {
		for _, sh := range []string{shareRequester, shareDomain, shareUnproven} {
			m.storageRefused.WithLabelValues(op, sh)
		}
	}
	m.requesterProofs = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
		Name: "requester_proofs_total", Help: "CREATEs of new capsules by what their requester proved (Session 14): proven (an identity of a trusted domain, counted in its identity's and domain's shares), none (no proof: an older client), invalid (a proof that does not hold: untrusted or expired membership, another name's). None and invalid count in the source name's share and the one unproven pool (placement.max_per_domain)."}, []string{"result"})
	for _, r := range []string{proofProven, proofNone, proofInvalid} {
		m.requesterProofs.WithLabelValues(r)
	}
	reg.MustRegister(m.requesterProofs)
	m.requesterCache = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "gdp", Subsystem: "capsuled",
		Name: "requester_cache_total", Help: "Requests by what proved their requester (Session 15): hit (no proof, from a source name proven before: a lookup), repeated (a proof from a name proven before, not checked again: the same bytes, or another within 10 s; a client sends its proof until the server answers one, then every 30 s), proven (a proof verified and remembered), invalid (a proof that does not hold: forged, expired, untrusted, another name's), known (Session 16: a new name's proof whose credentials were verified before for its node, no check), refused (a proof from a name whose last one did not hold, not verified again within 10 s; or of a node whose credentials were checked within 10 s and are not the ones that held), unproven (no proof from a name not proven); and proven names dropped: evicted (requester_cache: the largest group's, for another group's newcomer), group_share (Session 16: its own group's, the largest; groups as the request queue's), identity_share (requester_cache_per_identity), expired (the membership). Invalid, refused and unproven requests count in the unproven pool."}, []string{"result"})
	for _, r := range cacheResults {
		m.requesterCache.WithLabelValues(r)
	}
	reg.MustRegister(m.requesterCache)
	reg.MustRegister(m.storageRefused)
	reg.MustRegister(m.placementsRefused, m.syncSkipped, m.syncFed, m.syncInflight, m.syncRefused, m.appendWaitsLimited, m.possessionChecks, m.samplesClamped, m.possessionRefused, m.queueRefused)
	// Labelled series exist from the start at zero.
	for _, r := range []string{"unreachable", "nak", "refused", "busy", "misaligned", "verify", "adopted"} {
		m.syncErrors.WithLabelValues(r)
	}
	for _, r := range []string{"not_data", "malformed", "late_response", "unexpected_event", "send_error", "wrong_source", "waiter_full", "nak", "delete_unsigned", "delete_clock", "create_in_progress", "unproven_head", "head_not_held", "too_few_samples", "too_many_samples"} {
		m.dropped.WithLabelValues(r)
	}
	for _, r := range []string{refuseOwner, refuseQuota, refuseRequester, refuseDomain, refuseUnproven, refuseReplicas, refuseFull, refuseDisk, refuseUnpublished, refuseCreates, refuseCreatesUnproven} {
		m.placementsRefused.WithLabelValues(r)
	}
	// Requests by operation with status ok exist from the start, so a
	// dashboard's append or read rate is 0, not "no data", before the first.
	for o := wire.OpCreate; o.Valid(); o++ {
		if o != wire.OpEvent {
			m.requests.WithLabelValues(o.String(), wire.StatusOK.String())
		}
	}
	for _, r := range []string{"subscription_evicted", "subscriptions_full", "subscriber_quota", "unproven_quota", subTrustWithdrawn} {
		m.subQuota.WithLabelValues(r)
	}
	reg.MustRegister(m.requests, m.appended, m.synced, m.syncErrors, m.equivocations, m.dropped, m.subscriptions, m.pushes, m.subQuota,
		m.adcertExpiry, m.writerConflicts)
	return m
}
