package capsuled

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/gdpnet/gdpnet/advert"
	"github.com/gdpnet/gdpnet/capsule"
	"github.com/gdpnet/gdpnet/capsuled/wire"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/internal/clock"
	"github.com/gdpnet/gdpnet/internal/logging"
	"github.com/gdpnet/gdpnet/pdu"
)

// handleCreate places a capsule on this server. The router verifies the
// AdCert's signature when the server advertises the name; only then is
// the capsule created, so a refused placement stores nothing. A CREATE for
// a capsule already held with the same writer key renews its placement
// (a fresh AdCert, a new replica set).
//
// The CREATE is answered only once the router confirms that the capsule's
// location record is in the resolver, so that a client on another router
// can reach the capsule as soon as CREATE returns (PROTOCOL.md §5.4); when
// that does not happen within PublishWait the CREATE fails 503 and a new
// capsule's name is withdrawn again, with nothing stored.
func (s *Server) handleCreate(ctx context.Context, r request) *wire.Message {
	m := r.msg
	p, err := parsePlacement(m, s.name, true)
	if err != nil {
		return fail(m, fmt.Errorf("create: %w", err))
	}
	if held := s.places.get(p.name); held != nil && held.record != nil && p.record.Issued.Before(held.record.Issued) {
		// A replayed older CREATE must not roll the replica set back.
		return fail(m, fmt.Errorf("create %s: %w: placement record of %s is older than the one held (%s)", p.name, capsule.ErrStale,
			p.record.Issued.Format(time.RFC3339), held.record.Issued.Format(time.RFC3339)))
	}
	p.creator = r.from
	held := s.places.get(p.name)
	if held != nil {
		// a renewal, from whoever: the capsule stays in its creator's share
		p.creator, p.who = held.creator, held.who
	} else {
		who, result, err := s.requester(r.from, m.Proof)
		s.met.requesterProofs.WithLabelValues(result).Inc()
		if err != nil {
			// Placed all the same, in the unproven pool: one line per
			// source at most every 10 s says why.
			s.logLim.Info(s.log, "requester_proof "+r.from.String(), "requester proof refused: the capsule counts in the unproven requesters' pool (max_per_domain)",
				logging.Capsule(p.name), logging.Src(r.from), logging.Reason("invalid_proof"), zap.Error(err))
		}
		p.who = who
	}
	release, reason, err := s.places.admit(s.pol.Load().placement, p, held != nil)
	if err != nil {
		s.met.placementsRefused.WithLabelValues(reason).Inc()
		s.logLim.Info(s.log, reason+" "+r.from.String(), "placement refused", logging.Capsule(p.name), logging.Src(r.from), logging.Reason(reason))
		return fail(m, err) // the requester's error names the capsule and server already
	}
	// The new capsule counts in the limits from here (CREATEs waiting
	// together cannot pass them); once stored it counts as placed, and on
	// any failure it is given back.
	defer release()
	info := capsule.Info{Name: p.name, Writer: p.meta.WriterKey}
	existed := false
	if held, _, err := s.st.Info(p.name); err == nil {
		if !held.Writer.Equal(info.Writer) {
			return fail(m, fmt.Errorf("create %s: held with another writer key", p.name))
		}
		existed = true
	}
	if !existed {
		// guarded as appends are: below min_free_bytes a new capsule is
		// refused (503) before anything is advertised or stored
		if err := s.st.Room(); err != nil {
			s.met.placementsRefused.WithLabelValues(refuseDisk).Inc()
			s.logLim.Warn(s.log, refuseDisk, "placement refused", logging.Capsule(p.name), logging.Src(r.from), logging.Reason(refuseDisk), zap.Error(err))
			return fail(m, fmt.Errorf("create %s: %w", p.name, err))
		}
	}
	route := client.CapsuleRoute(p.meta, p.adcert)
	res, old, err := s.advertiseConfirmed(ctx, route)
	if old != nil {
		s.log.Warn("the router does not confirm location records (an older version): CREATE is answered before other routers can resolve the capsule; upgrade the router",
			logging.Capsule(p.name), logging.Peer(old.Reporter), logging.Reason("router_without_publish_wait"))
	}
	if err != nil {
		return fail(m, fmt.Errorf("create %s: advertise: %w", p.name, err))
	}
	if len(res) == 1 && res[0].Published == advert.PublishPending {
		s.met.placementsRefused.WithLabelValues(refuseUnpublished).Inc()
		s.log.Warn("placement refused: the router did not confirm the capsule's location record within publish_wait; other routers cannot resolve it yet. Check the router's resolver (gdp_router_publish_retries_total); the client may retry",
			logging.Capsule(p.name), logging.Src(r.from), logging.Reason(refuseUnpublished), zap.Duration("publish_wait", s.cfg.PublishWait))
		if !existed {
			// Nothing half-created: the router holds the name, the
			// server nothing yet. Take the name back (a failure is only
			// logged: the route expires with its AdCert, and a retried
			// CREATE advertises it again).
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.PeerTimeout)
			if _, werr := s.cli.Withdraw(wctx, p.name); werr != nil {
				s.log.Info("withdrawing an unpublished capsule's name", logging.Capsule(p.name), zap.Error(werr))
			}
			cancel()
		}
		return fail(m, fmt.Errorf("create %s: %w: its location record was not published within %s, so other routers cannot resolve it yet; retry later",
			p.name, errUnpublished, s.cfg.PublishWait))
	}
	if err := s.places.put(p); err != nil {
		return fail(m, err)
	}
	if err := s.st.Create(ctx, p.name, p.meta.Marshal()); err != nil {
		return fail(m, fmt.Errorf("create %s: %w", p.name, err))
	}
	s.checkExpiry(p, clock.Now())
	s.log.Info("capsule placed", logging.Capsule(p.name), zap.Int("replicas", len(p.replicas)), zap.Int("w", p.w),
		logging.Expiry(p.adcert.NotAfter), zap.Bool("renewed", existed))
	s.kickSync(p.name)
	st := wire.StatusCreated
	if existed {
		st = wire.StatusOK
	}
	resp := m.Reply(st)
	resp.Replicas, resp.W = wire.NameBytes(p.replicas), uint64(p.w)
	return resp
}

