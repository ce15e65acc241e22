package resolver

import (
	"context"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/internal/logging"
)

// republishLoop puts every published record again each Republish interval
// (well before kad-dht's MaxRecordAge drops it), renews records close to
// their certificates' expiry through cfg.Renew, and forgets expired ones.
func (d *DHT) republishLoop() {
	d.every(d.cfg.Republish, func() { d.republishOnce(d.ctx) })
}

// republishOnce does one republish round.
func (d *DHT) republishOnce(ctx context.Context) {
	now := d.verifier.now()
	for _, rec := range d.Published() {
		if ctx.Err() != nil {
			return
		}
		exp := rec.EffectiveExpiry()
		if !now.Before(exp) {
			d.forget(rec)
			d.metrics.republish.WithLabelValues("expired").Inc()
			d.log.Info("published record expired", logging.Name(rec.Name), logging.Expiry(exp))
			continue
		}
		if exp.Sub(now) < d.cfg.RenewBefore && d.cfg.Renew != nil {
			fresh, err := d.cfg.Renew(ctx, rec)
			if err == nil {
				err = d.Publish(ctx, fresh)
			}
			if err != nil {
				d.metrics.republish.WithLabelValues("failed").Inc()
				d.log.Warn("renew failed", logging.Name(rec.Name), logging.Expiry(exp), zap.Error(err))
				continue
			}
			d.metrics.republish.WithLabelValues("renewed").Inc()
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, d.cfg.PutTimeout)
		_, err := d.putMerged(pctx, rec) // a merge: repairs entries lost to concurrent puts
		cancel()
		if err != nil {
			d.metrics.republish.WithLabelValues("failed").Inc()
			d.log.Warn("republish failed", logging.Name(rec.Name), zap.Error(err))
			continue
		}
		d.metrics.republish.WithLabelValues("ok").Inc()
	}
}

// forget drops rec from the republish set unless a newer one replaced it.
func (d *DHT) forget(rec *Record) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.published[keyOf(rec)] == rec {
		delete(d.published, keyOf(rec))
	}
}
