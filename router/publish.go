package router

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
	"github.com/gdpnet/gdpnet/resolver"
)

// pubJob tells the resolver about one local route: published with its
// chain, or withdrawn.
type pubJob struct {
	name     pdu.Name
	chain    *certs.Chain
	expiry   time.Time
	withdraw bool
}

// publish queues a location record for name. Publishing never blocks the
// forwarding path: one goroutine talks to the resolver, in order.
func (r *Router) publish(name pdu.Name, chain *certs.Chain, exp time.Time) {
	r.enqueuePub(pubJob{name: name, chain: chain, expiry: exp})
}

func (r *Router) unpublish(name pdu.Name) { r.enqueuePub(pubJob{name: name, withdraw: true}) }

func (r *Router) enqueuePub(j pubJob) {
	if r.res == nil {
		return
	}
	select {
	case r.pubq <- j:
	default:
		r.log.Warn("resolver publish queue full", logging.Name(j.name))
	}
}

func (r *Router) publisher(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-r.pubq:
			jctx, cancel := context.WithTimeout(ctx, r.cfg.Resolver.Timeout.Std())
			r.doPub(jctx, j)
			cancel()
		}
	}
}

func (r *Router) doPub(ctx context.Context, j pubJob) {
	if j.withdraw {
		// Only withdraw a record that still points here: the name may
		// have moved to another router meanwhile. The resolver checks
		// and withdraws in one step (a lookup here, then a withdrawal,
		// could delete the record the new router published in between).
		err := r.res.WithdrawIf(ctx, j.name, r.name)
		switch {
		case err == nil:
		case errors.Is(err, resolver.ErrSuperseded), errors.Is(err, resolver.ErrNotPublished):
			r.log.Debug("resolver record left in place", logging.Name(j.name), zap.Error(err))
		default:
			r.log.Info("resolver withdraw failed", logging.Name(j.name), zap.Error(err))
		}
		return
	}
	own := r.own.Load()
	rec, err := resolver.NewLocation(own.id.Key, j.name, j.chain, r.addrs, resolver.NextSequence(), j.expiry)
	if err == nil {
		err = r.res.Publish(ctx, rec)
	}
	if err != nil {
		r.log.Warn("resolver publish failed", logging.Name(j.name), zap.Error(err))
	}
}

// selfRecordLifetime bounds the RtCert a router issues itself for its own
// location record; it is renewed at half its life.
const selfRecordLifetime = 2 * time.Hour

// publishSelf publishes a location record for the router's own name, so
// that `gdp ping ROUTER` and tunnels to a router by name work from
// anywhere the resolver reaches. The chain is the router advertising
// itself: its own RtCert, its membership.
func (r *Router) publishSelf() {
	if r.res == nil || len(r.addrs) == 0 {
		return
	}
	own := r.own.Load()
	now := r.now()
	na := now.Add(selfRecordLifetime)
	if own.member.NotAfter.Before(na) {
		na = own.member.NotAfter
	}
	rt, err := certs.IssueRtCert(own.id, r.name, now.Add(-time.Minute), na)
	if err != nil {
		r.log.Warn("own location record", zap.Error(err))
		return
	}
	chain := &certs.Chain{Target: own.meta, Endpoint: own.meta, RtCert: rt, Router: own.meta, Member: own.member, Domain: own.domain}
	r.publish(r.name, chain, na)
}
