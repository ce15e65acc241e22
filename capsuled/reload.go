package capsuled

import (
	"fmt"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/pdu"
)

// policy is the part of a Config that a reload (SIGHUP) changes in a
// running server: who may place capsules here and how many, and the
// subscription limits, the fewest samples a peer's possession tag may
// cover. Everything else needs a restart.
type policy struct {
	placement  PlacementPolicy
	maxSubs    int // MaxSubscriptions
	maxSubsPer int // MaxSubscriptionsPerSubscriber
	maxSubsUnp int // MaxSubscriptionsUnproven
	minSamples int // PossessionMinSamples
}

func policyOf(c Config) *policy {
	return &policy{placement: c.Placement, maxSubs: c.MaxSubscriptions, maxSubsPer: c.MaxSubscriptionsPerSubscriber,
		maxSubsUnp: c.MaxSubscriptionsUnproven, minSamples: c.PossessionMinSamples}
}

// Check reports whether New (or Reload) would refuse c.
func (c Config) Check() error {
	_, err := c.withDefaults()
	return err
}

// CheckReload reports whether Reload would refuse cfg, changing nothing:
// Check, with the settings only a restart changes taken from the running
// server where they bound a reloaded one (possession_samples bounds
// possession_min_samples). `gdp capsuled` asks it before it puts anything
// of a SIGHUP in force, so that a reload is all or nothing.
func (s *Server) CheckReload(cfg Config) error {
	_, err := s.reloadConfig(cfg)
	return err
}

// reloadConfig is cfg as a reload would take it, checked as New checks
// it: an empty Dir is the running one, and PossessionSamples the running
// one (restart-only; a file that changes it is told so when the minimum it
// states does not fit the running value).
func (s *Server) reloadConfig(cfg Config) (Config, error) {
	if cfg.Dir == "" {
		cfg.Dir = s.cfg.Dir
	}
	file := cfg.PossessionSamples
	cfg.PossessionSamples = s.cfg.PossessionSamples
	c, err := cfg.withDefaults()
	if err != nil && file != 0 && file != s.cfg.PossessionSamples {
		err = fmt.Errorf("%w; possession_samples %d in the file is not in force: it changes on restart only (running: %d)",
			err, file, s.cfg.PossessionSamples)
	}
	return c, err
}

// Reload puts the placement policy and the subscription limits of cfg in
// force for every later CREATE and SUBSCRIBE (capsules already placed and
// subscriptions already running stay), and its PossessionMinSamples for
// every later possession check (the running PossessionSamples,
// restart-only, bounds it: a reload that raises the minimum above the
// samples this server asks for is refused). cfg is checked as New checks
// it (CheckReload; an empty Dir means the running one); if it is refused
// nothing changes. The other fields of cfg are ignored: they change on
// restart only.
func (s *Server) Reload(cfg Config) error {
	c, err := s.reloadConfig(cfg)
	if err != nil {
		return err
	}
	p := policyOf(c)
	s.pol.Store(p)
	s.log.Info("placement policy and subscription limits reloaded", zap.Int("owners", len(p.placement.Owners)),
		zap.Int("max_per_owner", p.placement.MaxPerOwner),
		zap.Int("max_per_requester", p.placement.MaxPerRequester), zap.Int64("max_bytes_per_requester", p.placement.MaxBytesPerRequester),
		zap.Int("max_per_domain", p.placement.MaxPerDomain), zap.Int64("max_bytes_per_domain", p.placement.MaxBytesPerDomain), zap.Int("max_replicas", p.placement.MaxReplicas),
		zap.Int("max_placements", p.placement.MaxPlacements), zap.Int("max_subscriptions", p.maxSubs),
		zap.Int("max_subscriptions_per_subscriber", p.maxSubsPer), zap.Int("max_subscriptions_unproven", p.maxSubsUnp), zap.Int("possession_min_samples", p.minSamples))
	return nil
}

// ReloadTrust puts the trusted domains of v in force for the requester
// proofs (Session 17; gdp capsuled's trusted_domains on SIGHUP). The
// caller has given v to the server's client first (client.Endpoint.Reload),
// which checks every proof from then on; here what was believed under
// the old trust goes: a source name or node proven by a domain v does not
// list counts in the unproven pool from its next request, its running
// subscriptions end (Session 18; its renewal starts one counted as
// unproven), and a proof that did not hold is forgotten, so one of a
// domain v adds is checked at its next request instead of within 10 s.
// Its placements stay, counted in the shares they were made in (deleting
// data on a trust change would make a mistyped reload destructive): the
// line says how many. It logs one line saying what was dropped.
func (s *Server) ReloadTrust(v *certs.Verifier) {
	own := s.cli.Domain()
	trusted := func(d pdu.Name) bool { return d == own || v.Trusted[d] != nil }
	r := s.reqs.retrust(trusted, own)
	if r.names > 0 {
		s.met.requesterCache.WithLabelValues(cacheWithdrawn).Add(float64(r.names))
	}
	subs := s.subs.untrust(trusted)
	if subs > 0 {
		s.met.subQuota.WithLabelValues(subTrustWithdrawn).Add(float64(subs))
	}
	s.log.Info("trusted domains reloaded: requester proofs of domains no longer trusted dropped",
		zap.Int("trusted_domains", len(v.Trusted)), zap.Int("names_dropped", r.names),
		zap.Int("nodes_dropped", r.nodes), zap.Int("refused_forgotten", r.refused),
		zap.Int("subscriptions_ended", subs), zap.Int("placements_kept", s.places.ofUntrusted(trusted)))
}

// subTrustWithdrawn labels the subscriptions a reload ended
// (gdp_capsuled_subscription_quota_total{reason}).
const subTrustWithdrawn = "trust_withdrawn"
