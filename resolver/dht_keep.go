package resolver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/logging"
)

// Redial backoff of a lost bootstrap peer: the first redial is at once,
// then the wait doubles from bootstrapBackoffMin to bootstrapBackoffMax
// (±25 % jitter), as the join's rounds do.
const (
	bootstrapBackoffMin = time.Second
	bootstrapBackoffMax = 8 * time.Second
)

// bootstrapFix is what an operator does about a bootstrap peer that stays
// away.
const bootstrapFix = "nothing if it is restarting: this node redials it on its own; if it stays away, check that it runs at that address with a valid membership (gdp doctor --remote) or correct resolver.bootstrap"

// keepBootstrap keeps this node connected to one bootstrap peer, for as
// long as the node runs. The first node of a domain (a `gdp resolver`)
// usually has no bootstrap peers of its own: when it restarts, its routing
// table is empty and nobody would reconnect to it before the routers' next
// refresh (minutes), so its lookups would fail. Every interval the peer is
// pinged over the open connection: a peer that restarted answers with a
// QUIC stateless reset (its reset key derives from its identity key), the
// connection closes at once, and the peer is dialled again (membership
// proofs both ways) — which puts this node back in its routing table.
func (d *DHT) keepBootstrap(info peer.AddrInfo, interval time.Duration) {
	defer d.wg.Done()
	// Protected: the connection manager must not trim what is kept here.
	d.host.ConnManager().Protect(info.ID, "gdp-bootstrap")
	t := time.NewTicker(interval)
	defer t.Stop()
	var (
		down    bool // lost and not back yet
		lost    time.Time
		backoff = bootstrapBackoffMin
		next    time.Time // no redial before
	)
	connected := func() bool { return d.host.Network().Connectedness(info.ID) == network.Connected }
	addr := ""
	if len(info.Addrs) > 0 {
		addr = info.Addrs[0].String()
	}
	back := func() {
		down, backoff, next = false, bootstrapBackoffMin, time.Time{}
		d.log.Info("bootstrap peer back", zap.Stringer("peer_id", info.ID), logging.Addr(addr),
			zap.Duration("after", time.Since(lost).Round(time.Millisecond)))
	}
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		}
		if connected() {
			if down {
				back()
			}
			pctx, cancel := context.WithTimeout(d.ctx, interval)
			res := <-ping.Ping(pctx, d.host, info.ID)
			cancel()
			if res.Error == nil || connected() {
				continue
			}
		}
		if !down {
			down, lost = true, time.Now()
			d.metrics.bootstrapLost.Inc()
			d.log.Warn("bootstrap peer lost; redialing", zap.Stringer("peer_id", info.ID), logging.Addr(addr),
				zap.String("fix", bootstrapFix))
		}
		if time.Now().Before(next) {
			continue
		}
		if err := d.dialAdmitted(d.ctx, info); err != nil {
			if d.ctx.Err() != nil {
				return
			}
			d.metrics.bootstrapDials.WithLabelValues("failed").Inc()
			d.log.Debug("bootstrap peer redial failed", zap.Stringer("peer_id", info.ID), zap.Error(err),
				zap.Duration("backoff", backoff))
			next = time.Now().Add(backoff*3/4 + rand.N(backoff/2+1))
			backoff = min(2*backoff, bootstrapBackoffMax)
			continue
		}
		d.metrics.bootstrapDials.WithLabelValues("ok").Inc()
		back()
	}
}

// dialAdmitted connects to info and waits for its membership proof,
// bounded by HandshakeTimeout.
func (d *DHT) dialAdmitted(ctx context.Context, info peer.AddrInfo) error {
	cctx, cancel := context.WithTimeout(ctx, d.cfg.HandshakeTimeout)
	defer cancel()
	if err := d.host.Connect(cctx, info); err != nil {
		return fmt.Errorf("bootstrap %s: %w", info.ID, err)
	}
	if !d.gate.wait(cctx, info.ID) {
		return fmt.Errorf("bootstrap %s: peer did not prove membership", info.ID)
	}
	return nil
}