// createKey identifies one CREATE request: its source and request id.
type createKey struct {
	from pdu.Name
	id   uint64
}

// errUnpublished: the router did not confirm the location record in time.
var errUnpublished = errors.New("location not published")

// errBusy: the requester has its share of the work under way (503).
var errBusy = errors.New("busy")

// renewWarning is the share of an AdCert's lifetime left below which the
// server logs a WARN (once per AdCert): renew at half-life, worry at 20 %.
const renewWarning = 0.2

// checkExpiry exports p's AdCert expiry and warns once per AdCert when it
// has less than renewWarning of its lifetime left or has expired.
func (s *Server) checkExpiry(p *placement, now time.Time) {
	na := p.adcert.NotAfter
	s.met.adcertExpiry.WithLabelValues(p.name.String()).Set(float64(na.Unix()))
	total, left := na.Sub(p.adcert.NotBefore), na.Sub(now)
	if total <= 0 || float64(left) >= renewWarning*float64(total) {
		return
	}
	state := "expiring"
	if left <= 0 {
		state = "expired"
	}
	key := struct {
		c pdu.Name
		s string
	}{p.name, state}
	if prev, ok := s.warned.Load(key); ok && prev.(time.Time).Equal(na) {
		return
	}
	s.warned.Store(key, na)
	if left <= 0 {
		s.log.Warn("adcert expired: the capsule is no longer advertised here; its owner must renew it (gdp capsule renew)",
			logging.Capsule(p.name), logging.Expiry(na),
			zap.String("fix", "the capsule's owner runs: gdp capsule renew "+p.name.String()+" --owner ALIAS --servers SERVERS --w W (the servers must be named: the capsule is no longer found by name)"))
		return
	}
	s.log.Warn("adcert expires soon: its owner should renew it (gdp capsule renew)", logging.Capsule(p.name),
		logging.Expiry(na), zap.String("left", left.Round(time.Second).String()),
		zap.String("fix", "the capsule's owner runs: gdp capsule renew "+p.name.String()+" --owner ALIAS (every 24-36 h for the default 72 h AdCerts)"))
}
