package resolver

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/logging"
)

// ownProof is the membership a DHT node shows its peers, as certificate
// and as the wire proof.
type ownProof struct {
	member *certs.Cert
	wire   []byte
}

// reloadPlan is a checked reload of one DHT node, not yet in force.
type reloadPlan struct {
	d     *DHT
	own   *ownProof
	trust *certs.Verifier
}

// withClock gives v the clock of old when it has none of its own (a
// verifier read from files on SIGHUP keeps the node's clock).
func withClock(v, old *certs.Verifier) *certs.Verifier {
	if v.Now != nil || old == nil || old.Now == nil {
		return v
	}
	return &certs.Verifier{Trusted: v.Trusted, Now: old.Now, Skew: v.Skew}
}

// prepareReload checks member and the trusted domains of v (nil: keep
// the ones in force): the node's own membership must pass its gate under
// the new trust, or peers would refuse it.
func (d *DHT) prepareReload(member *certs.Cert, v *certs.Verifier) (*reloadPlan, error) {
	if v == nil {
		v = d.gate.trust.Load()
	}
	v = withClock(v, d.gate.trust.Load())
	if member != nil && member.Issuer != d.cfg.Domain.Name() {
		// The node's key space (DomainPrefix), record store and gate are
		// its domain's: a membership of another domain (a replaced domain
		// key) takes a restart.
		return nil, fmt.Errorf("dht: the membership is of domain %s, this node's domain is %s: a domain changes on restart only", member.Issuer, d.cfg.Domain.Name())
	}
	own := &MembershipProof{Meta: d.cfg.Identity.Meta, Member: member, Domain: d.cfg.Domain}
	if _, err := d.gate.checkWith(v, d.cfg.Identity.Meta.Key, own); err != nil {
		return nil, fmt.Errorf("dht: own membership: %w", err)
	}
	wire, err := own.marshal()
	if err != nil {
		return nil, err
	}
	return &reloadPlan{d: d, own: &ownProof{member: member, wire: wire}, trust: v}, nil
}

// commit puts a checked reload in force: the new proof from the next
// handshake on, the new trust for every later check (gate, records), the
// peers refused under the old trust free to try again, and the admitted
// peers of a domain no longer trusted disconnected.
func (p *reloadPlan) commit() {
	d := p.d
	renewed := !bytes.Equal(d.own.Load().wire, p.own.wire)
	d.own.Store(p.own)
	for _, peerID := range d.gate.retrust(p.trust) {
		d.kad.RoutingTable().RemovePeer(peerID)
		_ = d.host.Network().ClosePeer(peerID)
		d.log.Info("peer's domain no longer trusted: disconnected", zap.Stringer("peer_id", peerID))
	}
	d.log.Info("membership and trusted domains reloaded", logging.Expiry(p.own.member.NotAfter),
		zap.Int("trusted_domains", len(p.trust.Trusted)))
	if renewed {
		d.showRenewal()
	}
}

// showRenewal runs the membership handshake again on every connection to
// an admitted peer, so that each side holds the other's current
// membership (Session 20). A peer is admitted until the NotAfter of the
// membership it proved at the handshake; before, a renewal was shown from
// the next connection only, so every live DHT connection was cut at the
// old NotAfter ("peer membership expired: disconnected") and redialled,
// a bootstrap peer sometimes only after a 14 s backoff (the life soak,
// test/e2e TestSoakLife). The peer's own answer is its current proof, so
// a peer that renewed first is seen renewed too. A handshake that fails
// changes nothing: the peer stays admitted until its proven NotAfter.
func (d *DHT) showRenewal() {
	if d.closed.Load() || d.ctx.Err() != nil {
		return
	}
	var peers []peer.ID
	for _, p := range d.host.Network().Peers() {
		if d.gate.isVerified(p) {
			peers = append(peers, p)
		}
	}
	if len(peers) == 0 {
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		sem := make(chan struct{}, 8)
		var wg sync.WaitGroup
		// The handshakes started are waited for also when the node
		// closes meanwhile, so none outlives Close (review13).
		defer wg.Wait()
		for _, p := range peers {
			select {
			case sem <- struct{}{}:
			case <-d.ctx.Done():
				return
			}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				ctx, cancel := context.WithTimeout(d.ctx, d.cfg.HandshakeTimeout)
				defer cancel()
				if err := d.sendProof(ctx, p); err != nil && d.ctx.Err() == nil {
					d.log.Debug("renewed membership not shown to a peer; it sees it at the next connection", zap.Stringer("peer_id", p), zap.Error(err))
				}
			}()
		}
	}()
}

// Reload replaces the node's membership certificate (a renewal, on
// SIGHUP) and, when v is not nil, its trusted domains: peers get the new
// proof from the next handshake on, border records are signed with it,
// and the gate and the record checks use the new trust. The certificate
// must pass the node's own gate under the new trust; if it does not,
// nothing changes. Listen addresses change on restart only.
func (d *DHT) Reload(member *certs.Cert, v *certs.Verifier) error {
	p, err := d.prepareReload(member, v)
	if err != nil {
		return err
	}
	p.commit()
	return nil
}

// CheckReload reports whether Reload(member, v) would be refused, changing
// nothing (review10): a router checks its embedded resolver's part of a
// SIGHUP before it puts its own in force, so that the reload is all or
// nothing (before, a membership of a new domain — a replaced domain key —
// was taken by the router and then refused by the DHT nodes, and the log
// said the running configuration was kept).
func (s *Service) CheckReload(member *certs.Cert, v *certs.Verifier) error {
	for _, d := range []*DHT{s.Local, s.Global} {
		if d == nil {
			continue
		}
		if _, err := d.prepareReload(member, v); err != nil {
			return err
		}
	}
	return nil
}

// Reload gives every DHT node of s (the domain's, and the global one on a
// border) the renewed membership and the trusted domains of v (nil: keep
// them), and a static resolver the new trust. It is all or nothing: every
// node is checked before any changes. Cached answers are dropped, since
// they were believed under the old trust.
func (s *Service) Reload(member *certs.Cert, v *certs.Verifier) error {
	var plans []*reloadPlan
	for _, d := range []*DHT{s.Local, s.Global} {
		if d == nil {
			continue
		}
		p, err := d.prepareReload(member, v)
		if err != nil {
			return err
		}
		plans = append(plans, p)
	}
	for _, p := range plans {
		p.commit()
	}
	if v != nil && s.Static != nil && s.Static.v != nil {
		s.trust.Store(withClock(v, s.Static.v.certs()))
	}
	if v != nil && s.Cache != nil {
		s.Cache.Purge()
	}
	return nil
}
