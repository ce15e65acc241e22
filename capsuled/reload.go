package capsuled

import (
	"go.uber.org/zap"
)

// policy is the part of a Config that a reload (SIGHUP) changes in a
// running server: who may place capsules here and how many, and the
// subscription limits, the fewest samples a peer's possession tag may
// cover. Everything else needs a restart.
type policy struct {
	placement  PlacementPolicy
	maxSubs    int // MaxSubscriptions
	maxSubsPer int // MaxSubscriptionsPerSubscriber
	minSamples int // PossessionMinSamples
}

func policyOf(c Config) *policy {
	return &policy{placement: c.Placement, maxSubs: c.MaxSubscriptions, maxSubsPer: c.MaxSubscriptionsPerSubscriber,
		minSamples: c.PossessionMinSamples}
}

// Check reports whether New (or Reload) would refuse c.
func (c Config) Check() error {
	_, err := c.withDefaults()
	return err
}

// Reload puts the placement policy and the subscription limits of cfg in
// force for every later CREATE and SUBSCRIBE (capsules already placed and
// subscriptions already running stay), and its PossessionMinSamples for
// every later possession check (cfg's PossessionSamples, restart-only,
// bounds it: a reload that raises the minimum above the samples this
// server asks for is refused). cfg is checked as New checks it
// (an empty Dir means the running one); if it is refused nothing changes.
// The other fields of cfg are ignored: they change on restart only.
func (s *Server) Reload(cfg Config) error {
	if cfg.Dir == "" {
		cfg.Dir = s.cfg.Dir
	}
	// possession_samples changes on restart only: the minimum is checked
	// against the running one.
	cfg.PossessionSamples = s.cfg.PossessionSamples
	c, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	p := policyOf(c)
	s.pol.Store(p)
	s.log.Info("placement policy and subscription limits reloaded", zap.Int("owners", len(p.placement.Owners)),
		zap.Int("max_per_owner", p.placement.MaxPerOwner), zap.Int("max_replicas", p.placement.MaxReplicas),
		zap.Int("max_placements", p.placement.MaxPlacements), zap.Int("max_subscriptions", p.maxSubs),
		zap.Int("max_subscriptions_per_subscriber", p.maxSubsPer), zap.Int("possession_min_samples", p.minSamples))
	return nil
}
